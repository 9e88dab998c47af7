"""StyleInV pipeline: a frozen StyleGAN2 animated through its inversion encoder.

    pipe = VideoPipeline.from_pretrained("vgz/styleinv-ffs")
    out = pipe(num_videos=4, num_frames=64, generator=0)       # out.frames [4, 64, 3, 256, 256] in [0, 1]
    pipe(num_frames=256, fps=120, generator=0)                 # the same motion, 4x slower
    pipe.animate("photo.png", num_frames=64)                   # a real face, moved (needs the pSp encoder)

For each video: ``z -> w0 = mapping(z)``, the first frame ``x0 = G(w0)``; for each time ``t`` the
temporal style ``s_t`` (:class:`~vgz.generators.styleinv.TemporalStyle`), the latent
``w_t = w0 + Enc(x0, s_t)`` (:class:`~vgz.encoders.styleinv.ModulatedEncoder`) and the frame
``G(w_t)``, with the generator's constant noise shared by all frames. Times are continuous, in frames
of the training videos (``config.fps`` per second), so videos have any length and frame rate and
stream chunk by chunk (:meth:`StyleInVPipeline.stream`); ``x0`` and the encoder's work before its
first AdaIN block are computed once per video.

Where vgz's pipeline differs from the official scripts: ``truncation_psi`` applies to ``w0`` (the
official generator ignores it), and ``animate`` renders the inverted image's ``x0`` with the call's
``noise_mode`` (the official ``generate_animation.py`` uses random noise for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange, repeat

from vgz.configs import ComponentConfig, config_field
from vgz.encoders.styleinv import ModulatedEncoder, ModulatedEncoderConfig
from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork
from vgz.generators.styleinv import TemporalStyle, TemporalStyleConfig
from vgz.modeling import ModelMixin
from vgz.pipelines.base import VideoPipeline, VideoPipelineOutput, check_finite_frames, load_images
from vgz.pipelines.styleganv import StyleGANVPipeline
from vgz.registry import register

__all__ = ["StyleInVPipelineConfig", "StyleInVPipeline"]


@dataclass
class StyleInVPipelineConfig(ComponentConfig):
    """Pipeline-level settings of :class:`StyleInVPipeline`."""

    fps: float = config_field(30.0, min=1e-3, help="frame rate of the training videos; the time unit is one of "
                                                   "their frames")
    input_residual: bool = config_field(True, help="the encoder's codes are offsets from w0 (every official "
                                                   "config); False: from the generator's average w")

    presets = {"ffs": {}, "dfuf": {}, "sky": {"fps": 25.0}, "taichi": {"fps": 25.0}, "tiny": {}}


@register("pipeline", "styleinv")
class StyleInVPipeline(StyleGANVPipeline):
    """StyleInV: frozen StyleGAN2 mapping + synthesis, a temporal style and a modulated inversion encoder.

    Called like :class:`~vgz.pipelines.StyleGANVPipeline` (``num_videos, num_frames | timestamps,
    fps, generator, z, motion_z, w, truncation_psi, noise_mode, output_type``), with ``motion_z`` in
    the official layout ``[B, L, z_dim]``, one vector per anchor (its first is replaced by the
    learned ``frame_0_const``), plus ``stylized=True`` to render the frames with the
    ``stylized_synthesis`` (a style-transfer fine-tune; ``x0`` and the latents stay the original
    generator's, as the official ``generate_videos_finetune``). Optional components:
    ``inversion_encoder`` (the pSp W encoder the model was trained from, for :meth:`animate`),
    ``stylized_synthesis`` and ``discriminator`` (for fine-tuning).
    """

    config_class = StyleInVPipelineConfig
    component_kinds = {"mapping": "mapping", "synthesis": "synthesis", "motion": "motion", "encoder": "encoder",
                       "inversion_encoder": "encoder", "stylized_synthesis": "synthesis",
                       "discriminator": "discriminator"}
    optional_components = ("inversion_encoder", "stylized_synthesis", "discriminator")

    mapping: MappingNetwork
    synthesis: SynthesisNetwork
    motion: TemporalStyle
    encoder: ModulatedEncoder
    inversion_encoder: ModelMixin | None
    stylized_synthesis: SynthesisNetwork | None
    discriminator: ModelMixin | None

    def __init__(self, config: StyleInVPipelineConfig | None = None, *, mapping: MappingNetwork,
                 synthesis: SynthesisNetwork, motion: TemporalStyle, encoder: ModulatedEncoder,
                 inversion_encoder: ModelMixin | None = None, stylized_synthesis: SynthesisNetwork | None = None,
                 discriminator: ModelMixin | None = None):
        VideoPipeline.__init__(self, config, mapping=mapping, synthesis=synthesis, motion=motion, encoder=encoder,
                               inversion_encoder=inversion_encoder, stylized_synthesis=stylized_synthesis,
                               discriminator=discriminator)
        m, s, mo, e = mapping.config, synthesis.config, motion.config, encoder.config
        problems = []
        if m.num_ws != s.num_ws or m.w_dim != s.w_dim:
            problems.append(f"mapping gives {m.num_ws} ws of {m.w_dim}, synthesis takes {s.num_ws} of {s.w_dim}")
        if m.c_dim:
            problems.append(f"the mapping is class-conditional (c_dim={m.c_dim}); StyleInV animates unconditional "
                            "generators")
        if e.w_dim != s.w_dim:
            problems.append(f"the encoder gives codes of {e.w_dim}, the synthesis takes w of {s.w_dim}")
        if mo.w_dim != e.style_dim:
            problems.append(f"the temporal style has {mo.w_dim} values, the encoder takes style_dim={e.style_dim}")
        if mo.content_dim not in (0, s.w_dim):
            problems.append(f"the temporal style joins w0 of content_dim={mo.content_dim}, the generator's w has "
                            f"{s.w_dim}")
        if e.input_size != s.img_resolution or e.input_nc != s.img_channels:
            problems.append(f"the encoder reads {e.input_nc}x{e.input_size}x{e.input_size} images, the generator "
                            f"makes {s.img_channels}x{s.img_resolution}x{s.img_resolution}")
        if stylized_synthesis is not None and stylized_synthesis.config != s:
            problems.append("the stylized synthesis is not the same architecture as the synthesis (it must be a "
                            "fine-tune of it: vgz train --recipe stylegan2 --transfer ...)")
        if inversion_encoder is not None and inversion_encoder.config.w_dim != s.w_dim:
            problems.append(f"the inversion encoder gives codes of {inversion_encoder.config.w_dim}, the "
                            f"synthesis takes w of {s.w_dim}")
        if problems:
            raise ValueError("StyleInVPipeline components do not fit together: " + "; ".join(problems))

    @classmethod
    def from_preset(cls, preset: str | None = None, **config_overrides: Any) -> "StyleInVPipeline":
        """Fresh components: ``"ffs"`` (default), ``"dfuf"``, ``"sky"``, ``"taichi"`` (the official
        configs' networks: a 256x256 StyleGAN2, an IR-SE50 encoder) or ``"tiny"`` (32x32, for tests)."""
        preset = preset or "ffs"
        if preset not in StyleInVPipelineConfig.presets:
            raise ValueError(f"unknown StyleInVPipeline preset {preset!r}; choose one of "
                             f"{', '.join(StyleInVPipelineConfig.presets)}")
        tiny = preset == "tiny"
        # tiny: 32x32, the least at which the encoder's last stage (1/16) keeps more than one pixel for AdaIN
        synthesis = SynthesisNetwork(SynthesisConfig.from_preset("tiny", img_resolution=32) if tiny else
                                     SynthesisConfig.from_preset("paper256"))
        mapping = MappingNetwork(MappingConfig.from_preset("tiny" if tiny else "paper256", num_ws=synthesis.num_ws))
        motion = TemporalStyle(TemporalStyleConfig.from_preset(preset))
        encoder = ModulatedEncoder(ModulatedEncoderConfig.from_preset(
            "tiny" if tiny else "ir-se50", input_size=synthesis.config.img_resolution))
        config = StyleInVPipelineConfig.from_preset(preset, **config_overrides)
        return cls(config, mapping=mapping, synthesis=synthesis, motion=motion, encoder=encoder).eval()

    # ----------------------------------------------------------------------------- generation

    def _content(self, ws: torch.Tensor, noise_mode: str, generator: Any, batch_size: int,  # type: ignore[override]
                 stylized: bool = False) -> dict[str, Any]:
        """Per video, once: ``w0``, the encoder's features of ``x0 = G(w0)`` and the
        synthesis that renders the frames (``stylized``: the style-transfer fine-tune's)."""
        if stylized and self.stylized_synthesis is None:
            raise ValueError("stylized=True needs a stylized_synthesis (a style-transfer fine-tune of the generator: "
                             "vgz train --recipe stylegan2 --preset transfer --transfer THIS_PIPELINE ...)")
        noise_generator = generator if isinstance(generator, torch.Generator) else None
        prefixes = []
        for b0 in range(0, ws.shape[0], batch_size):
            x0 = self.synthesis(ws[b0:b0 + batch_size], noise_mode=noise_mode, generator=noise_generator)
            check_finite_frames(x0.unsqueeze(1), 0, generator, video_offset=b0, num_videos=ws.shape[0])
            prefixes.append(self.encoder.encode_prefix(x0))
        return {"w0": ws[:, 0], "prefix": torch.cat(prefixes),
                "render": self.stylized_synthesis if stylized else self.synthesis}

    def _frames(self, t: torch.Tensor, first_frame: int, content: dict[str, Any],  # type: ignore[override]
                labels: torch.Tensor | None, motion_z: torch.Tensor, batch_size: int, noise_mode: str,
                generator: Any) -> torch.Tensor:
        noise_generator = generator if isinstance(generator, torch.Generator) else None
        num_videos, num_frames, parts = t.shape[0], t.shape[1], []
        for b0 in range(0, num_videos, batch_size):
            b = slice(b0, min(b0 + batch_size, num_videos))
            ws = self.latents(t[b], content["w0"][b], motion_z[b], prefix=content["prefix"][b])
            flat = repeat(ws, "b t d -> (b t) n d", n=self.synthesis.num_ws)
            raw = rearrange(content["render"](flat, noise_mode=noise_mode, generator=noise_generator),
                            "(b t) c h w -> b t c h w", t=num_frames)
            check_finite_frames(raw, first_frame, generator, video_offset=b0, num_videos=num_videos)
            parts.append(raw.float())
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def latents(self, t: torch.Tensor, w0: torch.Tensor, motion_z: torch.Tensor, *, x0: torch.Tensor | None = None,
                prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame latents ``w_t = w0 + Enc(x0, s_t)``: ``t [B, T]`` (frames), ``w0 [B, w_dim]``, motion
        noise ``[B, L, z_dim]`` and the first frames ``x0 [B, C, H, W]`` (raw generator output) or their
        :meth:`~vgz.encoders.styleinv.ModulatedEncoder.encode_prefix` features -> ``[B, T, w_dim]``.

        Differentiable. The offsets start from ``w0`` (``config.input_residual``) or the generator's ``w_avg``.
        """
        if prefix is None:
            if x0 is None:
                raise ValueError("pass x0 (the first frames) or their encoder prefix features")
            prefix = self.encoder.encode_prefix(x0)
        styles = self.motion(t.to(self.device, torch.float32), w0, motion_z=motion_z)
        base = w0 if self.config.input_residual else self.mapping.w_avg.expand_as(w0)
        return self.encoder.forward_prefix(prefix, styles) + base.unsqueeze(1)

    # ----------------------------------------------------------------------------- real images

    @torch.no_grad()
    def invert(self, image: Any) -> torch.Tensor:
        """Invert images with the pipeline's pSp W encoder: an image (path, PIL, array, tensor in [0, 1])
        or a list of them -> ``w0 [N, w_dim]``. The centre square is resized to the encoder's input
        size (bicubic, antialiased), as ``vgz invert`` does."""
        if self.inversion_encoder is None:
            raise ValueError("this StyleInV pipeline has no inversion_encoder (the pSp W encoder it was trained "
                             "from): add one (StyleInVPipeline(..., inversion_encoder=WEncoder...) or convert the pSp "
                             "stage with vgz convert styleinv --psp) to animate real images")
        from vgz.data.base import resize_center_crop

        images = resize_center_crop(load_images(image), self.inversion_encoder.config.input_size)
        codes = self.inversion_encoder(images.to(self.device).float() / 255 * 2 - 1)
        return codes if codes.ndim == 2 else codes[:, 0]

    def animate(self, image: Any, num_frames: int | None = 16, **kwargs: Any) -> VideoPipelineOutput | tuple:
        """Move real images: ``w0`` from :meth:`invert`, its reconstruction ``x0 = G(w0)`` as the first
        frame, then the temporal styles. Other keyword arguments are those of ``__call__``
        (``fps``, ``timestamps``, ``generator`` for the motion, ``motion_z``...); returns ``frames
        [N, T, 3, R, R]`` in [0, 1]."""
        w0 = self.invert(image)
        return self(w0.shape[0], num_frames, w=w0, **kwargs)
