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
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from einops import repeat

from vgz.configs import ComponentConfig, config_field
from vgz.generators.stylegan2 import MappingConfig, MappingNetwork
from vgz.generators.styleganv import (MotionConfig, MotionMappingNetwork, StyleGANVSynthesisConfig,
                                      StyleGANVSynthesisNetwork)
from vgz.modeling import ModelMixin
from vgz.pipelines.base import (VideoPipeline, VideoPipelineOutput, as_generators, check_count, check_finite_frames,
                                check_number, check_output_type, finish_frames)
from vgz.registry import register

__all__ = ["StyleGANVPipelineConfig", "StyleGANVPipeline", "MAX_MOTION_NOISE_BYTES"]

# Motion noise is drawn in blocks of this many codes, so that a longer video with the same seed
# extends a shorter one instead of drawing different motion.
_MOTION_BLOCK = 64

#: The most motion noise (bytes, float32) one call draws. The released model needs ~11.5 MB per video
#: for an hour at 25 fps, so this allows long videos in large batches; what it refuses (e.g. a few
#: frames at fps=1e-9, spanning centuries) could never be allocated.
MAX_MOTION_NOISE_BYTES = 2**30

# (number of frames, last frame time, times(start, stop) -> [B, stop - start] float64 training frames,
#  what the request is, for error messages)
_Schedule = tuple[int, float, Callable[[int, int], torch.Tensor], str]


