"""What every dataset shares: the :class:`VideoDataset` base (indexing, labels, clip drawing,
bad-video handling, fingerprints), :class:`DatasetConfig`, the errors and warnings, and the frame
helpers. The concrete datasets live in :mod:`vgz.data.video_folder`, :mod:`vgz.data.frame_folder` and
:mod:`vgz.data.shapes`; :mod:`vgz.data.datasets` opens them by spec.

An item is drawn from a ``(video_index, clip_seed)`` pair: the clip seed fixes the random window,
the frames (:func:`vgz.data.sampling.sample_frame_indices`) and the flip, so a stream of pairs gives
the same clips whatever the number of loader workers. Frames are cropped to the centre square and
resized (antialiased) to the training resolution.

Labels come from an optional ``dataset.json`` at the dataset's root, as StyleGAN-V's:
``{"labels": {"video_name": 3, ...}}`` (integers become one-hot vectors of size ``max + 1``; lists
of numbers are used as they are). Keys are video names (``clip.mp4``, ``clip``, ``class/clip``) or,
as in StyleGAN-V's files, frame paths ``video/frame.png``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import posixpath
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from vgz.configs import ComponentConfig, config_field
from vgz.data.sampling import ClipSamplingConfig, derive_seed, min_video_len, sample_frame_indices

__all__ = [
    "DatasetError",
    "DatasetWarning",
    "DatasetConfig",
    "VideoDataset",
    "resize_center_crop",
    "natural_key",
    "sort_key",
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "LABELS_FILE",
]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv",
                    ".3gp", ".ts")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
LABELS_FILE = "dataset.json"

#: Replacement videos tried for one item before giving up (a dataset that is mostly broken).
_MAX_ATTEMPTS = 64


class DatasetError(ValueError):
    """A dataset cannot be used: a missing path, nothing usable in it, a bad ``dataset.json``..."""


class DatasetWarning(UserWarning):
    """Files skipped while indexing, or videos that failed to decode during training."""


@dataclass
class DatasetConfig(ComponentConfig):
    """What every dataset takes: where the data is, the training resolution and clip sampling."""

    path: str = config_field("", help="dataset folder, .zip, or synthetic:<name>")
    resolution: int = config_field(256, min=1, help="frames are cropped to a centre square and resized to this")
    sampling: ClipSamplingConfig = config_field(default_factory=ClipSamplingConfig)
    xflip: bool = config_field(False, help="mirror whole clips with probability 0.5")
    seed: int = config_field(0, min=0, help="clip seeds for plain integer indices (and synthetic content)")
    use_labels: bool = config_field(True, help="read labels from dataset.json when there is one")
    order: str = config_field("natural", choices=("natural", "plain"),
                              help="the order of videos and frames: natural ('2.png' before '10.png'), or plain: "
                                   "Python's sorted(), case-sensitive, as StyleGAN-V's code reads frame folders")


def natural_key(name: str) -> list:
    """Sort key putting ``2.png`` before ``10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def sort_key(order: str) -> Any:
    """The key of ``sorted()`` for a dataset ``order``: :func:`natural_key` (``"natural"``) or None
    (``"plain"``: names compared as they are, ``10.png`` before ``2.png`` and ``B`` before ``a``)."""
    if order not in ("natural", "plain"):
        raise ValueError(f"order must be 'natural' or 'plain', got {order!r}")
    return natural_key if order == "natural" else None


