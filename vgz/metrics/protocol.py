"""FVD and FID exactly as StyleGAN-V (and StyleInV, which reuses its code) compute them.

The protocol of ``universome/stylegan-v`` ``src/metrics``, step by step:

* **FVD16** (``fvd2048_16f``): up to 2048 real clips of 16 consecutive frames, one per video, from
  the first videos (in dataset order) that have at least 16 frames (shorter ones are dropped),
  each at a random offset in ``[0, len - 16]``; 2048 generated clips of frames ``t = 0..15``.
* **FVD128** (``fvd2048_128f``): the same with 128 frames; **FVD128/8** (``fvd2048_128f_subsample8f``):
  16 frames taken every 8th frame (``t = 0, 8, ..., 120``), real videos of at least 128 frames.
* **FID** (``fid50k_full``): every frame of every real video against 50,000 generated frames, the
  frames ``t = 0..15`` of 3125 generated videos.
* Generated frames become uint8 as ``(x * 127.5 + 128).clamp(0, 255).to(uint8)`` (x in [-1, 1]):
  a floor after adding 128, not a round; real frames are the dataset's uint8 frames.
* Features: the detector's on uint8 clips (I3D: StyleGAN-V's TorchScript, called with
  ``rescale=True, resize=True, return_features=True``), accumulated in float64; the covariance
  normalised by N. vgz takes the square root of the covariance product through symmetric
  eigendecompositions (see :mod:`vgz.metrics.frechet`).

What vgz fixes that the official code leaves to chance: the real clips' offsets come from a seed
(``real_seed``, 0), so cached real statistics are reproducible; generated clip ``i`` uses the seed
``derive_seed(seed, i)``, so a run is a function of its seed alone. The generation batch (videos
per model call) is independent of the detector batch: samples are regrouped into the protocol's
detector batches (:func:`rebatch`), so the batch size changes the memory used, not the number.
Every sample stream holds one batch at a time: memory does not grow with the number of samples.

Metrics are registered components (``vgz list metric``); a plugin may add its own.
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np
import torch

from vgz.configs import ComponentConfig, config_field
from vgz.data.datasets import DatasetWarning, WorkerLoader, _worker_init
from vgz.data.sampling import derive_seed
from vgz.registry import register, register_kind

__all__ = ["FVDConfig", "FIDConfig", "Metric", "FVD", "FID", "Samples", "official_offsets", "dataset_clips",
           "dataset_frames", "generated_clips", "generated_frames", "rebatch", "long_enough"]

register_kind("metric", "evaluation metrics with a fixed protocol (FVD, FID): real and generated samples -> a number")


# --------------------------------------------------------------------------------- samples


@dataclass
class Samples:
    """A stream of uint8 batches (clips ``[B, T, C, H, W]`` or images ``[N, C, H, W]``) and a
    record of what it took; ``info`` is complete once the stream is exhausted."""

    batches: Iterator[torch.Tensor]
    total: int
    info: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.batches


class _Reader(torch.utils.data.Dataset):
    """Reads planned (video, frame indices) items; a failure comes back as its message, not an
    exception, so that one corrupt video is counted and skipped instead of stopping the evaluation."""

    def __init__(self, dataset: Any, plan: Sequence[tuple[int, np.ndarray]]):
        self.dataset, self.plan = dataset, plan

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, j: int) -> tuple[int, torch.Tensor | str]:
        video_idx, indices = self.plan[j]
        try:
            return video_idx, self.dataset.read_frames(video_idx, indices)
        except Exception as exc:  # noqa: BLE001 - a broken file is skipped and counted
            return video_idx, f"{type(exc).__name__}: {exc}"


def rebatch(batches: Iterator[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    """The rows of ``batches`` regrouped into batches of ``size`` rows (the last may be smaller).

    The detector sees the same batches whatever the generation batch size, so features, and the
    float64 sums of :class:`~vgz.metrics.frechet.FeatureStats`, do not depend on it. Holds at most
    ``size`` rows plus one incoming batch.
    """
    pending: list[torch.Tensor] = []
    count = 0
    for batch in batches:
        while len(batch):
            take = batch[: size - count]
            batch = batch[len(take):]
            pending.append(take)
            count += len(take)
            if count == size:
                out = pending[0] if len(pending) == 1 else torch.cat(pending)
                pending, count = [], 0  # before the yield: the pieces' batches are not kept meanwhile
                yield out
                del out
    if pending:
        yield torch.cat(pending)


def long_enough(dataset: Any, need: int) -> list[int]:
    """Indices of the videos of ``dataset`` with at least ``need`` frames, in order."""
    return [i for i in range(dataset.num_videos) if dataset.video_lengths[i] >= need]


def _read_plan(dataset: Any, plan: Sequence[tuple[int, np.ndarray]], num_workers: int) -> Iterator[tuple[int, Any]]:
    if not plan:
        return iter(())
    if getattr(dataset, "renders_in_process", False):  # frames rendered by a network (on its device), not decoded
        num_workers = 0
    extra = {"worker_init_fn": _worker_init, "prefetch_factor": 2} if num_workers > 0 else {}
    loader = WorkerLoader(_Reader(dataset, plan), batch_size=None, shuffle=False,
                          num_workers=min(num_workers, len(plan)), **extra)
    return iter(loader)


def official_offsets(lengths: Sequence[int], *, need: int, subsample: int = 1, seed: int, num_workers: int = 3,
                     clips_per_batch: int = 8) -> list[int]:
    """The clip offsets StyleGAN-V's metric code draws for real videos of ``lengths`` (those long
    enough, in dataset order), given the torch seed in effect when its DataLoader starts.

    Its ``VideoFramesFolderDataset`` draws ``random.randint(0, len - need + subsample - 1)`` per
    item inside the DataLoader's worker processes; PyTorch seeds worker ``w``'s ``random`` with
    ``base_seed + w``, where ``base_seed`` is the first int64 drawn from torch's global generator
    when the loader starts, and deals batches of ``clips_per_batch`` items to the ``num_workers``
    workers in turn. The official script never seeds torch (its numbers change from run to run);
    ``seed`` stands for ``torch.manual_seed(seed)`` just before the metric.
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1 (the official offsets are drawn in DataLoader workers), "
                         f"got {num_workers}")
    generator = torch.Generator().manual_seed(seed)
    base_seed = int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())
    workers = [random.Random(base_seed + w) for w in range(num_workers)]
    return [workers[(i // clips_per_batch) % num_workers].randint(0, length - need + subsample - 1)
            for i, length in enumerate(lengths)]


def dataset_clips(dataset: Any, *, num_clips: int, num_frames: int, subsample: int = 1, random_offset: bool = True,
                  seed: int = 0, batch_size: int = 8, num_workers: int = 2, offsets: str = "seeded",
                  offset_workers: int = 3) -> Samples:
    """One clip of ``num_frames`` frames, every ``subsample``-th, per video, from the first videos
    (in order) with at least ``num_frames * subsample`` frames (StyleGAN-V's ``discard_short_videos``
    rule), until ``num_clips`` clips are read. Offsets lie in ``[0, len - num_frames * subsample +
    subsample - 1]`` (the official range): drawn from ``derive_seed(seed, video)`` (``offsets="seeded"``),
    or as StyleGAN-V's code draws them for the torch seed ``seed``, ``offset_workers`` DataLoader
    workers and batches of ``batch_size`` clips (``"official"``, :func:`official_offsets`); or 0
    (``random_offset=False``).

    Videos that fail to decode are skipped and counted in ``info["videos_failed"]``; later
    videos take their place.
    """
    if offsets not in ("seeded", "official"):
        raise ValueError(f"offsets must be 'seeded' or 'official', got {offsets!r}")
    need = num_frames * subsample
    eligible = long_enough(dataset, need)
    drawn = None
    if random_offset and offsets == "official":
        # The official loader covers the first num_clips eligible videos; the draws go on past them for
        # the videos that replace ones that fail to decode (the official code would stop there).
        lengths = [dataset.video_lengths[i] for i in eligible]
        drawn = official_offsets(lengths, need=need, subsample=subsample, seed=seed, num_workers=offset_workers,
                                 clips_per_batch=batch_size)
    plan = []
    for position, video_idx in enumerate(eligible):
        length = dataset.video_lengths[video_idx]
        offset = 0
        if drawn is not None:
            offset = drawn[position]
        elif random_offset:
            offset = int(np.random.default_rng(derive_seed(seed, video_idx)).integers(length - need + subsample))
        plan.append((video_idx, offset + np.arange(num_frames) * subsample))
    info: dict[str, Any] = {"videos": dataset.num_videos, "videos_too_short": dataset.num_videos - len(eligible),
                            "videos_failed": 0, "clips": 0}

    def batches() -> Iterator[torch.Tensor]:
        pending: list[torch.Tensor] = []
        failed: list[str] = []
        for video_idx, frames in _read_plan(dataset, plan, num_workers):
            if isinstance(frames, str):
                failed.append(f"{dataset.video_paths[video_idx]} ({frames})")
                info["videos_failed"] = len(failed)
                continue
            pending.append(frames)
            info["clips"] += 1
            if len(pending) == batch_size or info["clips"] == num_clips:
                yield torch.stack(pending)
                pending = []
            if info["clips"] == num_clips:
                break
        if pending:
            yield torch.stack(pending)
        if failed:
            warnings.warn(f"{dataset.config.path}: {len(failed)} videos failed to decode and were skipped: "
                          f"{'; '.join(failed[:3])}{'...' if len(failed) > 3 else ''}", DatasetWarning, stacklevel=2)

    return Samples(batches(), min(num_clips, len(eligible)), info)


def dataset_frames(dataset: Any, *, num_frames: int | None = None, num_videos: int | None = None,
                   batch_size: int = 32, num_workers: int = 2, chunk: int = 64) -> Samples:
    """Every frame of every video in order (FID's real side), or the first ``num_frames`` of them,
    from the first ``num_videos`` videos. Videos that fail to decode are skipped and counted."""
    videos = range(dataset.num_videos if num_videos is None else min(num_videos, dataset.num_videos))
    plan, total = [], 0
    for video_idx in videos:
        length = dataset.video_lengths[video_idx]
        for start in range(0, length, chunk):
            plan.append((video_idx, np.arange(start, min(start + chunk, length))))
        total += length
        if num_frames is not None and total >= num_frames:
            break
    total = total if num_frames is None else min(total, num_frames)
    info: dict[str, Any] = {"videos": len(videos), "videos_failed": 0, "frames": 0}

    def batches() -> Iterator[torch.Tensor]:
        failed: set[int] = set()
        pending: list[torch.Tensor] = []
        count = 0
        for video_idx, frames in _read_plan(dataset, plan, num_workers):
            if isinstance(frames, str) or video_idx in failed:
                failed.add(video_idx)
                info["videos_failed"] = len(failed)
                continue
            pending.extend(frames[: total - count])
            count = min(total, count + len(frames))
            while len(pending) >= batch_size:
                yield torch.stack(pending[:batch_size])
                pending = pending[batch_size:]
            if count >= total:
                break
        if pending:
            yield torch.stack(pending)
        info["frames"] = count

    return Samples(batches(), total, info)


def _clip_seeds(seed: int, start: int, count: int) -> list[int]:
    # Clip i's seed depends on (seed, i) only: independent of the batch size, unrelated across seeds.
    return [derive_seed(seed, i) for i in range(start, start + count)]


def _label_draws(labels: np.ndarray | None, seed: int, count: int) -> np.ndarray | None:
    """Which real label each of ``count`` generated videos gets: uniform draws, as the official code."""
    if labels is None:
        return None
    return np.random.default_rng(derive_seed(seed, 2**31)).integers(len(labels), size=count)


def generated_clips(pipe: Any, *, num_clips: int, num_frames: int, subsample: int = 1, seed: int = 0,
                    batch_size: int = 8, labels: np.ndarray | None = None, **call_kwargs: Any) -> Samples:
    """``num_clips`` generated clips of frames ``t = 0, s, ..., (num_frames - 1) s`` (s = ``subsample``
    training frames), uint8 ``[B, T, C, H, W]``, ``batch_size`` clips per call of ``pipe``. Clip ``i``
    is the same whatever the batch size (seed ``derive_seed(seed, i)``). ``labels`` (``[N, c_dim]``,
    the real dataset's) give class-conditional models their labels, drawn at random as the official
    code does."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not getattr(pipe, "is_video", True):
        raise ValueError(f"{type(pipe).__name__} generates images; video metrics need a video pipeline")
    fps = pipe.config.fps / subsample
    # Every clip's label drawn at once (a few KB): clip i gets the same one whatever the batch size.
    which = _label_draws(labels, seed, num_clips)

    def batches() -> Iterator[torch.Tensor]:
        for start in range(0, num_clips, batch_size):
            count = min(batch_size, num_clips - start)
            c = None if labels is None else labels[which[start:start + count]]
            # uint8 made from the generator's output as the official code makes it (raw_to_uint8).
            yield pipe(num_videos=count, num_frames=num_frames, fps=fps, generator=_clip_seeds(seed, start, count),
                       c=c, output_type="uint8", **call_kwargs).frames

    return Samples(batches(), num_clips, {"clips": num_clips, "seed": seed, "batch_size": batch_size})


def generated_frames(pipe: Any, *, num_frames: int, frames_per_video: int = 16, seed: int = 0, batch_size: int = 32,
                     labels: np.ndarray | None = None, **call_kwargs: Any) -> Samples:
    """``num_frames`` generated frames, uint8 ``[N, C, H, W]``: frames ``t = 0..frames_per_video-1``
    of consecutive videos (StyleGAN-V's FID), or single images from an image pipeline, about
    ``batch_size`` frames (whole videos, at least one) per call of ``pipe``. Video ``i`` uses the
    seed ``derive_seed(seed, i)`` whatever the batch size."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    per_video = frames_per_video if getattr(pipe, "is_video", True) else 1
    num_videos = math.ceil(num_frames / per_video)
    videos_per_batch = max(1, batch_size // per_video)
    which = _label_draws(labels, seed, num_videos)

    def batches() -> Iterator[torch.Tensor]:
        left = num_frames
        for start in range(0, num_videos, videos_per_batch):
            count = min(videos_per_batch, num_videos - start)
            c = None if labels is None else labels[which[start:start + count]]
            seeds = _clip_seeds(seed, start, count)
            if per_video == 1:
                out = pipe(num_images=count, generator=seeds, c=c, output_type="uint8", **call_kwargs)
            else:
                out = pipe(num_videos=count, num_frames=per_video, generator=seeds, c=c, output_type="uint8",
                           **call_kwargs)
            images = out.frames.flatten(0, 1)[:left]
            left -= len(images)
            yield images

    return Samples(batches(), num_frames, {"frames": num_frames, "frames_per_video": per_video, "seed": seed,
                                           "batch_size": videos_per_batch})


# --------------------------------------------------------------------------------- metrics


#: Frames through the I3D at once in StyleGAN-V's FVD, by the dataset's resolution (its
#: ``NUM_FRAMES_IN_BATCH``; other resolutions are a KeyError there). The clips per batch decide
#: which DataLoader worker draws each official offset.
OFFICIAL_FRAMES_PER_BATCH = {128: 128, 256: 128, 512: 64, 1024: 32}


@dataclass
class FVDConfig(ComponentConfig):
    """An FVD protocol. Presets: ``fvd16``, ``fvd128``, ``fvd128_subsample8`` (StyleGAN-V's
    ``fvd2048_16f``, ``fvd2048_128f``, ``fvd2048_128f_subsample8f``)."""

    num_real: int = config_field(2048, min=1, help="real clips at most: one per video long enough")
    num_fake: int = config_field(2048, min=1, help="generated clips")
    num_frames: int = config_field(16, min=1, help="frames per clip")
    subsample: int = config_field(1, min=1, help="every n-th frame (FVD128/8: 16 frames with n = 8)")
    real_seed: int = config_field(0, min=0, help="seed of the real clips' random offsets (fixed: real statistics "
                                                 "are cached and shared across runs)")
    frames_per_batch: int = config_field(128, min=1, help="frames through the detector at once (official: 128 "
                                                          "at 256x256, i.e. 8 clips of 16 frames)")
    offsets: str = config_field("seeded", choices=("seeded", "official"),
                                help="real clip offsets: seeded per video by real_seed (vgz: reproducible, "
                                     "independent of workers), or drawn as StyleGAN-V's code draws them with torch "
                                     "seed real_seed and offset_workers DataLoader workers (official_offsets)")
    offset_workers: int = config_field(3, min=1, help="DataLoader workers of the official draws (its code: 3)")

    presets = {
        "fvd16": {},
        "fvd128": {"num_frames": 128},
        "fvd128_subsample8": {"num_frames": 16, "subsample": 8},
    }


@dataclass
class FIDConfig(ComponentConfig):
    """StyleGAN-V's ``fid50k_full``: all real frames against 50k generated ones."""

    num_real: int | None = config_field(None, min=1, help="real frames at most; None = every frame of every video")
    num_fake: int = config_field(50000, min=1, help="generated frames")
    frames_per_video: int = config_field(16, min=1, help="generated frames t = 0..n-1 per video")
    batch_size: int = config_field(32, min=1, help="frames through the detector at once")

    presets = {"fid50k_full": {}}


class Metric:
    """Base of metrics: which detector, which real and which generated samples, and the protocol
    record. The Frechet distance of the two feature sets is the value."""

    config_class: ClassVar[type[ComponentConfig]]
    detector_kind: ClassVar[str]
    official_name: ClassVar[str]
    default_preset: ClassVar[str | None] = None

    def __init__(self, config: ComponentConfig | None = None, **overrides: Any):
        if config is None:
            config = self.config_class.from_preset(self.default_preset, **overrides)
        elif overrides:
            config = config.replace(**overrides)
        self.config = config

    @property
    def name(self) -> str:
        from vgz.registry import registry_key

        return registry_key(type(self))[1]

    def limit(self, num_videos: int | None) -> "Metric":
        """This metric with at most ``num_videos`` real and generated videos (quick, not comparable)."""
        raise NotImplementedError

    @property
    def detector_batch_size(self) -> int:
        """Items (clips or frames) through the detector at once, whatever the generation batch."""
        raise NotImplementedError

    @property
    def min_video_len(self) -> int:
        """Frames a video needs to give this metric a sample."""
        return 1

    def available(self, dataset: Any, *, real: bool = True) -> tuple[int, int]:
        """``(taken, wanted)``: how many items the protocol takes from ``dataset`` as its real side
        (or, ``real=False``, as its generated side) and how many it asks for. Told from the video
        lengths alone, before anything is decoded."""
        raise NotImplementedError

    def real_samples(self, dataset: Any, *, num_workers: int = 2) -> Samples:
        raise NotImplementedError

    def fake_samples(self, pipe: Any, *, seed: int, labels: np.ndarray | None = None, batch_size: int | None = None,
                     **call_kwargs: Any) -> Samples:
        """Generated samples; ``batch_size``: videos (or images) per call of ``pipe`` (None: the
        protocol's detector batch). The samples do not depend on it."""
        raise NotImplementedError

    def fake_samples_from_dataset(self, dataset: Any, *, num_workers: int = 2) -> Samples:
        raise NotImplementedError

    def protocol(self) -> dict[str, Any]:
        """The settings that define the number (JSON-safe)."""
        return {"metric": self.name, "official_name": self.official_name, **self.config.to_dict()}


class FVD(Metric):
    """Frechet Video Distance with StyleGAN-V's protocol (see the module docstring)."""

    config_class = FVDConfig
    detector_kind = "video"
    default_preset = "fvd16"
    official_name = "fvd2048_16f"

    def limit(self, num_videos: int | None) -> "FVD":
        if num_videos is None:
            return self
        return type(self)(self.config.replace(num_real=num_videos, num_fake=num_videos))

    @property
    def clips_per_batch(self) -> int:
        return max(1, self.config.frames_per_batch // self.config.num_frames)

    @property
    def detector_batch_size(self) -> int:
        return self.clips_per_batch

    @property
    def min_video_len(self) -> int:
        return self.config.num_frames * self.config.subsample

    def available(self, dataset: Any, *, real: bool = True) -> tuple[int, int]:
        wanted = self.config.num_real if real else self.config.num_fake
        return min(wanted, len(long_enough(dataset, self.min_video_len))), wanted

    def real_samples(self, dataset: Any, *, num_workers: int = 2) -> Samples:
        cfg = self.config
        return dataset_clips(dataset, num_clips=cfg.num_real, num_frames=cfg.num_frames, subsample=cfg.subsample,
                             seed=cfg.real_seed, batch_size=self.clips_per_batch, num_workers=num_workers,
                             offsets=cfg.offsets, offset_workers=cfg.offset_workers)

    def fake_samples(self, pipe: Any, *, seed: int, labels: np.ndarray | None = None, batch_size: int | None = None,
                     **call_kwargs: Any) -> Samples:
        cfg = self.config
        return generated_clips(pipe, num_clips=cfg.num_fake, num_frames=cfg.num_frames, subsample=cfg.subsample,
                               seed=seed, batch_size=batch_size or self.clips_per_batch, labels=labels, **call_kwargs)

    def fake_samples_from_dataset(self, dataset: Any, *, num_workers: int = 2) -> Samples:
        # Official generator_as_dataset mode: clips from the start of each generated video.
        cfg = self.config
        return dataset_clips(dataset, num_clips=cfg.num_fake, num_frames=cfg.num_frames, subsample=cfg.subsample,
                             random_offset=False, batch_size=self.clips_per_batch, num_workers=num_workers)

    def protocol(self) -> dict[str, Any]:
        cfg = self.config
        times = ", ".join(str(i * cfg.subsample) for i in range(min(cfg.num_frames, 3)))
        last = (cfg.num_frames - 1) * cfg.subsample
        if cfg.offsets == "official":
            offsets = (f"drawn as StyleGAN-V's code draws them (torch seed {cfg.real_seed}, {cfg.offset_workers} "
                       f"DataLoader workers, batches of {self.clips_per_batch})")
        else:
            offsets = f"seeded per video (seed {cfg.real_seed})"
        return {**super().protocol(),
                "real": f"up to {cfg.num_real} clips, one per video of >= {cfg.num_frames * cfg.subsample} frames "
                        f"(shorter dropped), at a random offset {offsets}",
                "fake": f"{cfg.num_fake} clips of frames t = {times}, ..., {last}",
                "uint8": "generated: (x * 127.5 + 128).clamp(0, 255).to(uint8)",
                "statistics": "float64 mean and covariance (/N); Frechet distance by symmetric eigendecomposition"}


@register("metric", "fvd16")
class FVD16(FVD):
    """FVD on 16-frame clips, 2048 real vs 2048 generated (StyleGAN-V's fvd2048_16f)."""


@register("metric", "fvd128")
class FVD128(FVD):
    """FVD on 128-frame clips, 2048 real vs 2048 generated (StyleGAN-V's fvd2048_128f)."""

    default_preset = "fvd128"
    official_name = "fvd2048_128f"


@register("metric", "fvd128_subsample8")
class FVD128Subsample8(FVD):
    """FVD on 128-frame spans seen every 8th frame (StyleGAN-V's fvd2048_128f_subsample8f)."""

    default_preset = "fvd128_subsample8"
    official_name = "fvd2048_128f_subsample8f"


@register("metric", "fid")
class FID(Metric):
    """Frechet Inception Distance over frames: every real frame vs 50k generated (StyleGAN-V's fid50k_full)."""

    config_class = FIDConfig
    detector_kind = "image"
    default_preset = "fid50k_full"
    official_name = "fid50k_full"

    def __init__(self, config: ComponentConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.num_real_videos: int | None = None

    def limit(self, num_videos: int | None) -> "FID":
        if num_videos is None:
            return self
        limited = type(self)(self.config.replace(num_fake=num_videos * self.config.frames_per_video))
        limited.num_real_videos = num_videos
        return limited

    @property
    def detector_batch_size(self) -> int:
        return self.config.batch_size

    def available(self, dataset: Any, *, real: bool = True) -> tuple[int, int]:
        videos = dataset.num_videos if not real or self.num_real_videos is None else self.num_real_videos
        frames = sum(dataset.video_lengths[:videos])
        wanted = (self.config.num_real or frames) if real else self.config.num_fake
        return min(wanted, frames), wanted

    def real_samples(self, dataset: Any, *, num_workers: int = 2) -> Samples:
        return dataset_frames(dataset, num_frames=self.config.num_real, num_videos=self.num_real_videos,
                              batch_size=self.config.batch_size, num_workers=num_workers)

    def fake_samples(self, pipe: Any, *, seed: int, labels: np.ndarray | None = None, batch_size: int | None = None,
                     **call_kwargs: Any) -> Samples:
        cfg = self.config
        # batch_size counts videos (images from an image pipeline); generated_frames counts frames.
        per_video = cfg.frames_per_video if getattr(pipe, "is_video", True) else 1
        frames = cfg.batch_size if batch_size is None else batch_size * per_video
        return generated_frames(pipe, num_frames=cfg.num_fake, frames_per_video=cfg.frames_per_video, seed=seed,
                                batch_size=frames, labels=labels, **call_kwargs)

    def fake_samples_from_dataset(self, dataset: Any, *, num_workers: int = 2) -> Samples:
        return dataset_frames(dataset, num_frames=self.config.num_fake, batch_size=self.config.batch_size,
                              num_workers=num_workers)

    def protocol(self) -> dict[str, Any]:
        cfg = self.config
        real = "every frame of every video" if cfg.num_real is None else f"the first {cfg.num_real} frames"
        if self.num_real_videos is not None:
            real += f" of the first {self.num_real_videos} videos"
        return {**super().protocol(), "real_videos": self.num_real_videos, "real": real,
                "fake": f"{cfg.num_fake} frames: t = 0..{cfg.frames_per_video - 1} of consecutive videos",
                "uint8": "generated: (x * 127.5 + 128).clamp(0, 255).to(uint8)",
                "statistics": "float64 mean and covariance (/N); Frechet distance by symmetric eigendecomposition"}


#: Official metric names accepted as aliases.
ALIASES = {"fvd2048_16f": "fvd16", "fvd2048_128f": "fvd128", "fvd2048_128f_subsample8f": "fvd128_subsample8",
           "fid50k_full": "fid"}


def create_metric(name: str, **overrides: Any) -> Metric:
    """A registered metric by name (official names such as ``fvd2048_16f`` work too)."""
    from vgz import registry

    entry = registry.get("metric", ALIASES.get(name, name))
    return entry.cls(**overrides)
