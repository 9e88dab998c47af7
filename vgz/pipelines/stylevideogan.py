"""StyleVideoGAN pipeline: W+ trajectories of a GRU motion generator, rendered by a frozen StyleGAN2.

    pipe = VideoPipeline.from_pretrained("runs/talking/pipeline")
    out = pipe(num_videos=4, num_frames=250, generator=0)          # the training subject, 250 steps
    pipe(num_frames=250, identity=7, generator=0)                  # subject of seed 7 (rendered, re-embedded)
    pipe(num_frames=250, identity="photo.png", generator=0)        # a photo's subject (needs the pSp encoder)
    pipe(num_frames=250, identity=7, offset="naive", generator=0)  # the paper's ablation

For each video the motion generator (:class:`~vgz.generators.stylevideogan.MotionGenerator`) draws
``i`` and one step noise ``s_k`` per step and emits ``w_0, w_1, ...`` in W+, one per frame of the
training footage (``config.fps`` per second); StyleGAN2 renders them. The GRU state carries over
between chunks, so videos of any length stream in flat memory and a long video extends a short one of
the same seed. Other frame rates interpolate W+ linearly between steps (exact at whole steps).

**The offset trick** (paper Sec. 3, Fig. 4) moves the motion onto another subject ``w_new``: with the
training subject's PCA (mean ``mu``, 32 components ``U``, stored in the motion generator),
``w'_new = mu + U U^T (w_new - mu)`` is the training subject in ``w_new``'s state (pose, expression),
``Delta = w_new - w'_new`` its identity, and every step is shifted: ``w_k + Delta``. The paper only
shifts, so its first frame is ``w_0 + Delta``, in whatever state the sampled ``w_0`` has. vgz also
makes the motion *begin* in the new subject's state (``fit_start=True``, the default): the content code
``i`` (which is ``l_0``, so it alone decides ``w_0``) is fitted, from the seed's ``i``, by L-BFGS so
that ``w_0(i)`` lands on ``w'_new``; then the first frame is ``w_0 + Delta = w_new`` up to the fit's
residual, and the motion is the generator's from that start. ``offset="naive"`` is the ablation the
paper shows: ``Delta = w_new - w_0``, the whole difference, state included.

New subjects: an int seed is rendered by the StyleGAN2 and re-embedded with the pipeline's pSp encoder,
as the paper does (its mapping's W directly, with a warning, when the pipeline has no encoder); an
image is embedded with the encoder; W+ latents are used as given.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from einops import rearrange

from vgz.configs import ComponentConfig, config_field
from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork
from vgz.generators.stylevideogan import MotionGenerator, MotionGeneratorConfig
from vgz.modeling import ModelMixin, frozen
from vgz.pipelines.base import (VideoPipeline, as_generators, check_count, check_finite_frames, load_images,
                                to_unit_range)
from vgz.pipelines.styleganv import _MOTION_BLOCK, MAX_MOTION_NOISE_BYTES, StyleGANVPipeline, _size
from vgz.registry import register

__all__ = ["StyleVideoGANPipelineConfig", "StyleVideoGANPipeline", "OFFSETS"]

#: ``offset=`` values: the paper's PCA offset trick, or its naive-shift ablation.
OFFSETS = ("pca", "naive")


@dataclass
class StyleVideoGANPipelineConfig(ComponentConfig):
    """Pipeline-level settings of :class:`StyleVideoGANPipeline`."""

    fps: float = config_field(25.0, min=1e-3, help="frame rate of the training footage: one generator step per "
                                                   "frame of it")

    presets = {"paper": {}, "paper256": {}, "tiny": {}}


@register("pipeline", "stylevideogan")
class StyleVideoGANPipeline(StyleGANVPipeline):
    """StyleVideoGAN: a GRU motion generator in W+ and a frozen StyleGAN2 (mapping + synthesis).

    Called like :class:`~vgz.pipelines.StyleGANVPipeline` (``num_videos, num_frames | timestamps, fps,
    generator, z, motion_z, truncation_psi, noise_mode, output_type, chunk_size, batch_size``) with
    ``z`` the motion generator's content codes ``i [B, z_dim]`` and ``motion_z`` its step noise
    ``[B, L, z_dim]`` (``s_k`` for step ``k + 1``), plus the options ``identity`` (None: the
    training subject; an int seed or a list of one per video; an image path, PIL image or tensor, or
    a list; W+ latents ``[num_ws, w_dim]`` or ``[B, num_ws, w_dim]``), ``offset`` (``"pca"`` or
    ``"naive"``) and ``fit_start`` (see the module docstring). ``w=`` is the same as ``identity=``
    W+ latents (what ``vgz generate --image`` passes). Optional components: ``encoder`` (the pSp
    encoder the training latents were made with) and ``discriminator`` (the critic, for fine-tuning).
    """

    config_class = StyleVideoGANPipelineConfig
    component_kinds = {"mapping": "mapping", "synthesis": "synthesis", "motion": "motion", "encoder": "encoder",
                       "discriminator": "discriminator"}
    optional_components = ("encoder", "discriminator")

    mapping: MappingNetwork
    synthesis: SynthesisNetwork
    motion: MotionGenerator
    encoder: ModelMixin | None
    discriminator: ModelMixin | None

    def __init__(self, config: StyleVideoGANPipelineConfig | None = None, *, mapping: MappingNetwork,
                 synthesis: SynthesisNetwork, motion: MotionGenerator, encoder: ModelMixin | None = None,
                 discriminator: ModelMixin | None = None):
        VideoPipeline.__init__(self, config, mapping=mapping, synthesis=synthesis, motion=motion, encoder=encoder,
                               discriminator=discriminator)
        m, s, mo = mapping.config, synthesis.config, motion.config
        problems = []
        if m.num_ws != s.num_ws or m.w_dim != s.w_dim:
            problems.append(f"mapping gives {m.num_ws} ws of {m.w_dim}, synthesis takes {s.num_ws} of {s.w_dim}")
        if m.c_dim:
            problems.append(f"the mapping is class-conditional (c_dim={m.c_dim}); StyleVideoGAN moves an "
                            "unconditional generator")
        if (mo.num_ws, mo.w_dim) != (s.num_ws, s.w_dim):
            problems.append(f"the motion generator emits {mo.num_ws} ws of {mo.w_dim}, the synthesis takes "
                            f"{s.num_ws} of {s.w_dim}")
        if encoder is not None:
            e = encoder.config
            if e.w_dim != s.w_dim or getattr(e, "n_styles", s.num_ws) != s.num_ws:
                problems.append(f"the encoder gives {getattr(e, 'n_styles', 1)} codes of {e.w_dim}, the synthesis "
                                f"takes {s.num_ws} of {s.w_dim}")
        if problems:
            raise ValueError("StyleVideoGANPipeline components do not fit together: " + "; ".join(problems))

    @classmethod
    def from_preset(cls, preset: str | None = None, **config_overrides: Any) -> "StyleVideoGANPipeline":
        """Fresh components: ``"paper"`` (default: a 1024x1024 StyleGAN2, 18 ws), ``"paper256"`` (256x256,
        14 ws) or ``"tiny"`` (16x16, for tests)."""
        preset = preset or "paper"
        if preset not in StyleVideoGANPipelineConfig.presets:
            raise ValueError(f"unknown StyleVideoGANPipeline preset {preset!r}; choose one of "
                             f"{', '.join(StyleVideoGANPipelineConfig.presets)}")
        networks = {"paper": "stylegan2", "paper256": "paper256", "tiny": "tiny"}[preset]
        synthesis = SynthesisNetwork(SynthesisConfig.from_preset(networks))
        mapping = MappingNetwork(MappingConfig.from_preset(networks, num_ws=synthesis.num_ws))
        motion = MotionGenerator(MotionGeneratorConfig.from_preset(preset, num_ws=synthesis.num_ws,
                                                                   w_dim=synthesis.w_dim))
        config = StyleVideoGANPipelineConfig.from_preset(preset, **config_overrides)
        return cls(config, mapping=mapping, synthesis=synthesis, motion=motion).eval()

    # ----------------------------------------------------------------------------- noise

    @property
    def content_z_dim(self) -> int:
        # i, the motion generator's content code: sample_latents draws it, then the step noise s in blocks
        return self.motion.config.z_dim

    def _motion_length(self, num_videos: int, t_max: float, what: str) -> int:
        """Step noises per video for frame times up to ``t_max`` (whole blocks), refusing more than
        :data:`~vgz.pipelines.styleganv.MAX_MOTION_NOISE_BYTES`."""
        if not (math.isfinite(t_max) and t_max >= 0):
            raise ValueError(f"{what}: frame times must be finite and >= 0, got a last time of {t_max!r}")
        steps = max(math.ceil(t_max), 1)  # s_0 .. s_{steps-1} make w_1 .. w_steps
        length = math.ceil(steps / _MOTION_BLOCK) * _MOTION_BLOCK
        z_dim = self.motion.config.z_dim
        num_bytes = num_videos * length * z_dim * 4
        if num_bytes > MAX_MOTION_NOISE_BYTES:
            raise ValueError(f"{what}: the step noise would need {length:,} codes of {z_dim} values per video, "
                             f"{_size(num_bytes)} for {num_videos} video{'s' if num_videos > 1 else ''}, more than the "
                             f"{_size(MAX_MOTION_NOISE_BYTES)} allowed at once; ask for fewer frames, a higher fps or "
                             "fewer videos at a time")
        return length

    # ----------------------------------------------------------------------------- subjects

    @torch.no_grad()
    def invert(self, image: Any) -> torch.Tensor:
        """Embed images with the pipeline's pSp encoder: a path, PIL image, ``[H, W, 3]`` uint8 array or
        ``[3, H, W]`` / ``[N, 3, H, W]`` tensor in [0, 1], or a list of them -> W+ ``[N, num_ws, w_dim]``.
        The centre square is resized to the encoder's input size, as ``vgz invert`` does."""
        if self.encoder is None:
            raise ValueError("this StyleVideoGAN pipeline has no encoder (the pSp encoder its training latents were "
                             "made with): add one, StyleVideoGANPipeline(..., encoder=...), to embed images")
        from vgz.data.base import resize_center_crop
        images = resize_center_crop(load_images(image), self.encoder.config.input_size)
        return self._encode(images.float() / 255)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[N, 3, H, W]`` in [0, 1] -> W+ through the encoder (as the pSp pipeline encodes)."""
        from vgz.pipelines.psp import PSPPipeline

        return PSPPipeline(encoder=self.encoder, synthesis=self.synthesis).encode(images.to(self.device))

    @torch.no_grad()
    def subject_latents(self, identity: Any, num_videos: int, *, truncation_psi: float = 1.0,
                        noise_mode: str = "const") -> torch.Tensor:
        """W+ ``[num_videos, num_ws, w_dim]`` of new subjects: ``identity`` an int seed (the same subject
        for every video) or a list of one per video, rendered by the StyleGAN2 and re-embedded with the
        encoder (the paper's protocol); an image or a list of them; or W+ latents ``[num_ws, w_dim]``,
        ``[1 | num_videos, num_ws, w_dim]`` (a W latent ``[.., w_dim]`` is repeated over the layers)."""
        num_ws, w_dim = self.synthesis.num_ws, self.synthesis.w_dim
        seeds = [identity] if isinstance(identity, (int, np.integer)) and not isinstance(identity, bool) else identity
        if isinstance(seeds, (list, tuple)) and seeds and all(isinstance(x, (int, np.integer)) and not
                                                              isinstance(x, bool) for x in seeds):
            if len(seeds) not in (1, num_videos):
                raise ValueError(f"identity: {len(seeds)} seeds for {num_videos} videos (give one, or one per video)")
            z = torch.cat([torch.randn([1, self.mapping.config.z_dim], generator=g)
                           for g in as_generators(list(seeds), len(seeds))])
            ws = self.mapping(z.to(self.device), truncation_psi=truncation_psi, skip_w_avg_update=True)
            if self.encoder is None:
                warnings.warn("this pipeline has no pSp encoder, so the identity seeds' mapped W is used as is; the "
                              "paper re-embeds rendered subjects with pSp (their W+ is what the offset trick was made "
                              "for: mapped W gives stronger artifacts)", UserWarning, stacklevel=3)
            else:
                ws = self._encode(to_unit_range(self.synthesis(ws, noise_mode=noise_mode)))
        elif _is_latent(identity, num_ws, w_dim):
            ws = identity.to(self.device, torch.float32)
            if ws.shape[-2:] != (num_ws, w_dim):  # W, [w_dim] or [N, w_dim]: the same code for every layer
                ws = ws.reshape(-1, 1, w_dim).expand(-1, num_ws, -1)
            ws = ws.reshape(-1, num_ws, w_dim)
        else:
            ws = self.invert(identity)
        if ws.shape[0] not in (1, num_videos):
            raise ValueError(f"identity: {ws.shape[0]} subjects for {num_videos} videos (give one, or one per video)")
        return ws.expand(num_videos, -1, -1)

    def offsets(self, w_new: torch.Tensor, i: torch.Tensor, *, offset: str = "pca", fit_start: bool = True,
                steps: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The offset trick for subjects ``w_new [B, num_ws, w_dim]`` and content codes ``i [B, z_dim]``:
        ``(i, delta, anchor)``: the content codes to generate from (fitted so that ``w_0(i)`` lands on the
        anchor, with ``offset="pca"`` and ``fit_start``), the shift ``delta [B, num_ws, w_dim]`` added to
        every step, and the anchor (``"pca"``: ``w'_new``, the training subject in the new subject's
        state; ``"naive"``: the sampled ``w_0``)."""
        if offset not in OFFSETS:
            raise ValueError(f"offset must be one of {', '.join(map(repr, OFFSETS))}, got {offset!r}")
        w_new = w_new.to(self.device, torch.float32)
        i = i.to(self.device, torch.float32)
        if offset == "naive":
            with torch.no_grad():
                anchor = self.motion.to_ws(i.unsqueeze(1))[:, 0]
            return i, w_new - anchor, anchor
        with torch.no_grad():
            anchor = self.motion.project_subject(w_new)
        if fit_start:
            i = self._fit_start(i, anchor, steps)
        return i, w_new - anchor, anchor

    def _fit_start(self, i: torch.Tensor, target: torch.Tensor, steps: int) -> torch.Tensor:
        """Content codes near ``i`` whose first latent ``w_0(i)`` is ``target`` (least squares, L-BFGS)."""
        motion = self.motion
        x = i.detach().clone().requires_grad_(True)
        opt = torch.optim.LBFGS([x], lr=1, max_iter=steps, history_size=20, tolerance_grad=1e-10,
                                tolerance_change=1e-14, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = (motion.to_ws(x.unsqueeze(1))[:, 0] - target).square().sum()
            loss.backward()
            return loss

        with frozen(motion):
            opt.step(closure)
        return x.detach()

    # ----------------------------------------------------------------------------- trajectories

    @torch.no_grad()
    def latents(self, num_videos: int = 1, num_steps: int = 25, *, generator: Any = None,
                z: torch.Tensor | None = None, motion_z: torch.Tensor | None = None, identity: Any = None,
                offset: str = "pca", fit_start: bool = True, truncation_psi: float = 1.0) -> torch.Tensor:
        """W+ trajectories ``[num_videos, num_steps, num_ws, w_dim]``, not rendered: the latents the call
        renders at whole steps (same seeds, same options)."""
        num_videos, num_steps = check_count("num_videos", num_videos), check_count("num_steps", num_steps)
        content = self._content(self._content_inputs(num_videos, num_steps - 1, generator, z, motion_z, truncation_psi),
                                "const", generator, num_videos, identity=identity, offset=offset,
                                fit_start=fit_start)
        t = torch.arange(num_steps, dtype=torch.float64).expand(num_videos, -1)
        return self._trajectory(t, content)

    def _content_inputs(self, num_videos: int, t_max: float, generator: Any, z: torch.Tensor | None,
                        motion_z: torch.Tensor | None, truncation_psi: float) -> dict[str, Any]:
        if z is None or motion_z is None:
            drawn_z, drawn_s = self.sample_latents(as_generators(generator, num_videos), t_max)
            z = drawn_z if z is None else z
            motion_z = drawn_s if motion_z is None else motion_z
        return {"i": z.to(self.device), "motion_z": motion_z.to(self.device), "w": None, "psi": truncation_psi}

    def _ws(self, z: torch.Tensor, w: torch.Tensor | None, labels: torch.Tensor | None, truncation_psi: float,
            truncation_cutoff: int | None) -> dict[str, Any]:  # type: ignore[override]
        # StyleVideoGAN's content is the motion generator's i; w, when given, is a new subject's W+.
        return {"i": z, "motion_z": None, "w": w, "psi": truncation_psi}

    def _content(self, inputs: dict[str, Any], noise_mode: str, generator: Any,  # type: ignore[override]
                 batch_size: int, identity: Any = None, offset: str = "pca", fit_start: bool = True) -> dict[str, Any]:
        """Per video, once: the content codes (fitted for a new subject's start), the subject's shift, and
        the trajectory's cache (steps computed so far and the GRU state after them)."""
        if inputs["w"] is not None:
            if identity is not None:
                raise TypeError("pass the new subject as identity= or as w=, not both")
            identity = inputs["w"]
        if offset not in OFFSETS:
            raise ValueError(f"offset must be one of {', '.join(map(repr, OFFSETS))}, got {offset!r}")
        i, delta = inputs["i"], None
        if identity is not None:
            w_new = self.subject_latents(identity, i.shape[0], truncation_psi=inputs["psi"], noise_mode=noise_mode)
            i, delta, _ = self.offsets(w_new, i, offset=offset, fit_start=fit_start)
        return {"i": i, "delta": delta, "motion_z": inputs["motion_z"], "first": 0, "ws": None, "state": None}

    def _steps(self, content: dict[str, Any], lo: int, hi: int, motion_z: torch.Tensor) -> torch.Tensor:
        """Latents of steps ``lo..hi`` ``[B, hi - lo + 1, num_ws, w_dim]``, advancing the cached
        trajectory (restarted from step 0 when an earlier step than it holds is asked for)."""
        if hi > motion_z.shape[1]:
            raise ValueError(f"motion_z holds step noise for {motion_z.shape[1]} steps after the first; these frames "
                             f"need {hi}")
        if content["ws"] is None or lo < content["first"]:
            content.update(first=0, ws=None, state=None)
        cached = 0 if content["ws"] is None else content["ws"].shape[1]
        done = content["first"] + cached  # steps computed so far
        if hi >= done:
            i = content["i"]
            if content["state"] is None:  # from step 0: l_0 = i, then s_0 .. s_{hi-1}
                new, state = self.motion(i, motion_z[:, :hi], return_state=True)
            else:
                new, state = self.motion(i, motion_z[:, done - 1:hi], state=content["state"], return_state=True)
            ws = new if content["ws"] is None else torch.cat([content["ws"], new], dim=1)
            content.update(ws=ws, state=state)
        keep = lo - content["first"]  # steps before lo are not needed again by later (later-time) chunks
        content.update(ws=content["ws"][:, keep:], first=lo)
        return content["ws"][:, :hi - lo + 1]

    def _trajectory(self, t: torch.Tensor, content: dict[str, Any], motion_z: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """W+ at frame times ``t [B, T]`` (steps; fractional times interpolate linearly) ``[B, T, num_ws, w_dim]``."""
        motion_z = content["motion_z"] if motion_z is None else motion_z
        t = t.to(torch.float64)
        lo = int(math.floor(float(t.min())))
        hi = int(math.ceil(float(t.max())))
        ws = self._steps(content, lo, hi, motion_z.to(self.device))
        base = torch.floor(t).long()
        frac = (t - base).to(ws.device, torch.float32)[..., None, None]
        idx0 = (base - lo).to(ws.device)
        idx1 = (idx0 + 1).clamp(max=ws.shape[1] - 1)
        take = lambda idx: torch.gather(ws, 1, idx[..., None, None].expand(-1, -1, *ws.shape[2:]))  # noqa: E731
        out = take(idx0)
        if bool((frac > 0).any()):
            out = out + frac * (take(idx1) - out)
        if content["delta"] is not None:
            out = out + content["delta"].unsqueeze(1)
        return out

    def _frames(self, t: torch.Tensor, first_frame: int, content: dict[str, Any],  # type: ignore[override]
                labels: torch.Tensor | None, motion_z: torch.Tensor, batch_size: int, noise_mode: str,
                generator: Any) -> torch.Tensor:
        noise_generator = generator if isinstance(generator, torch.Generator) else None
        ws = self._trajectory(t, content, motion_z)
        num_videos, num_frames, parts = t.shape[0], t.shape[1], []
        for b0 in range(0, num_videos, batch_size):
            flat = rearrange(ws[b0:b0 + batch_size], "b t n d -> (b t) n d")
            raw = rearrange(self.synthesis(flat, noise_mode=noise_mode, generator=noise_generator),
                            "(b t) c h w -> b t c h w", t=num_frames)
            check_finite_frames(raw, first_frame, generator, video_offset=b0, num_videos=num_videos)
            parts.append(raw.float())
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def _is_latent(value: Any, num_ws: int, w_dim: int) -> bool:
    """Whether ``value`` is W+ (``[num_ws, w_dim]``, ``[N, num_ws, w_dim]``) or W (``[w_dim]``, ``[N, w_dim]``)
    rather than an image."""
    if not (isinstance(value, torch.Tensor) and value.is_floating_point() and value.shape[-1] == w_dim):
        return False
    return value.ndim in (1, 2) or (value.ndim == 3 and value.shape[1] == num_ws)
