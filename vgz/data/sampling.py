"""Which frames of which video a training step sees.

Two levels, both deterministic:

* :class:`InfiniteClipSampler` picks *videos*: an endless stream of ``(video_index, clip_seed)``,
  every video once per shuffled epoch, split between ranks, resumable at any position.
* :func:`sample_frame_indices` picks *frames* of one video from a ``numpy.random.Generator`` seeded
  by that ``clip_seed``, following StyleGAN-V's ``random`` sampling:

  1. a video longer than ``max_num_frames`` is cut to a random window of that many frames (the
     dataset draws the window; indices here are relative to it);
  2. a span ``d = last - first`` is drawn uniformly from ``total_dists`` restricted to
     ``[k - 1, min(window - 1, max_dist)]`` (any integer there when ``total_dists`` is ``None``);
  3. the first frame is drawn uniformly so that the span fits the window, the last is ``first + d``
     and the other ``k - 2`` are distinct frames strictly in between.

  StyleInV (``first_frame=True``) draws ``k - 1`` frames that way and prepends frame 0 of the
  window, so the clip always starts from the frame its encoder inverts. Its sampler ignores
  ``total_dists`` (its type check fails for the OmegaConf list it is given) and draws the span from
  ``range(k - 1, min(window - 1, max_dist))``, which leaves the upper bound out: the ``styleinv``
  preset does the same (``total_dists=None``, ``max_dist_inclusive=False``: spans 2..31 for
  ``max_dist=32``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from vgz.configs import ComponentConfig, config_field

__all__ = ["ClipSamplingConfig", "min_video_len", "sample_frame_indices", "InfiniteClipSampler", "derive_seed"]

#: StyleGAN-V's ``total_dists`` (configs/sampling/random.yaml).
POWERS_OF_TWO = tuple(2**i for i in range(12))


@dataclass
class ClipSamplingConfig(ComponentConfig):
    """How a clip of ``num_frames`` frames is drawn from a video (see the module docstring).

    Presets: ``styleganv`` (3 frames, spans 1..2048 in powers of two up to 32, windows of 1024
    frames: StyleGAN-V's ``random3_max32``), ``styleinv`` (the first frame of a 128-frame window plus
    3 frames drawn as StyleGAN-V's, videos shorter than the window skipped: StyleInV's
    ``real_sampling`` for FaceForensics/DeeperForensics; its sky and TaiChi configs use
    ``max_dist=128``), ``image`` (one frame anywhere in the video: image GANs).
    """

    num_frames: int = config_field(3, min=1, help="frames per clip (k), the first frame included in StyleInV mode")
    total_dists: tuple[int, ...] | None = config_field(
        POWERS_OF_TWO, min=0, help="allowed spans last - first; None = any span in range")
    max_dist: int = config_field(32, min=0, help="largest span last - first")
    max_num_frames: int = config_field(1024, min=1, help="longer videos are cut to a random window this long")
    first_frame: bool = config_field(False, help="StyleInV: frame 0 of the window, then num_frames - 1 "
                                                 "frames drawn as usual (they may include frame 0 again)")
    min_len: int = config_field(0, min=0, help="skip videos shorter than this (StyleInV: its 128-frame window)")
    max_dist_inclusive: bool = config_field(True, help="spans may reach max_dist (False: StyleInV's sampler, "
                                                       "whose range() leaves the bound out)")

    presets = {
        "styleganv": {},
        "styleinv": {"num_frames": 4, "first_frame": True, "max_num_frames": 128, "max_dist": 32, "min_len": 128,
                     "total_dists": None, "max_dist_inclusive": False},
        "image": {"num_frames": 1, "total_dists": None, "max_dist": 0, "max_num_frames": 2**31 - 1},
    }

    @property
    def num_drawn(self) -> int:
        """Frames drawn by the span rule (``num_frames`` less the StyleInV first frame)."""
        return self.num_frames - int(self.first_frame)

    def check(self) -> None:
        if self.first_frame and self.num_frames < 2:
            self.fail("num_frames", "at least 2 with first_frame=True (the first frame plus drawn ones)")
        if self.total_dists is not None and not self.total_dists:
            self.fail("total_dists", "a non-empty tuple of spans, or None for any span")
        try:
            _shortest_span(self)
        except ValueError as exc:
            self.fail("max_dist", str(exc))


def _shortest_span(cfg: ClipSamplingConfig) -> int:
    lo, hi = cfg.num_drawn - 1, min(cfg.max_dist, cfg.max_num_frames - 1) - int(not cfg.max_dist_inclusive)
    if cfg.total_dists is None:
        if lo > hi:
            raise ValueError(f"a span of at least num_frames - 1 = {lo} frames within max_dist and "
                             f"max_num_frames - 1 (found {hi})")
        return lo
    spans = [d for d in cfg.total_dists if lo <= d <= hi]
    if not spans:
        hint = "; for single frames use the 'image' preset (total_dists=None)" if cfg.num_drawn == 1 else ""
        raise ValueError(f"some span of total_dists {cfg.total_dists} in [{lo}, {hi}] "
                         f"(num_frames - 1 .. min(max_dist, max_num_frames - 1)){hint}")
    return min(spans)


def _allowed_spans(window: int, cfg: ClipSamplingConfig) -> np.ndarray:
    lo, hi = cfg.num_drawn - 1, min(window - 1, cfg.max_dist) - int(not cfg.max_dist_inclusive)
    if cfg.total_dists is None:
        # Inclusive of hi: the official range(lo, hi) leaves out the longest span, and is empty
        # (a crash) for its own 1-frame config and for 2-frame clips of 2-frame videos.
        return np.arange(lo, hi + 1, dtype=np.int64)
    return np.array([d for d in cfg.total_dists if lo <= d <= hi], dtype=np.int64)


def min_video_len(cfg: ClipSamplingConfig) -> int:
    """Shortest video (in frames) that clips can be drawn from; shorter ones are skipped."""
    return max(_shortest_span(cfg) + 1, cfg.min_len, 1)


def sample_frame_indices(video_len: int, cfg: ClipSamplingConfig, rng: np.random.Generator,
                         fractional: bool = False) -> np.ndarray:
    """Frame indices of one clip, relative to the video's window.

    Args:
        video_len: frames in the video; the window is ``min(video_len, cfg.max_num_frames)`` long.
        cfg: the sampling rule.
        rng: the source of randomness (seed it with the clip seed for reproducible clips).
        fractional: draw the first frame at a fractional position (StyleGAN-V's
            ``use_fractional_t``, for the generator's times).

    Returns:
        ``[num_frames]`` sorted indices in ``[0, window)``: int64, or float64 when ``fractional``.

    Raises:
        ValueError: the video is shorter than :func:`min_video_len`.
    """
    window = min(int(video_len), cfg.max_num_frames)
    spans = _allowed_spans(window, cfg)
    if video_len < cfg.min_len or not len(spans):
        raise ValueError(f"a video of {video_len} frames is too short for this sampling "
                         f"(needs at least {min_video_len(cfg)})")
    k = cfg.num_drawn
    span = int(spans[rng.integers(len(spans))])
    if fractional:
        offset = rng.random() * (window - span - 1)
    else:
        offset = int(rng.integers(window - span))  # first + span <= window - 1
    picked = [offset]
    if k > 1:
        picked.append(offset + span)
    if k > 2:
        picked.extend(offset + rng.choice(np.arange(1, span), size=k - 2, replace=False))
    out = np.sort(np.array(picked, dtype=np.float64 if fractional else np.int64))
    if cfg.first_frame:
        out = np.concatenate([np.zeros(1, out.dtype), out])
    return out


def derive_seed(*values: int) -> int:
    """A 63-bit seed mixed from non-negative integers (SeedSequence hashing): nearby inputs give
    unrelated seeds."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


class InfiniteClipSampler(torch.utils.data.Sampler):
    """An endless, resumable stream of ``(video_index, clip_seed)`` for :class:`VideoDataset`.

    The global stream visits every video once per epoch in an order shuffled per epoch (video-
    balanced, whatever the videos' lengths). Rank ``r`` of ``w`` takes global positions
    ``r, r + w, r + 2w, ...``, so ranks never share an item. Everything is a function of
    ``(seed, global position)``: the video, and the clip seed from which the dataset draws the
    window, frames and flip.

    Args:
        num_videos: videos in the dataset.
        rank, world_size: this process's share in distributed training.
        seed: the stream's seed.
        start: items this rank has already consumed; iteration resumes right after them without
            touching the data (count consumed batches times the batch size, not what the loader
            prefetched).
        shuffle: shuffle each epoch (else videos in order).
    """

    def __init__(self, num_videos: int, *, rank: int = 0, world_size: int = 1, seed: int = 0, start: int = 0,
                 shuffle: bool = True):
        super().__init__()
        if num_videos < 1:
            raise ValueError(f"num_videos must be >= 1, got {num_videos}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if seed < 0 or start < 0:
            raise ValueError(f"seed and start must be >= 0, got seed={seed}, start={start}")
        self.num_videos, self.rank, self.world_size = num_videos, rank, world_size
        self.seed, self.start, self.shuffle = seed, start, shuffle

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_videos)
        return np.random.default_rng([self.seed, 0, epoch]).permutation(self.num_videos)

    def item(self, position: int) -> tuple[int, int]:
        """The ``(video_index, clip_seed)`` at this rank's ``position`` (0-based)."""
        g = position * self.world_size + self.rank
        epoch, i = divmod(g, self.num_videos)
        return int(self._order(epoch)[i]), derive_seed(self.seed, 1, g)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position, epoch, order = self.start, -1, None
        while True:
            g = position * self.world_size + self.rank
            e, i = divmod(g, self.num_videos)
            if e != epoch:  # one permutation per epoch, computed once
                epoch, order = e, self._order(e)
            yield int(order[i]), derive_seed(self.seed, 1, g)
            position += 1
