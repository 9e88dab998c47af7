"""StyleVideoGAN's evaluation protocol (Fox et al. 2021, Sec. 4): "short" and "long" generated sets.

Registered metrics (``vgz eval MODEL --data REFERENCE -m fvd_short,fvd_long,fid_short,fid_long``):

* ``fvd_short``: 2048 generated videos as long as the training window (25 steps) against 2048 real
  windows; ``fvd_long``: 2048 window-long clips cut, back to back, from 128 generated segments of
  16 windows (400 frames: the paper's "at least 128 frames") against the same real windows.
* ``fid_short`` / ``fid_long``: 8,000 frames drawn at random (uniform times) from 2048 short videos /
  the 128 long segments, against 8,000 random frames of the reference.

Unlike StyleGAN-V's protocol (one clip per real video), the reference is usually one long recording,
so real windows and frames are drawn uniformly over *all* windows / frames of all its videos (seeded,
without replacement while enough exist). The reference is the original footage (a video folder) or
its W+ embedding rendered by the model's StyleGAN2: pass the latent folder ``vgz invert`` wrote as
``--data`` (frames are rendered with constant noise; the generator must be the one the latents were
made for). The paper leaves how long clips are cut open; the cut above is recorded in each result's
protocol. Time steps are frames of the training footage (``pipe.config.fps``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from vgz.configs import ComponentConfig, config_field
from vgz.data.sampling import derive_seed
from vgz.metrics.protocol import Metric, Samples, _clip_seeds, _read_plan
from vgz.registry import register

__all__ = ["WindowFVDConfig", "WindowFIDConfig", "WindowFVD", "WindowFID", "real_windows", "real_random_frames"]


def _draw(total: int, count: int, seed: int) -> np.ndarray:
    """``count`` sorted positions in ``[0, total)``, without replacement while ``count <= total``."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(total, size=count, replace=count > total)
    return np.sort(picks)