def resize_center_crop(frames: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 ``[k, C, H, W]`` -> uint8 ``[k, C, R, R]``: the centre ``min(H, W)`` square, resized
    (bicubic, antialiased when shrinking). A square of the right size is returned untouched."""
    h, w = frames.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    frames = frames[..., top:top + side, left:left + side]
    if side == resolution:
        return frames.contiguous()
    out = F.interpolate(frames.float(), size=(resolution, resolution), mode="bicubic", align_corners=False,
                        antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


class VideoDataset(torch.utils.data.Dataset):
    """Base of all datasets: indexing, labels, clip drawing and bad-video handling.

    Subclasses implement :meth:`_index` (filling :meth:`_add_video` / :meth:`_skip`) and
    :meth:`_decode` (or :meth:`read_frames`), and may give labels through :meth:`_read_labels_file`.

    Attributes:
        config: the dataset's config.
        num_videos, resolution, num_channels, label_dim: sizes (``label_dim`` 0 = unconditional).
        video_paths, video_lengths: per video, its path (or name) and number of frames.
        skipped: ``(path, reason)`` of every file left out while indexing.
        bad_videos: ``{video_index: reason}`` of videos that failed to decode in this process.
    """

    config_class = DatasetConfig
    num_channels = 3

    def __init__(self, config: DatasetConfig | dict | None = None, **kwargs: Any):
        if config is None:
            config = self.config_class(**kwargs)
        elif isinstance(config, dict):
            config = self.config_class.from_dict({**config, **kwargs})
        elif not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}")
        elif kwargs:
            config = config.replace(**kwargs)
        self.config = config
        self.resolution = config.resolution
        self.sampling = config.sampling
        self.min_video_len = min_video_len(config.sampling)
        self.video_paths: list[str] = []
        self.video_lengths: list[int] = []
        self.video_names: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.bad_videos: dict[int, str] = {}
        self._warned_pid: int | None = None
        self._reported = False
        self._index()
        if not self.video_paths:
            found = f"; all {len(self.skipped)} skipped: {self._skip_summary()}" if self.skipped else ""
            raise DatasetError(f"{config.path}: expected {self._expected()}, found no usable video{found}")
        self._labels = self._load_labels()
        self.report_skipped()

    # ----------------------------------------------------------------------------- indexing

    def _index(self) -> None:
        raise NotImplementedError

    def _expected(self) -> str:
        return "videos"

    def _add_video(self, path: str, length: int, name: str | None = None) -> None:
        """Add a video, or skip it when it is shorter than the sampling needs."""
        if length < self.min_video_len:
            self._skip(path, f"{length} frames, shorter than the {self.min_video_len} the clip sampling needs")
            return
        self.video_paths.append(path)
        self.video_lengths.append(int(length))
        self.video_names.append(name if name is not None else path)

    def _skip(self, path: str, reason: str) -> None:
        self.skipped.append((path, reason))

    def _skip_summary(self, limit: int = 5) -> str:
        shown = "; ".join(f"{p} ({r})" for p, r in self.skipped[:limit])
        more = f"; and {len(self.skipped) - limit} more" if len(self.skipped) > limit else ""
        return shown + more

    def report_skipped(self) -> None:
        """Warn once (:class:`DatasetWarning`) with the number of skipped files and the first few;
        nothing when none was skipped. Called at the end of indexing; later calls do nothing."""
        if not self.skipped or self._reported:
            return
        self._reported = True
        warnings.warn(f"{self.config.path}: skipped {len(self.skipped)} of {len(self.skipped) + self.num_videos} "
                      f"videos: {self._skip_summary()}", DatasetWarning, stacklevel=2)

    # ----------------------------------------------------------------------------- sizes

    @property
    def num_videos(self) -> int:
        return len(self.video_paths)

    def __len__(self) -> int:
        return self.num_videos

    @property
    def label_dim(self) -> int:
        return self._labels.shape[1]

    def get_video_len(self, i: int) -> int:
        """Frames in video ``i`` (the whole video, not the sampling window)."""
        return self.video_lengths[i]

    def get_label(self, i: int) -> np.ndarray:
        """float32 ``[label_dim]`` (one-hot for integer labels)."""
        return self._labels[i].copy()

    # ----------------------------------------------------------------------------- labels

    def _read_labels_file(self) -> tuple[str, Any] | None:
        """``(where, parsed dataset.json)``, or None when the dataset has none."""
        return None

    def _label_keys(self, i: int) -> list[str]:
        name = self.video_names[i].replace("\\", "/").strip("/")
        base = posixpath.basename(name)
        keys = [name, posixpath.splitext(name)[0], base, posixpath.splitext(base)[0]]
        return list(dict.fromkeys(keys))

    def _load_labels(self) -> np.ndarray:
        unconditional = np.zeros([self.num_videos, 0], dtype=np.float32)
        found = self._read_labels_file() if self.config.use_labels else None
        if found is None:
            return unconditional
        where, data = found
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: expected a JSON object {{\"labels\": ...}}, found {type(data).__name__}")
        raw = data.get("labels")
        if raw is None:  # StyleGAN-V writes "labels": null for unlabelled datasets
            return unconditional
        try:
            table = dict(raw)  # a mapping, or StyleGAN2-ADA's list of [name, label] pairs
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: expected \"labels\" to map names to labels, "
                               f"found {type(raw).__name__}") from None
        by_name: dict[str, Any] = {}
        for key, value in table.items():
            key = str(key).replace("\\", "/").strip("/")
            by_name.setdefault(key, value)
            if posixpath.splitext(key)[1].lower() in IMAGE_EXTENSIONS:  # StyleGAN-V: one key per frame
                by_name.setdefault(posixpath.dirname(key), value)
        values = []
        for i in range(self.num_videos):
            keys = self._label_keys(i)
            hit = next((k for k in keys if k in by_name), None)
            if hit is None:
                raise DatasetError(f"{where}: expected a label for every video, found none for "
                                   f"{self.video_names[i]!r} (looked up {', '.join(map(repr, keys))})")
            values.append(by_name[hit])
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            ints = np.array(values, dtype=np.int64)
            if ints.min() < 0:
                raise DatasetError(f"{where}: expected class labels >= 0, found {int(ints.min())}")
            onehot = np.zeros([len(ints), int(ints.max()) + 1], dtype=np.float32)
            onehot[np.arange(len(ints)), ints] = 1
            return onehot
        try:
            labels = np.array(values, dtype=np.float32)
        except (TypeError, ValueError):
            labels = None
        if labels is None or labels.ndim != 2:
            raise DatasetError(f"{where}: expected integer class labels or equally long lists of numbers, "
                               f"found {values[:3]}...")
        return labels

    # ----------------------------------------------------------------------------- frames

    def _decode(self, video_idx: int, frame_indices: np.ndarray) -> list[np.ndarray]:
        """Frames as uint8 ``[H, W, C]`` arrays, one per index (RGB, any size)."""
        raise NotImplementedError

    def read_frames(self, video_idx: int, frame_indices: Sequence[int]) -> torch.Tensor:
        """uint8 ``[k, C, R, R]``: frames ``frame_indices`` of video ``video_idx`` (whole-video
        indices), centre-cropped and resized to the training resolution."""
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        length = self.video_lengths[video_idx]
        if len(indices) and (indices.min() < 0 or indices.max() >= length):
            raise IndexError(f"{self.video_paths[video_idx]}: frame indices {indices.tolist()} out of range "
                             f"[0, {length})")
        images = self._decode(video_idx, indices)
        if len({im.shape for im in images}) == 1:
            frames = rearrange(torch.from_numpy(np.stack(images)), "k h w c -> k c h w")
            return resize_center_crop(frames, self.resolution)
        # Frames of different sizes (a frame folder can hold anything): one at a time.
        return torch.cat([resize_center_crop(rearrange(torch.from_numpy(im), "h w c -> 1 c h w"), self.resolution)
                          for im in images])

    def _clip_frames(self, video_idx: int, clip_seed: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray, int]:
        """Which frames clip ``clip_seed`` of a video takes: ``(rng for later draws, whole-video frame
        indices, clip times, window length)``. Datasets of other things per frame (latents) draw
        through this too, so that a seed picks the same frames in all of them."""
        rng = np.random.default_rng(clip_seed)
        length = self.video_lengths[video_idx]
        window = min(length, self.sampling.max_num_frames)
        start = int(rng.integers(length - window + 1))  # the official random window
        times = sample_frame_indices(length, self.sampling, rng)
        return rng, start + times, times, window

    def _clip(self, video_idx: int, clip_seed: int) -> dict[str, Any]:
        rng, indices, times, window = self._clip_frames(video_idx, clip_seed)
        frames = self.read_frames(video_idx, indices)
        if rng.random() < 0.5 and self.config.xflip:
            frames = frames.flip(-1)
        return {
            "frames": frames,
            "times": torch.from_numpy(times),
            "video_len": window,
            "label": torch.from_numpy(self.get_label(video_idx)),
            "video_index": video_idx,
        }

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        """One clip.

        Args:
            index: ``(video_index, clip_seed)`` (from :class:`InfiniteClipSampler`), or a video index
                (its clip seed then comes from the dataset's seed and the index).

        Returns:
            ``{"frames": uint8 [k, C, R, R], "times": int64 [k] (indices within the window, as
            StyleGAN-V's), "video_len": int (the window's length, min(frames, max_num_frames)),
            "label": float32 [label_dim], "video_index": int (the video used)}``.
        """
        pair = isinstance(index, (tuple, list))
        video_idx = int(index[0]) if pair else int(index)
        if video_idx < 0:
            video_idx += self.num_videos
        if not 0 <= video_idx < self.num_videos:
            raise IndexError(f"video index {index} out of range for {self.num_videos} videos")
        clip_seed = int(index[1]) if pair else derive_seed(self.config.seed, 2, video_idx)
        seed = clip_seed
        last_error: BaseException | None = None
        for attempt in range(_MAX_ATTEMPTS):
            if video_idx not in self.bad_videos:
                try:
                    return self._clip(video_idx, seed)
                except Exception as exc:  # noqa: BLE001 - a broken file must not stop training
                    last_error = exc
                    self._mark_bad(video_idx, exc)
            if len(self.bad_videos) >= self.num_videos:
                break
            # The replacement depends on the clip seed alone, not on which videos this process has
            # found bad, so that every worker layout draws the same one.
            seed = derive_seed(clip_seed, 3, attempt)
            video_idx = seed % self.num_videos
        raise DatasetError(f"{self.config.path}: {len(self.bad_videos)} of {self.num_videos} videos failed to "
                           f"decode; last error: {last_error}") from last_error

    def _mark_bad(self, video_idx: int, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        self.bad_videos[video_idx] = reason
        if self._warned_pid != os.getpid():
            self._warned_pid = os.getpid()
            warnings.warn(f"{self.video_paths[video_idx]}: failed to decode ({reason}); this video is skipped "
                          f"from now on and others are used instead (later failures are only counted in "
                          f"dataset.bad_videos)", DatasetWarning, stacklevel=3)

    def __getstate__(self) -> dict[str, Any]:
        # Open files stay with the process that opened them.
        return {k: v for k, v in self.__dict__.items() if k not in self._unpicklable}

    _unpicklable: tuple[str, ...] = ()

    # ----------------------------------------------------------------------------- identity

    def at_resolution(self, resolution: int) -> "VideoDataset":
        """This dataset with its frames cropped and resized to ``resolution`` instead: a shallow copy
        sharing the index (nothing is scanned again)."""
        if resolution == self.resolution:
            return self
        other = copy.copy(self)
        other.config = self.config.replace(resolution=resolution)
        other.resolution = resolution
        other._fingerprint = None
        return other

    def fingerprint(self) -> str:
        """Hex SHA-256 of what the dataset holds at its resolution: which videos, their lengths and
        their content (see :meth:`_content_digest`). Keys caches of real-data statistics; sampling,
        flips and the dataset's seed do not enter it. Computed once per dataset object."""
        if getattr(self, "_fingerprint", None) is not None:
            return self._fingerprint
        digest = hashlib.sha256(f"{type(self).__name__}\0{self.resolution}\0{self._content_key()}\0".encode())
        for i in range(self.num_videos):
            digest.update(self._video_identity(i))
        self._fingerprint: str | None = digest.hexdigest()
        return self._fingerprint

    def video_sha256(self, i: int) -> str:
        """Hex SHA-256 of what identifies video ``i``'s content, whatever the resolution: the dataset
        kind and settings, its name, length and content digest (see :meth:`_content_digest`)."""
        head = f"{type(self).__name__}\0{self._content_key()}\0".encode()
        return hashlib.sha256(head + self._video_identity(i)).hexdigest()

    def _video_identity(self, i: int) -> bytes:
        return f"{self.video_names[i]}\0{self.video_lengths[i]}\0".encode() + self._content_digest(i)

    def _content_key(self) -> str:
        """What identifies the whole dataset besides its videos (procedural datasets: their config)."""
        return ""

    def _content_digest(self, video_idx: int) -> bytes:
        """Bytes that change when video ``video_idx`` changes. For a file: its size and the hash of
        its first and last 64 KiB (reading whole datasets to key a cache would cost more than the
        statistics it saves)."""
        return _file_digest(self.video_paths[video_idx])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.config.path!r}, {self.num_videos} videos, resolution "
                f"{self.resolution}, label_dim {self.label_dim}, {len(self.skipped)} skipped)")


# --------------------------------------------------------------------------------- helpers


def _walk_dirs(root: Path, key: Any = natural_key):
    """``(folder, sorted file names)`` for ``root`` and every folder below it, in natural order (or
    sorted by ``key``; None: plain string order)."""
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=key)
        yield Path(folder), sorted((f for f in files if not f.startswith(".")), key=key)


def _file_digest(path: str, block: int = 1 << 16) -> bytes:
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(block))
        if size > 2 * block:
            f.seek(size - block)
        digest.update(f.read(block))
    return digest.digest()


def _walk_files(root: Path, key: Any = natural_key) -> list[Path]:
    return [folder / f for folder, files in _walk_dirs(root, key) for f in files]


def _read_json(path: Path) -> tuple[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return str(path), json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: expected valid JSON, found an error: {exc}") from None