def _size(num_bytes: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:,.1f} {unit}"
    return f"{num_bytes:.0f} bytes"


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

    @property
    def content_z_dim(self) -> int:
        """Size of the content noise ``z`` a call takes (StyleGAN-V: the mapping network's)."""
        return self.mapping.config.z_dim

    def _schedule(self, num_videos: int, num_frames: int | None, fps: float | None, timestamps: Any) -> _Schedule:
        """Validate a request's times without materialising them (a stream of any length stays flat)."""
        if timestamps is not None:
            seconds = torch.as_tensor(timestamps, dtype=torch.float64)
            if seconds.ndim == 1:
                seconds = seconds.expand(num_videos, -1)
            if seconds.ndim != 2 or seconds.shape[0] != num_videos or seconds.shape[1] == 0:
                raise ValueError(f"timestamps must be [T] or [{num_videos}, T] seconds, got {tuple(seconds.shape)}")
            if (seconds < 0).any() or not torch.isfinite(seconds).all():
                raise ValueError("timestamps must be finite and >= 0")
            t = seconds * self.config.fps
            last = float(seconds.max())
            what = f"timestamps up to {last:g} s ({float(t.max()):g} frames at the model's {self.config.fps:g} fps)"
            return t.shape[1], float(t.max()), lambda start, stop: t[:, start:stop], what
        if num_frames is None:
            raise ValueError("pass num_frames (or timestamps)")
        num_frames = check_count("num_frames", num_frames)
        fps = self.config.fps if fps is None else check_number("fps", fps, positive=True)
        ratio = self.config.fps / fps  # generator time units (training frames) per output frame
        t_max = (num_frames - 1) * ratio
        what = (f"num_frames={num_frames} at fps={fps:g} (a span of {(num_frames - 1) / fps:g} s, {t_max:g} frames at "
                f"the model's {self.config.fps:g} fps)")
        if not math.isfinite(t_max):
            raise ValueError(f"{what}: the frame times overflow; ask for a higher fps")

        def times(start: int, stop: int) -> torch.Tensor:
            # the same float64 values as slicing arange(num_frames) * ratio: integers are exact
            return (torch.arange(start, stop, dtype=torch.float64) * ratio).expand(num_videos, -1)

        return num_frames, t_max, times, what

    def frame_times(self, num_videos: int, num_frames: int | None = None, fps: float | None = None,
                    timestamps: Any = None) -> torch.Tensor:
        """Frame times in the generator's unit (training frames), float64 ``[num_videos, T]``.

        Either ``num_frames`` frames at ``fps`` (default: the training rate) from 0, or explicit
        ``timestamps`` in seconds, ``[T]`` (the same for every video) or ``[num_videos, T]``.
        """
        num_videos = check_count("num_videos", num_videos)
        num_steps, _, times, _ = self._schedule(num_videos, num_frames, fps, timestamps)
        return times(0, num_steps)

    def last_frame_time(self, num_frames: int | None = None, fps: float | None = None, timestamps: Any = None,
                        *, num_videos: int = 1) -> float:
        """The latest frame time of a request (see :meth:`frame_times`), in training frames, checked:
        the motion noise ``num_videos`` videos need up to it must fit (:data:`MAX_MOTION_NOISE_BYTES`)."""
        num_videos = check_count("num_videos", num_videos)
        _, t_max, _, what = self._schedule(num_videos, num_frames, fps, timestamps)
        self._motion_length(num_videos, t_max, what)
        return t_max

    def _motion_length(self, num_videos: int, t_max: float, what: str) -> int:
        """Motion codes per video :meth:`sample_latents` draws for times up to ``t_max`` (whole
        blocks), refusing, before anything is drawn, noise that would exceed MAX_MOTION_NOISE_BYTES."""
        if not (math.isfinite(t_max) and t_max >= 0):
            raise ValueError(f"{what}: frame times must be finite and >= 0, got a last time of {t_max!r}")
        length = math.ceil(self.motion.num_codes(t_max) / _MOTION_BLOCK) * _MOTION_BLOCK
        mz_dim = self.motion.config.z_dim
        num_bytes = num_videos * length * mz_dim * 4
        if num_bytes > MAX_MOTION_NOISE_BYTES:
            raise ValueError(
                f"{what}: the motion noise would need {length:,} codes of {mz_dim} values per video (one every "
                f"{self.motion.config.motion_z_distance:g} frames), {_size(num_bytes)} for {num_videos} video"
                f"{'s' if num_videos > 1 else ''}, more than the {_size(MAX_MOTION_NOISE_BYTES)} allowed at once; "
                "ask for fewer frames, a higher fps or fewer videos at a time")
        return length

    def sample_latents(self, generators: Sequence[torch.Generator], t_max: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Content noise ``z [B, z_dim]`` and motion noise ``[B, L, motion z_dim]`` for times up to ``t_max``.

        Video i draws z, then its motion codes in fixed-size blocks, from ``generators[i]``: the
        same seed gives the same content, and the same motion however long the video. Noise over
        :data:`MAX_MOTION_NOISE_BYTES` is refused before any is drawn.
        """
        z_dim, mz_dim = self.content_z_dim, self.motion.config.z_dim
        length = self._motion_length(len(generators), t_max, f"times up to {t_max:g} frames")
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
        w: torch.Tensor | None = None,
        output_type: str = "pt",
        chunk_size: int = 16,
        batch_size: int | None = None,
        **options: Any,
    ) -> Iterator[VideoPipelineOutput]:
        """Generate chunk by chunk: yields outputs with ``frames [B, <=chunk_size, C, H, W]``.

        Takes the arguments of :meth:`__call__`. Memory depends on ``chunk_size`` and
        ``batch_size``, not on the video's length; the chunks together equal one ``__call__``.
        Frames that come out NaN or infinite raise :class:`~vgz.pipelines.base.NonFiniteOutputError`.
        """
        num_videos = check_count("num_videos", num_videos)
        chunk_size = check_count("chunk_size", chunk_size)
        batch_size = num_videos if batch_size is None else check_count("batch_size", batch_size)
        truncation_psi = check_number("truncation_psi", truncation_psi)
        check_output_type(output_type)
        num_steps, t_max, times, what = self._schedule(num_videos, num_frames, fps, timestamps)
        if z is None or motion_z is None:
            self._motion_length(num_videos, t_max, what)  # refuse before drawing, naming the request
            drawn_z, drawn_motion_z = self.sample_latents(as_generators(generator, num_videos), t_max)
            z = drawn_z if z is None else z
            motion_z = drawn_motion_z if motion_z is None else motion_z
        z, motion_z = z.to(self.device), motion_z.to(self.device)
        if z.shape != (num_videos, self.content_z_dim):
            raise ValueError(f"z must be [{num_videos}, {self.content_z_dim}], got {tuple(z.shape)}")
        if motion_z.ndim != 3 or motion_z.shape[0] != num_videos:
            raise ValueError(f"motion_z must be [{num_videos}, codes, {self.motion.config.z_dim}], "
                             f"got {tuple(motion_z.shape)}")
        labels = self._labels(c, num_videos)
        content = self._content(self._ws(z, w, labels, truncation_psi, truncation_cutoff), noise_mode, generator,
                                batch_size, **options)
        rate = None if timestamps is not None else (self.config.fps if fps is None else fps)
        for start in range(0, num_steps, chunk_size):
            t_chunk = times(start, min(start + chunk_size, num_steps))
            frames = self._frames(t_chunk, start, content, labels, motion_z, batch_size, noise_mode, generator)
            yield VideoPipelineOutput(finish_frames(frames, output_type), t_chunk / self.config.fps, rate)

    def _ws(self, z: torch.Tensor, w: torch.Tensor | None, labels: torch.Tensor | None, truncation_psi: float,
            truncation_cutoff: int | None) -> torch.Tensor:
        """Content latents ``[B, num_ws, w_dim]``: mapped from ``z`` or, when given, ``w`` broadcast."""
        if w is None:
            return self.mapping(z, labels, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                skip_w_avg_update=True)
        cfg = self.mapping.config
        w = torch.as_tensor(w, dtype=torch.float32, device=self.device)
        if w.ndim == 2:
            w = repeat(w, "b d -> b n d", n=cfg.num_ws)
        if w.shape != (z.shape[0], cfg.num_ws, cfg.w_dim):
            raise ValueError(f"w must be [{z.shape[0]}, {cfg.w_dim}] or [{z.shape[0]}, {cfg.num_ws}, {cfg.w_dim}], "
                             f"got {tuple(w.shape)}")
        return w

    def _content(self, ws: torch.Tensor, noise_mode: str, generator: Any, batch_size: int, **options: Any) -> Any:
        """What every chunk of the videos reuses (StyleGAN-V: the latents ``ws`` themselves); ``options``
        are the model-specific keyword arguments of the call (StyleGAN-V has none)."""
        if options:
            raise TypeError(f"{type(self).__name__} got unexpected keyword argument(s) {', '.join(sorted(options))}")
        return ws

    def _frames(self, t: torch.Tensor, first_frame: int, ws: torch.Tensor, labels: torch.Tensor | None,
                motion_z: torch.Tensor, batch_size: int, noise_mode: str, generator: Any) -> torch.Tensor:
        """The generator's output ``[B, T, C, H, W]`` (about [-1, 1]) at times ``t [B, T]``, synthesised
        ``batch_size`` videos at a time (a helper, so that a stream holds no intermediate tensors between
        chunks)."""
        # Random per-pixel noise (models trained with noise) follows a single torch.Generator only.
        noise_generator = generator if isinstance(generator, torch.Generator) else None
        num_videos, parts = ws.shape[0], []
        for b0 in range(0, num_videos, batch_size):
            b1 = min(b0 + batch_size, num_videos)
            motion_v = self.motion(t[b0:b1].to(self.device, torch.float32), None if labels is None else labels[b0:b1],
                                   motion_z=motion_z[b0:b1])
            raw = self.synthesis(ws[b0:b1], motion_v, noise_mode=noise_mode, generator=noise_generator)
            check_finite_frames(raw, first_frame, generator, video_offset=b0, num_videos=num_videos)
            parts.append(raw.float())
        return parts[0] if len(parts) == 1 else torch.cat(parts)

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
        w: torch.Tensor | None = None,
        output_type: str = "pt",
        return_dict: bool = True,
        chunk_size: int = 16,
        batch_size: int | None = None,
        **options: Any,
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
            w: explicit content latents instead of z, ``[B, w_dim]`` or ``[B, num_ws, w_dim]``
                (e.g. an inverted image); truncation does not apply to them.
            output_type: ``"pt"``, ``"np"`` or ``"pil"`` (in [0, 1]); ``"uint8"`` (as StyleGAN-V's metrics
                convert frames); ``"raw"`` (the generator's output, about [-1, 1]).
            return_dict: a :class:`VideoPipelineOutput` (True) or a tuple ``(frames,)``.
            chunk_size: frames synthesised at once (memory vs speed).
            batch_size: videos synthesised at once (default: all B). Frames do not depend on it
                (up to float rounding), except random per-pixel noise from one shared
                ``torch.Generator``, which is drawn batch by batch.
            options: model-specific settings (StyleInV: ``stylized=True``); others are a TypeError.

        Returns:
            :class:`VideoPipelineOutput` with ``frames [B, T, C, H, W]`` in [0, 1].

        Raises:
            ValueError: bad arguments, or a request whose motion noise would exceed
                :data:`MAX_MOTION_NOISE_BYTES` (e.g. a tiny ``fps``);
                :class:`~vgz.pipelines.base.NonFiniteOutputError` when frames come out NaN/inf.
            TypeError: a count (``num_videos``, ``num_frames``, ``chunk_size``, ``batch_size``)
                that is not an integer.
        """
        check_output_type(output_type)
        self._check_output_fits(check_count("num_videos", num_videos),
                                self._schedule(num_videos, num_frames, fps, timestamps)[0])
        chunks = list(self.stream(num_videos, num_frames, fps=fps, timestamps=timestamps, generator=generator,
                                  truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                  noise_mode=noise_mode, c=c, z=z, motion_z=motion_z, w=w, output_type="raw",
                                  chunk_size=chunk_size, batch_size=batch_size, **options))
        frames = torch.cat([ch.frames for ch in chunks], dim=1)
        out = VideoPipelineOutput(finish_frames(frames, output_type),
                                  torch.cat([ch.timestamps for ch in chunks], dim=1), chunks[0].fps)
        return out if return_dict else (out.frames,)

    def _check_output_fits(self, num_videos: int, num_steps: int) -> None:
        """Refuse a ``__call__`` whose frames, all held at once, exceed the device's whole memory."""
        device = self.device
        if device.type == "cuda":
            memory = torch.cuda.get_device_properties(device).total_memory
        else:
            try:
                memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            except (ValueError, OSError, AttributeError):  # not Linux/Unix: nothing to compare with
                return
        cfg = self.synthesis.config
        needed = num_videos * num_steps * cfg.img_channels * cfg.img_resolution ** 2 * 4  # float32 frames
        if needed > memory:
            raise ValueError(
                f"{num_videos} video{'s' if num_videos > 1 else ''} of {num_steps:,} frames at "
                f"{cfg.img_resolution}x{cfg.img_resolution} are {_size(needed)} of frames, more than the "
                f"{_size(memory)} of memory of {device}: use stream(), which yields them chunk by chunk in flat "
                "memory (vgz generate streams to files)")

    def grid_latents(self, content_seeds: Sequence[int], motion_seeds: Sequence[int], t_max: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, motion_z)`` for every (content, motion) seed pair, row-major: ``[rows * cols, ...]``.

        Each seed's latents are those :meth:`sample_latents` draws from it, so the pair (s, s)
        is the video ``self(generator=s)``.
        """
        rows, cols = len(content_seeds), len(motion_seeds)
        self._motion_length(rows * cols, t_max, f"a {rows}x{cols} content/motion grid up to time {t_max:g}")
        z = self.sample_latents(as_generators(list(content_seeds), rows), t_max)[0]
        motion_z = self.sample_latents(as_generators(list(motion_seeds), cols), t_max)[1]
        return z.repeat_interleave(cols, dim=0), motion_z.repeat(rows, 1, 1)

    def content_motion_grid(self, content_seeds: Sequence[int], motion_seeds: Sequence[int],
                            **kwargs: Any) -> VideoPipelineOutput:
        """Videos for every (content, motion) pair: row r has content ``content_seeds[r]``, column k
        motion ``motion_seeds[k]``; ``frames [rows * cols, T, C, H, W]`` in row-major order.

        Tile them into one video with ``vgz.tile_videos(out.frames, rows=len(content_seeds))``.
        Other keyword arguments are those of :meth:`__call__`.
        """
        num_videos = len(content_seeds) * len(motion_seeds)
        t_max = self.last_frame_time(kwargs.get("num_frames", 16), kwargs.get("fps"), kwargs.get("timestamps"),
                                     num_videos=num_videos)
        z, motion_z = self.grid_latents(content_seeds, motion_seeds, t_max)
        return self(num_videos, z=z, motion_z=motion_z, **kwargs)
