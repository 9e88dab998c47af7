"""StyleGAN2 pipeline: an image generator (the content generator StyleInV and StyleVideoGAN build on).

    pipe = VideoPipeline.from_pretrained("runs/faces/pipeline")
    out = pipe(num_images=8, generator=0)
    out.frames                                    # [8, 1, 3, H, W] in [0, 1]: one-frame videos

Images come out in the video layout with T = 1, so every vgz tool that takes videos takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange

from vgz.configs import ComponentConfig
from vgz.generators.stylegan2 import MappingNetwork, SynthesisNetwork
from vgz.pipelines.base import (VideoPipeline, VideoPipelineOutput, as_generators, check_count, check_finite_frames,
                                check_number, check_output_type, finish_frames)
from vgz.registry import register

__all__ = ["StyleGAN2PipelineConfig", "StyleGAN2Pipeline"]


@dataclass
class StyleGAN2PipelineConfig(ComponentConfig):
    """Pipeline-level settings of :class:`StyleGAN2Pipeline` (none yet)."""


@register("pipeline", "stylegan2")
class StyleGAN2Pipeline(VideoPipeline):
    """StyleGAN2: mapping + synthesis; images as one-frame videos ``[B, 1, C, H, W]``."""

    config_class = StyleGAN2PipelineConfig
    component_kinds = {"mapping": "mapping", "synthesis": "synthesis"}
    is_video = False

    mapping: MappingNetwork
    synthesis: SynthesisNetwork

    def __init__(self, config: StyleGAN2PipelineConfig | None = None, *, mapping: MappingNetwork,
                 synthesis: SynthesisNetwork):
        super().__init__(config, mapping=mapping, synthesis=synthesis)
        m, s = mapping.config, synthesis.config
        if m.num_ws != s.num_ws or m.w_dim != s.w_dim:
            raise ValueError(f"StyleGAN2Pipeline components do not fit together: mapping gives {m.num_ws} ws of "
                             f"{m.w_dim}, synthesis takes {s.num_ws} of {s.w_dim}")

    @torch.no_grad()
    def __call__(self, num_images: int = 1, *, generator: Any = None, truncation_psi: float = 1.0,
                 truncation_cutoff: int | None = None, noise_mode: str = "const", c: torch.Tensor | None = None,
                 z: torch.Tensor | None = None, output_type: str = "pt", return_dict: bool = True
                 ) -> VideoPipelineOutput | tuple:
        """Generate ``num_images`` images.

        Args:
            generator: ``torch.Generator``, int seed (image i uses seed + i) or a list of either.
            truncation_psi, truncation_cutoff: truncation of w towards its average.
            noise_mode: ``"const"``, ``"random"`` or ``"none"``.
            c: labels ``[B, c_dim]`` for class-conditional models.
            z: explicit latents ``[B, z_dim]``; drawn from ``generator`` when None.
            output_type: ``"pt"``, ``"np"`` or ``"pil"`` (in [0, 1]), ``"uint8"`` or ``"raw"`` (see
                :class:`~vgz.pipelines.base.VideoPipelineOutput`).

        Returns:
            :class:`VideoPipelineOutput` with ``frames [B, 1, C, H, W]`` in [0, 1], timestamps 0.

        Raises:
            :class:`~vgz.pipelines.base.NonFiniteOutputError`: the images came out NaN or infinite.
        """
        num_images = check_count("num_images", num_images)
        truncation_psi = check_number("truncation_psi", truncation_psi)
        check_output_type(output_type)
        device = self.device
        if z is None:
            gens = as_generators(generator, num_images)
            z = torch.cat([torch.randn([1, self.mapping.config.z_dim], generator=g) for g in gens])
        if z.shape != (num_images, self.mapping.config.z_dim):
            raise ValueError(f"z must be [{num_images}, {self.mapping.config.z_dim}], got {tuple(z.shape)}")
        c_dim = self.mapping.config.c_dim
        if c_dim > 0 and (c is None or tuple(c.shape) != (num_images, c_dim)):
            raise ValueError(f"this model is class-conditional: pass c [{num_images}, {c_dim}]")
        ws = self.mapping(z.to(device), c.to(device) if c_dim > 0 else None, truncation_psi=truncation_psi,
                          truncation_cutoff=truncation_cutoff)
        images = rearrange(self.synthesis(ws, noise_mode=noise_mode), "b c h w -> b 1 c h w")
        check_finite_frames(images, 0, generator)
        out = VideoPipelineOutput(finish_frames(images, output_type), torch.zeros(num_images, 1), None)
        return out if return_dict else (out.frames,)
