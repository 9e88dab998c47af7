"""StyleGAN-V pipeline: content noise, motion noise and timestamps -> videos of any length and frame rate.

    pipe = VideoPipeline.from_pretrained("path/or/org-name")
    out = pipe(num_videos=4, num_frames=64, fps=25, generator=0)
    out.frames                                    # [4, 64, 3, H, W] in [0, 1]
    pipe(num_frames=250, fps=125, generator=0)    # the same motion at 5x the frame rate (slow motion)

Time is continuous: the generator's unit is one frame of its training videos (``config.fps`` of
them per second), and frames may be asked for at any times. Long videos come out chunk by chunk
from :meth:`StyleGANVPipeline.stream`, with memory independent of their length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from vgz.configs import ComponentConfig, config_field
from vgz.generators.stylegan2 import MappingConfig, MappingNetwork
from vgz.generators.styleganv import (MotionConfig, MotionMappingNetwork, StyleGANVSynthesisConfig,
                                      StyleGANVSynthesisNetwork)
from vgz.modeling import ModelMixin
from vgz.pipelines.base import VideoPipeline, VideoPipelineOutput, as_generators, convert_frames, to_unit_range
from vgz.registry import register

__all__ = ["StyleGANVPipelineConfig", "StyleGANVPipeline"]

# Motion noise is drawn in blocks of this many codes, so that a longer video with the same seed
# extends a shorter one instead of drawing different motion.
_MOTION_BLOCK = 64


@dataclass
class StyleGANVPipelineConfig(ComponentConfig):
    """Pipeline-level settings of :class:`StyleGANVPipeline`."""

    fps: float = config_field(25.0, min=1e-3, help="frame rate of the training videos; the generator's time "
                                                   "unit is one of their frames")

    presets = {"styleganv-256": {}, "tiny": {}}


# Component configs of each preset: (preset of the component config, overrides).
_COMPONENT_PRESETS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    # The released StyleGAN-V at 256x256: 2-layer mapping, z and w of 512.
    "styleganv-256": {"mapping": ("stylegan2", {"num_layers": 2}), "motion": ("styleganv", {}),
                      "synthesis": ("styleganv-256", {})},
    "tiny": {"mapping": ("tiny", {}), "motion": ("tiny", {}), "synthesis": ("tiny", {})},
}


@register("pipeline", "styleganv")
class StyleGANVPipeline(VideoPipeline):
    """StyleGAN-V: mapping + continuous motion + time-conditioned synthesis; videos of any length and rate."""

    config_class = StyleGANVPipelineConfig
    component_kinds = {"mapping": "mapping", "motion": "motion", "synthesis": "synthesis",
                       "discriminator": "discriminator"}
    optional_components = ("discriminator",)

    mapping: MappingNetwork
    motion: MotionMappingNetwork
    synthesis: StyleGANVSynthesisNetwork
    discriminator: ModelMixin | None

    def __init__(self, config: StyleGANVPipelineConfig | None = None, *, mapping: MappingNetwork,
                 motion: MotionMappingNetwork, synthesis: StyleGANVSynthesisNetwork,
                 discriminator: ModelMixin | None = None):
        super().__init__(config, mapping=mapping, motion=motion, synthesis=synthesis, discriminator=discriminator)
        m, mo, s = mapping.config, motion.config, synthesis.config
        problems = []
        if m.num_ws != s.num_ws or m.w_dim != s.w_dim:
            problems.append(f"mapping gives {m.num_ws} ws of {m.w_dim}, synthesis takes {s.num_ws} of {s.w_dim}")
        if mo.out_dim != s.motion_v_dim:
            problems.append(f"motion gives {mo.out_dim} channels, synthesis takes motion_v_dim={s.motion_v_dim}")
        if mo.c_dim != m.c_dim:
            problems.append(f"mapping c_dim={m.c_dim} but motion c_dim={mo.c_dim}")
        if problems:
            raise ValueError("StyleGANVPipeline components do not fit together: " + "; ".join(problems))

    @classmethod
    def from_preset(cls, preset: str | None = None, **config_overrides: Any) -> "StyleGANVPipeline":
        """A pipeline with freshly initialised components (``"styleganv-256"`` by default, or ``"tiny"``)."""
        preset = preset or "styleganv-256"
        if preset not in _COMPONENT_PRESETS:
            raise ValueError(f"unknown StyleGANVPipeline preset {preset!r}; choose one of {', '.join(_COMPONENT_PRESETS)}")
        spec = _COMPONENT_PRESETS[preset]
        synthesis = StyleGANVSynthesisNetwork(StyleGANVSynthesisConfig.from_preset(spec["synthesis"][0],
                                                                                   **spec["synthesis"][1]))
        motion = MotionMappingNetwork(MotionConfig.from_preset(spec["motion"][0], **spec["motion"][1]))
        mapping = MappingNetwork(MappingConfig.from_preset(
            spec["mapping"][0], **{"w_dim": synthesis.w_dim, "num_ws": synthesis.num_ws, **spec["mapping"][1]}))
        config = StyleGANVPipelineConfig.from_preset(preset, **config_overrides)
        return cls(config, mapping=mapping, motion=motion, synthesis=synthesis).eval()

    # ----------------------------------------------------------------------------- inputs

    def frame_times(self, num_videos: int, num_frames: int | None = None, fps: float | None = None,
                    timestamps: Any = None) -> torch.Tensor:
        """Frame times in the generator's unit (training frames), float64 ``[num_videos, T]``.

        Either ``num_frames`` frames at ``fps`` (default: the training rate) from 0, or explicit
        ``timestamps`` in seconds, ``[T]`` (the same for every video) or ``[num_videos, T]``.
        """
        if timestamps is not None:
            seconds = torch.as_tensor(timestamps, dtype=torch.float64)
            if seconds.ndim == 1:
                seconds = seconds.expand(num_videos, -1)
            if seconds.ndim != 2 or seconds.shape[0] != num_videos or seconds.shape[1] == 0:
                raise ValueError(f"timestamps must be [T] or [{num_videos}, T] seconds, got {tuple(seconds.shape)}")
            if (seconds < 0).any() or not torch.isfinite(seconds).all():
                raise ValueError("timestamps must be finite and >= 0")
            return seconds * self.config.fps
        if num_frames is None or num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames!r}")
        fps = self.config.fps if fps is None else fps
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        t = torch.arange(num_frames, dtype=torch.float64) * (self.config.fps / fps)
        return t.expand(num_videos, -1)

    def sample_latents(self, generators: Sequence[torch.Generator], t_max: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Content noise ``z [B, z_dim]`` and motion noise ``[B, L, motion z_dim]`` for times up to ``t_max``.

        Video i draws z, then its motion codes in fixed-size blocks, from ``generators[i]``: the
        same seed gives the same content, and the same motion however long the video.
        """
        z_dim, mz_dim = self.mapping.config.z_dim, self.motion.config.z_dim
        length = math.ceil(self.motion.num_codes(t_max) / _MOTION_BLOCK) * _MOTION_BLOCK
        zs, motion_zs = [], []
        for g in generators:
            zs.append(torch.randn([z_dim], generator=g, device=g.device))
            blocks = [torch.randn([_MOTION_BLOCK, mz_dim], generator=g, device=g.device)
                      for _ in range(length // _MOTION_BLOCK)]
            motion_zs.append(torch.cat(blocks))
        device = self.device
        return torch.stack(zs).to(device), torch.stack(motion_zs).to(device)

    def _labels(self, c: Any, num_videos: int) -> torch.Tensor | None:
        c_dim = self.mapping.config.c_dim
        if c_dim == 0:
            if c is not None:
                raise ValueError("this model is unconditional; do not pass c")
            return None
        if c is None:
            raise ValueError(f"this model is class-conditional: pass c, [{num_videos}, {c_dim}] or {num_videos} class ids")
        c = torch.as_tensor(c, device=self.device)
        if c.ndim == 1 and not c.is_floating_point():
            if c.shape[0] != num_videos or (c < 0).any() or (c >= c_dim).any():
                raise ValueError(f"class ids must be {num_videos} integers in [0, {c_dim}), got {c.tolist()}")
            c = torch.nn.functional.one_hot(c, c_dim)
        if c.shape != (num_videos, c_dim):
            raise ValueError(f"c must be [{num_videos}, {c_dim}], got {tuple(c.shape)}")
        return c.float()

    # ----------------------------------------------------------------------------- generation

    @torch.no_grad()
    def stream(
        self,
        num_videos: int = 1,
        num_frames: int | None = 16,
        *,
        fps: float | None = None,
        timestamps: Any = None,
        generator: Any = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        c: Any = None,
        z: torch.Tensor | None = None,
        motion_z: torch.Tensor | None = None,
        output_type: str = "pt",
        chunk_size: int = 16,
    ) -> Iterator[VideoPipelineOutput]:
        """Generate chunk by chunk: yields outputs with ``frames [B, <=chunk_size, C, H, W]``.

        Takes the arguments of :meth:`__call__`. Memory depends on ``chunk_size``, not on the
        video's length; the chunks together equal one ``__call__``.
        """
        if num_videos < 1 or chunk_size < 1:
            raise ValueError(f"num_videos and chunk_size must be >= 1, got {num_videos} and {chunk_size}")
        t = self.frame_times(num_videos, num_frames, fps, timestamps)
        generators = as_generators(generator, num_videos)
        if z is None or motion_z is None:
            drawn_z, drawn_motion_z = self.sample_latents(generators, t.max().item())
            z = drawn_z if z is None else z
            motion_z = drawn_motion_z if motion_z is None else motion_z
        z, motion_z = z.to(self.device), motion_z.to(self.device)
        if z.shape != (num_videos, self.mapping.config.z_dim):
            raise ValueError(f"z must be [{num_videos}, {self.mapping.config.z_dim}], got {tuple(z.shape)}")
        labels = self._labels(c, num_videos)
        ws = self.mapping(z, labels, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          skip_w_avg_update=True)
        # Random per-pixel noise (models trained with noise) follows a single torch.Generator only.
        noise_generator = generator if isinstance(generator, torch.Generator) else None
        rate = None if timestamps is not None else (self.config.fps if fps is None else fps)
        for start in range(0, t.shape[1], chunk_size):
            t_chunk = t[:, start:start + chunk_size]
            motion_v = self.motion(t_chunk.to(self.device, torch.float32), labels, motion_z=motion_z)
            frames = self.synthesis(ws, motion_v, noise_mode=noise_mode, generator=noise_generator)
            yield VideoPipelineOutput(convert_frames(to_unit_range(frames), output_type), t_chunk / self.config.fps, rate)

    def __call__(
        self,
        num_videos: int = 1,
        num_frames: int | None = 16,
        *,
        fps: float | None = None,
        timestamps: Any = None,
        generator: Any = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        c: Any = None,
        z: torch.Tensor | None = None,
        motion_z: torch.Tensor | None = None,
        output_type: str = "pt",
        return_dict: bool = True,
        chunk_size: int = 16,
    ) -> VideoPipelineOutput | tuple:
        """Generate ``num_videos`` videos.

        Args:
            num_videos: batch size B.
            num_frames: frames per video, sampled at ``fps`` from time 0.
            fps: sampling rate in frames per second (default: the training rate ``config.fps``);
                a higher rate over the same duration is slow motion when played at the lower one.
            timestamps: instead of num_frames/fps, frame times in seconds, ``[T]`` or ``[B, T]``.
            generator: ``torch.Generator``, int seed (video i uses seed + i), or a list of either.
            truncation_psi, truncation_cutoff: truncation of w towards its average.
            noise_mode: ``"const"``, ``"random"`` or ``"none"`` (StyleGAN-V is trained without noise).
            c: labels for class-conditional models, ``[B, c_dim]`` or B class ids.
            z, motion_z: explicit content ``[B, z_dim]`` / motion ``[B, L, motion z_dim]`` noise
                (content/motion grids); drawn from ``generator`` when None.
            output_type: ``"pt"``, ``"np"`` or ``"pil"``.
            return_dict: a :class:`VideoPipelineOutput` (True) or a tuple ``(frames,)``.
            chunk_size: frames synthesised at once (memory vs speed).

        Returns:
            :class:`VideoPipelineOutput` with ``frames [B, T, C, H, W]`` in [0, 1].
        """
        chunks = list(self.stream(num_videos, num_frames, fps=fps, timestamps=timestamps, generator=generator,
                                  truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                  noise_mode=noise_mode, c=c, z=z, motion_z=motion_z, output_type="pt",
                                  chunk_size=chunk_size))
        frames = torch.cat([ch.frames for ch in chunks], dim=1)
        out = VideoPipelineOutput(convert_frames(frames, output_type),
                                  torch.cat([ch.timestamps for ch in chunks], dim=1), chunks[0].fps)
        return out if return_dict else (out.frames,)

    def grid_latents(self, content_seeds: Sequence[int], motion_seeds: Sequence[int], t_max: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, motion_z)`` for every (content, motion) seed pair, row-major: ``[rows * cols, ...]``.

        Each seed's latents are those :meth:`sample_latents` draws from it, so the pair (s, s)
        is the video ``self(generator=s)``.
        """
        z = self.sample_latents(as_generators(list(content_seeds), len(content_seeds)), t_max)[0]
        motion_z = self.sample_latents(as_generators(list(motion_seeds), len(motion_seeds)), t_max)[1]
        return z.repeat_interleave(len(motion_seeds), dim=0), motion_z.repeat(len(content_seeds), 1, 1)

    def content_motion_grid(self, content_seeds: Sequence[int], motion_seeds: Sequence[int],
                            **kwargs: Any) -> VideoPipelineOutput:
        """Videos for every (content, motion) pair: row r has content ``content_seeds[r]``, column k
        motion ``motion_seeds[k]``; ``frames [rows * cols, T, C, H, W]`` in row-major order.

        Tile them into one video with ``vgz.tile_videos(out.frames, rows=len(content_seeds))``.
        Other keyword arguments are those of :meth:`__call__`.
        """
        num_videos = len(content_seeds) * len(motion_seeds)
        t = self.frame_times(num_videos, kwargs.get("num_frames", 16), kwargs.get("fps"), kwargs.get("timestamps"))
        z, motion_z = self.grid_latents(content_seeds, motion_seeds, t.max().item())
        return self(num_videos, z=z, motion_z=motion_z, **kwargs)