def _plan(dataset: Any, starts: np.ndarray, length: int, per_video: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Global start positions (over videos with ``per_video`` positions each) -> (video, frame indices)."""
    edges = np.concatenate([[0], np.cumsum(per_video)])
    plan = []
    for start in starts:
        video = int(np.searchsorted(edges, start, side="right") - 1)
        offset = int(start - edges[video])
        plan.append((video, offset + np.arange(length)))
    return plan


def _read(dataset: Any, plan: list[tuple[int, np.ndarray]], num_workers: int, batch_size: int, info: dict[str, Any],
          stack: bool) -> Iterator[torch.Tensor]:
    pending: list[torch.Tensor] = []
    for _, frames in _read_plan(dataset, plan, num_workers):
        if isinstance(frames, str):
            info["failed"] = info.get("failed", 0) + 1
            continue
        pending.extend([frames] if stack else list(frames))
        info["items"] = info.get("items", 0) + (1 if stack else len(frames))
        while len(pending) >= batch_size:
            yield torch.stack(pending[:batch_size])
            pending = pending[batch_size:]
    if pending:
        yield torch.stack(pending)


def real_windows(dataset: Any, *, num_clips: int, window: int, seed: int = 0, batch_size: int = 8,
                 num_workers: int = 2) -> Samples:
    """``num_clips`` windows of ``window`` consecutive frames drawn uniformly over every window of every
    video (seeded), uint8 ``[B, window, C, H, W]``."""
    per_video = np.array([max(n - window + 1, 0) for n in dataset.video_lengths], dtype=np.int64)
    total = int(per_video.sum())
    count = min(num_clips, total)
    plan = _plan(dataset, _draw(total, count, derive_seed(seed, 1)), window, per_video) if count else []
    info: dict[str, Any] = {"windows": total, "clips": count}
    return Samples(_read(dataset, plan, num_workers, batch_size, info, stack=True), count, info)


def real_random_frames(dataset: Any, *, num_frames: int, seed: int = 0, batch_size: int = 32,
                       num_workers: int = 2) -> Samples:
    """``num_frames`` frames drawn uniformly over every frame of every video (seeded), uint8 ``[N, C, H, W]``."""
    per_video = np.array(dataset.video_lengths, dtype=np.int64)
    total = int(per_video.sum())
    count = min(num_frames, total)
    picks = _plan(dataset, _draw(total, count, derive_seed(seed, 2)), 1, per_video)
    plan: list[tuple[int, np.ndarray]] = []  # one read per video
    for video, indices in picks:
        if plan and plan[-1][0] == video:
            plan[-1] = (video, np.concatenate([plan[-1][1], indices]))
        else:
            plan.append((video, indices))
    info: dict[str, Any] = {"frames_total": total, "frames": count}
    return Samples(_read(dataset, plan, num_workers, batch_size, info, stack=False), count, info)


@dataclass
class WindowFVDConfig(ComponentConfig):
    """FVD of StyleVideoGAN's protocol; presets ``short`` and ``long``."""

    window: int = config_field(25, min=1, help="clip length: the training window (paper: 25)")
    num_real: int = config_field(2048, min=1, help="real windows")
    num_fake: int = config_field(2048, min=1, help="generated clips")
    windows_per_video: int = config_field(1, min=1, help="clips cut back to back from each generated video "
                                                         "(short: 1; long: 16, i.e. 128 segments of 400 frames)")
    real_seed: int = config_field(0, min=0)
    frames_per_batch: int = config_field(128, min=1, help="frames through the detector at once")

    presets = {"short": {}, "long": {"windows_per_video": 16}}


@dataclass
class WindowFIDConfig(ComponentConfig):
    """FID of StyleVideoGAN's protocol; presets ``short`` and ``long``."""

    window: int = config_field(25, min=1, help="the training window")
    num_real: int = config_field(8000, min=1, help="random real frames")
    num_fake: int = config_field(8000, min=1, help="random generated frames")
    num_videos: int = config_field(2048, min=1, help="generated videos the frames are drawn from")
    video_frames: int = config_field(25, min=1, help="length of those videos (short: the window; long: 400)")
    real_seed: int = config_field(0, min=0)
    batch_size: int = config_field(32, min=1, help="frames through the detector at once")

    presets = {"short": {}, "long": {"num_videos": 128, "video_frames": 400}}


class WindowFVD(Metric):
    """FVD on window-long clips, StyleVideoGAN's protocol (see the module docstring)."""

    config_class = WindowFVDConfig
    detector_kind = "video"

    @property
    def clips_per_batch(self) -> int:
        return max(1, self.config.frames_per_batch // self.config.window)

    @property
    def detector_batch_size(self) -> int:
        return self.clips_per_batch

    @property
    def min_video_len(self) -> int:
        return self.config.window

    def limit(self, num_videos: int | None) -> "WindowFVD":
        if num_videos is None:
            return self
        return type(self)(self.config.replace(num_real=num_videos, num_fake=num_videos))

    def available(self, dataset: Any, *, real: bool = True) -> tuple[int, int]:
        cfg = self.config
        if real:
            return min(cfg.num_real, sum(max(n - cfg.window + 1, 0) for n in dataset.video_lengths)), cfg.num_real
        clips = sum(min(n // cfg.window, cfg.windows_per_video) for n in dataset.video_lengths)
        return min(cfg.num_fake, clips), cfg.num_fake

    def real_samples(self, dataset: Any, *, num_workers: int = 2) -> Samples:
        cfg = self.config
        return real_windows(dataset, num_clips=cfg.num_real, window=cfg.window, seed=cfg.real_seed,
                            batch_size=self.clips_per_batch, num_workers=num_workers)

    def fake_samples(self, pipe: Any, *, seed: int, labels: np.ndarray | None = None, batch_size: int | None = None,
                     **call_kwargs: Any) -> Samples:
        cfg = self.config
        per_video = cfg.windows_per_video
        num_videos = math.ceil(cfg.num_fake / per_video)
        batch = batch_size or self.clips_per_batch

        def batches() -> Iterator[torch.Tensor]:
            left = cfg.num_fake
            for start in range(0, num_videos, batch):
                count = min(batch, num_videos - start)
                # One chunk per window: each comes out as `count` clips while the videos stream on.
                for chunk in pipe.stream(count, cfg.window * per_video, generator=_clip_seeds(seed, start, count),
                                         chunk_size=cfg.window, output_type="uint8", **call_kwargs):
                    clips = chunk.frames[:left]
                    left -= len(clips)
                    yield clips
                    if left == 0:
                        return

        return Samples(batches(), cfg.num_fake, {"clips": cfg.num_fake, "videos": num_videos,
                                                 "frames_per_video": cfg.window * per_video, "seed": seed})

    def fake_samples_from_dataset(self, dataset: Any, *, num_workers: int = 2) -> Samples:
        # Folders of generated videos: windows back to back from each video's start.
        cfg = self.config
        plan = []
        for video, length in enumerate(dataset.video_lengths):
            for k in range(min(length // cfg.window, cfg.windows_per_video)):
                plan.append((video, k * cfg.window + np.arange(cfg.window)))
        plan = plan[:cfg.num_fake]
        info: dict[str, Any] = {"clips": len(plan)}
        return Samples(_read(dataset, plan, num_workers, self.clips_per_batch, info, stack=True), len(plan), info)

    def protocol(self) -> dict[str, Any]:
        cfg = self.config
        per_video = cfg.windows_per_video
        fake = (f"{cfg.num_fake} videos of {cfg.window} frames (t = 0..{cfg.window - 1})" if per_video == 1
                else f"{cfg.num_fake} clips of {cfg.window} frames cut back to back from "
                     f"{math.ceil(cfg.num_fake / per_video)} videos of {cfg.window * per_video} frames")
        return {**super().protocol(),
                "real": f"{cfg.num_real} windows of {cfg.window} frames, uniform over all windows "
                        f"(seed {cfg.real_seed})",
                "fake": fake, "uint8": "generated: (x * 127.5 + 128).clamp(0, 255).to(uint8)"}


class WindowFID(Metric):
    """FID on random frames, StyleVideoGAN's protocol (see the module docstring)."""

    config_class = WindowFIDConfig
    detector_kind = "image"

    @property
    def detector_batch_size(self) -> int:
        return self.config.batch_size

    @property
    def min_video_len(self) -> int:
        return 1

    def limit(self, num_videos: int | None) -> "WindowFID":
        if num_videos is None:
            return self
        cfg = self.config
        frames = num_videos * max(1, cfg.num_fake // cfg.num_videos)
        return type(self)(cfg.replace(num_real=frames, num_fake=frames, num_videos=min(cfg.num_videos, num_videos)))

    def available(self, dataset: Any, *, real: bool = True) -> tuple[int, int]:
        wanted = self.config.num_real if real else self.config.num_fake
        return min(wanted, sum(dataset.video_lengths)), wanted

    def real_samples(self, dataset: Any, *, num_workers: int = 2) -> Samples:
        cfg = self.config
        return real_random_frames(dataset, num_frames=cfg.num_real, seed=cfg.real_seed, batch_size=cfg.batch_size,
                                  num_workers=num_workers)

    def fake_samples(self, pipe: Any, *, seed: int, labels: np.ndarray | None = None, batch_size: int | None = None,
                     **call_kwargs: Any) -> Samples:
        cfg = self.config
        per_video = math.ceil(cfg.num_fake / cfg.num_videos)
        batch = batch_size or max(1, cfg.batch_size // per_video)
        # Which frames: uniform random times per video (seeded), sorted so that each video streams forward.
        rng = np.random.default_rng(derive_seed(seed, 3))
        times = np.sort(rng.integers(cfg.video_frames, size=(cfg.num_videos, per_video)), axis=1)

        def batches() -> Iterator[torch.Tensor]:
            left = cfg.num_fake
            for start in range(0, cfg.num_videos, batch):
                count = min(batch, cfg.num_videos - start)
                seconds = torch.from_numpy(times[start:start + count]).double() / pipe.config.fps
                out = pipe(count, timestamps=seconds, generator=_clip_seeds(seed, start, count), output_type="uint8",
                           **call_kwargs)
                images = out.frames.flatten(0, 1)[:left]
                left -= len(images)
                yield images
                if left == 0:
                    return

        return Samples(batches(), cfg.num_fake, {"frames": cfg.num_fake, "videos": cfg.num_videos,
                                                 "frames_per_video": per_video, "seed": seed})

    def fake_samples_from_dataset(self, dataset: Any, *, num_workers: int = 2) -> Samples:
        cfg = self.config
        return real_random_frames(dataset, num_frames=cfg.num_fake, seed=cfg.real_seed + 1, batch_size=cfg.batch_size,
                                  num_workers=num_workers)

    def protocol(self) -> dict[str, Any]:
        cfg = self.config
        return {**super().protocol(),
                "real": f"{cfg.num_real} frames, uniform over all frames (seed {cfg.real_seed})",
                "fake": f"{cfg.num_fake} frames at uniform random times of {cfg.num_videos} videos of "
                        f"{cfg.video_frames} frames",
                "uint8": "generated: (x * 127.5 + 128).clamp(0, 255).to(uint8)"}


@register("metric", "fvd_short")
class FVDShort(WindowFVD):
    """FVD of 2048 window-long generated videos vs 2048 real windows (StyleVideoGAN's "FVD short")."""

    default_preset = "short"
    official_name = "fvd_short"


@register("metric", "fvd_long")
class FVDLong(WindowFVD):
    """FVD of 2048 window-long clips of 128 long generated segments (StyleVideoGAN's "FVD long")."""

    default_preset = "long"
    official_name = "fvd_long"


@register("metric", "fid_short")
class FIDShort(WindowFID):
    """FID of 8,000 random frames of short generated videos (StyleVideoGAN's "FID short")."""

    default_preset = "short"
    official_name = "fid_short"


@register("metric", "fid_long")
class FIDLong(WindowFID):
    """FID of 8,000 random frames of 128 long generated segments (StyleVideoGAN's "FID long")."""

    default_preset = "long"
    official_name = "fid_long"
