"""pSp inversion pipeline: images or video frames -> StyleGAN latents -> reconstructions.

    pipe = VideoPipeline.from_pretrained("psp-faces/")        # vgz convert psp psp_ffhq_encode.pt psp-faces/
    ws = pipe.encode(frames)          # [T, 3, H, W] in [0, 1] -> [T, num_ws, w_dim] (latent_avg included)
    ws = pipe.refine(frames, ws, steps=100, smooth=0.001)  # sharper codes by optimisation (not in pSp)
    images = pipe.decode(ws)          # -> [T, 3, R, R] in [0, 1], with the generator's stored noise
    recon = pipe(video).frames        # [B, T, 3, H, W] -> the reconstruction [B, T, 3, R, R]

Components: an encoder (``encoder/psp`` into W+, or ``encoder/psp-w`` into W, its code repeated over
the generator's layers), the StyleGAN2 synthesis network it inverts, and optionally that
generator's mapping network (for its average latent and for sampling).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange

from vgz.configs import ComponentConfig, config_field
from vgz.generators.stylegan2 import MappingNetwork, SynthesisNetwork
from vgz.modeling import ModelMixin, frozen
from vgz.pipelines.base import (VideoPipeline, VideoPipelineOutput, check_count, check_finite_frames,
                                check_output_type, finish_frames, to_unit_range)
from vgz.registry import register

__all__ = ["PSPPipelineConfig", "PSPPipeline"]


@dataclass
class PSPPipelineConfig(ComponentConfig):
    """Pipeline-level settings of :class:`PSPPipeline`."""

    resize_mode: Literal["bilinear", "bicubic", "area"] = config_field(
        "bilinear", help="how images are resized to the encoder's input size (antialiased; pSp: PIL bilinear)")
    fps: float = config_field(25.0, min=1e-3, help="frame rate given to reconstructions of bare frame tensors")


@register("pipeline", "psp")
class PSPPipeline(VideoPipeline):
    """pSp: encoder + the StyleGAN2 generator it inverts. Inputs and outputs in [0, 1]."""

    config_class = PSPPipelineConfig
    component_kinds = {"encoder": "encoder", "synthesis": "synthesis", "mapping": "mapping"}
    optional_components = ("mapping",)
    is_video = False  # it reconstructs videos; it does not generate them from noise

    encoder: ModelMixin
    synthesis: SynthesisNetwork
    mapping: MappingNetwork | None

    def __init__(self, config: PSPPipelineConfig | None = None, *, encoder: ModelMixin, synthesis: SynthesisNetwork,
                 mapping: MappingNetwork | None = None):
        super().__init__(config, encoder=encoder, synthesis=synthesis, mapping=mapping)
        e, s = encoder.config, synthesis.config
        problems = []
        if e.w_dim != s.w_dim:
            problems.append(f"the encoder gives codes of {e.w_dim}, the synthesis takes w of {s.w_dim}")
        n_styles = getattr(e, "n_styles", None)
        if n_styles is not None and n_styles != s.num_ws:
            problems.append(f"the encoder gives {n_styles} ws (output_size {e.output_size}), the synthesis takes "
                            f"{s.num_ws} ({s.img_resolution}x{s.img_resolution})")
        if mapping is not None and (mapping.config.w_dim != s.w_dim or mapping.config.num_ws != s.num_ws):
            problems.append(f"the mapping gives {mapping.config.num_ws} ws of {mapping.config.w_dim}, the synthesis "
                            f"takes {s.num_ws} of {s.w_dim}")
        if problems:
            raise ValueError("PSPPipeline components do not fit together: " + "; ".join(problems))

    @property
    def num_ws(self) -> int:
        return self.synthesis.num_ws

    # ----------------------------------------------------------------------------- encode / decode

    def _images(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """``[N, C, H, W]`` or ``[B, T, C, H, W]`` in [0, 1] (or uint8) -> ``[N', C, H, W]`` float and the
        leading shape to restore."""
        if not isinstance(images, torch.Tensor) or images.ndim not in (4, 5):
            found = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"expected images [N, C, H, W] or videos [B, T, C, H, W] in [0, 1], got {found}")
        channels = self.encoder.config.input_nc
        if images.shape[-3] != channels:
            raise ValueError(f"the encoder takes {channels}-channel images, got {tuple(images.shape)} "
                             "(channels third from last)")
        lead = tuple(images.shape[:-3])
        x = images.reshape(-1, *images.shape[-3:])
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        return x, lead

    def _chunks(self, n: int, batch_size: int | None) -> range:
        return range(0, n, check_count("batch_size", batch_size) if batch_size is not None else max(n, 1))

    @torch.no_grad()
    def encode(self, images: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """Invert images: ``[N, C, H, W]`` (or ``[B, T, C, H, W]``) in [0, 1] -> ``ws [N, num_ws, w_dim]``
        (or ``[B, T, num_ws, w_dim]``), the encoder's ``latent_avg`` included; a W encoder's code is
        repeated over the layers. Images are resized to the encoder's input size when they differ."""
        x, lead = self._images(images)
        size = self.encoder.config.input_size
        out = []
        for i in self._chunks(len(x), batch_size):
            batch = x[i:i + (batch_size or len(x))].to(self.device)
            if batch.shape[-2:] != (size, size):
                batch = F.interpolate(batch, size=(size, size), mode=self.config.resize_mode, antialias=True,
                                      align_corners=False if self.config.resize_mode != "area" else None)
            codes = self.encoder(batch * 2 - 1)
            if codes.ndim == 2:  # W: one code for every layer
                codes = codes.unsqueeze(1).expand(-1, self.num_ws, -1)
            out.append(codes.float())
        ws = torch.cat(out) if out else torch.zeros([0, self.num_ws, self.synthesis.w_dim], device=self.device)
        return ws.reshape(*lead, self.num_ws, self.synthesis.w_dim)

    def refine(self, images: torch.Tensor, ws: torch.Tensor, *, steps: int, lr: float = 0.02, smooth: float = 0.0,
               batch_size: int | None = None, callback: Callable[[int], None] | None = None) -> torch.Tensor:
        """Sharpen an encoding by optimisation (a vgz addition to pSp): the frames of one video
        ``images [T, C, H, W]`` in [0, 1] and their codes ``ws [T, num_ws, w_dim]`` (from :meth:`encode`)
        -> refined ``ws [T, num_ws, w_dim]`` (float32, on the pipeline's device).

        The video is refined in windows of ``batch_size`` consecutive frames (default: all of them at
        once), one after the other: ``steps`` Adam steps (``lr``) on a window's codes jointly,
        minimising the mean squared error between the rendered frames (constant noise, resized to the
        frames' size with antialiasing when they differ, as pSp pools its output) and the frames, plus
        ``smooth`` times the mean squared step ``|w_t - w_(t-1)|^2`` along the video, which keeps
        neighbouring frames' codes from jittering apart. A window's first step is taken from the
        previous window's refined last code, so the smoothing runs across windows too. Every frame
        gets ``steps`` updates whatever the window; memory grows with the window, not the video.
        ``callback(n)`` is called after each window with its number of frames (e.g. a progress bar)."""
        steps = check_count("steps", steps, minimum=0)
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            found = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"expected one video's frames [T, C, H, W], got {found} (refine one video at a time: the "
                             "smoothness term runs along its frames)")
        self._images(images[:0])  # the channel check; frames become float one window at a time
        n = len(images)
        if ws.shape != (n, self.num_ws, self.synthesis.w_dim):
            raise ValueError(f"expected ws [{n}, {self.num_ws}, {self.synthesis.w_dim}] for {n} frames, "
                             f"got {tuple(ws.shape)}")
        if lr <= 0 or smooth < 0:
            raise ValueError(f"expected lr > 0 and smooth >= 0, got lr={lr}, smooth={smooth}")
        refined = ws.detach().to(self.device, torch.float32).clone()
        if steps == 0 or n == 0:
            return refined
        with frozen(self.synthesis):
            for start in self._chunks(n, batch_size):
                stop = start + (batch_size or n)
                target = self._images(images[start:stop])[0].to(self.device)
                codes = refined[start:stop].clone().requires_grad_(True)
                before = refined[start - 1:start]  # the previous window's last code (none for the first)
                opt = torch.optim.Adam([codes], lr=lr)
                for _ in range(steps):
                    # Not clamped to [0, 1]: pixels outside it still pull their codes back.
                    rendered = (self.synthesis(codes, noise_mode="const").float() + 1) / 2
                    if rendered.shape[-2:] != target.shape[-2:]:
                        rendered = F.interpolate(rendered, size=target.shape[-2:], mode="bilinear", antialias=True,
                                                 align_corners=False)
                    loss = (rendered - target).square().mean()
                    if smooth > 0 and len(before) + len(codes) > 1:
                        path = torch.cat([before, codes])
                        loss = loss + smooth * (path[1:] - path[:-1]).square().sum((1, 2)).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                refined[start:stop] = codes.detach()
                if callback is not None:
                    callback(len(codes))
        return refined

    @torch.no_grad()
    def decode(self, ws: torch.Tensor, *, batch_size: int | None = None, noise_mode: str = "const") -> torch.Tensor:
        """Render latents: ``ws [N, num_ws, w_dim]`` (or ``[B, T, num_ws, w_dim]``) -> images
        ``[N, 3, R, R]`` (or ``[B, T, 3, R, R]``) in [0, 1], with the generator's stored noise."""
        if ws.ndim not in (3, 4) or ws.shape[-2:] != (self.num_ws, self.synthesis.w_dim):
            raise ValueError(f"expected ws [N, {self.num_ws}, {self.synthesis.w_dim}] or [B, T, {self.num_ws}, "
                             f"{self.synthesis.w_dim}], got {tuple(ws.shape)}")
        return to_unit_range(self._render(ws, batch_size, noise_mode))

    def _render(self, ws: torch.Tensor, batch_size: int | None, noise_mode: str) -> torch.Tensor:
        """:meth:`decode` before the conversion to [0, 1]: the generator's own output."""
        lead = tuple(ws.shape[:-2])
        flat = ws.reshape(-1, self.num_ws, self.synthesis.w_dim)
        out = []
        for i in self._chunks(len(flat), batch_size):
            raw = self.synthesis(flat[i:i + (batch_size or len(flat))].to(self.device), noise_mode=noise_mode)
            check_finite_frames(rearrange(raw, "n c h w -> n 1 c h w"), i)
            out.append(raw.float())
        images = torch.cat(out)
        return images.reshape(*lead, *images.shape[1:])

    @torch.no_grad()
    def __call__(self, video: torch.Tensor, *, fps: float | None = None, batch_size: int | None = None,
                 output_type: str = "pt", return_dict: bool = True) -> VideoPipelineOutput | tuple:
        """Reconstruct: ``video [B, T, C, H, W]`` (or images ``[N, C, H, W]``, one-frame videos) in [0, 1]
        -> :class:`VideoPipelineOutput` with ``frames [B, T, 3, R, R]`` in [0, 1] (``fps`` for the
        timestamps, default ``config.fps``)."""
        check_output_type(output_type)
        if isinstance(video, torch.Tensor) and video.ndim == 4:
            video = video.unsqueeze(1)
        raw = self._render(self.encode(video, batch_size=batch_size), batch_size, "const")
        rate = self.config.fps if fps is None else fps
        timestamps = torch.arange(raw.shape[1], dtype=torch.float64).expand(raw.shape[0], -1) / rate
        out = VideoPipelineOutput(finish_frames(raw, output_type), timestamps, rate)
        return out if return_dict else (out.frames,)

    def sample_latents(self, num: int, generator: torch.Generator | None = None, truncation_psi: float = 1.0
                       ) -> torch.Tensor:
        """``ws [num, num_ws, w_dim]`` of random images, through the mapping network (needs one)."""
        if self.mapping is None:
            raise ValueError("this pSp pipeline has no mapping network: it inverts images but cannot sample")
        z = torch.randn([num, self.mapping.config.z_dim], generator=generator)
        return self.mapping(z.to(self.device), truncation_psi=truncation_psi, skip_w_avg_update=True)

    @classmethod
    def from_preset(cls, preset: str | None = None, **config_overrides: Any) -> "PSPPipeline":
        """Fresh components: ``"paper"`` (default: pSp's FFHQ architecture, an IR-SE50 W+ encoder and a
        1024x1024 StyleGAN2) or ``"tiny"`` (a 16x16 generator, a tiny encoder) for tests and examples."""
        preset = preset or "paper"
        if preset not in ("paper", "tiny"):
            raise ValueError(f"unknown PSPPipeline preset {preset!r}; choose 'paper' or 'tiny'")
        from vgz.encoders.psp import GradualStyleEncoder, GradualStyleEncoderConfig
        from vgz.generators.stylegan2 import MappingConfig, SynthesisConfig

        networks = "tiny" if preset == "tiny" else "stylegan2"
        synthesis = SynthesisNetwork(SynthesisConfig.from_preset(networks))
        mapping = MappingNetwork(MappingConfig.from_preset(networks))
        encoder = GradualStyleEncoder(GradualStyleEncoderConfig.from_preset(
            "tiny" if preset == "tiny" else "ir-se50", start_from_latent_avg=True))
        return cls(PSPPipelineConfig(**config_overrides), encoder=encoder, synthesis=synthesis, mapping=mapping).eval()
