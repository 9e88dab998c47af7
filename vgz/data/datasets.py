"""Video datasets for training: clips of ``k`` frames from folders of videos, frame folders, zips
or procedural shapes.

Every dataset is a :class:`VideoDataset` (kind ``dataset`` in the registry)::

    dataset = open_dataset("my_videos/", resolution=256)          # or a .zip, or "synthetic:shapes"
    sampler = InfiniteClipSampler(len(dataset), rank=0, world_size=1, seed=0)
    loader = make_dataloader(dataset, batch_size=16, sampler=sampler, num_workers=4)
    batch = next(iter(loader))    # frames uint8 [B, k, C, R, R], times int64 [B, k], label [B, label_dim]

An item is drawn from a ``(video_index, clip_seed)`` pair: the clip seed fixes the random window,
the frames (:func:`vgz.data.sampling.sample_frame_indices`) and the flip, so a stream of pairs gives
the same clips whatever the number of loader workers. Frames are cropped to the centre square and
resized (antialiased) to the training resolution.

Indexing is cheap and forgiving: files that cannot be opened, empty files and videos too short for
the sampling are skipped, counted in ``dataset.skipped`` and reported in one warning. A video that
fails to decode later is marked bad and another video is used in its place, deterministically.

Datasets:

* ``video-folder``: a folder (searched recursively) of video files, read with decord when it is
  installed, else PyAV; lengths come from the container (a frame count, or a count of packets for
  Matroska/WebM, which store none).
* ``frame-folder``: a folder (or ``.zip``) of per-video folders of images, frames in natural order
  (``2.png`` before ``10.png``).
* ``synthetic-shapes``: procedural moving shapes (:mod:`vgz.data.shapes`).

Labels come from an optional ``dataset.json`` at the dataset's root, as StyleGAN-V's:
``{"labels": {"video_name": 3, ...}}`` (integers become one-hot vectors of size ``max + 1``; lists
of numbers are used as they are). Keys are video names (``clip.mp4``, ``clip``, ``class/clip``) or,
as in StyleGAN-V's files, frame paths ``video/frame.png``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import signal
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence
from urllib.parse import parse_qsl

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from vgz.configs import ComponentConfig, ConfigError, config_field
from vgz.data.sampling import ClipSamplingConfig, derive_seed, min_video_len, sample_frame_indices
from vgz.registry import register

__all__ = [
    "DatasetError",
    "DatasetWarning",
    "DatasetConfig",
    "VideoFolderConfig",
    "FrameFolderConfig",
    "VideoDataset",
    "VideoFolderDataset",
    "FrameFolderDataset",
    "open_dataset",
    "make_dataloader",
    "resize_center_crop",
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
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


@dataclass
class VideoFolderConfig(DatasetConfig):
    """A folder of video files."""

    backend: Literal["auto", "decord", "av"] = config_field("auto", help="decoder; auto = decord if installed")


@dataclass
class FrameFolderConfig(DatasetConfig):
    """A folder or .zip of per-video frame folders."""


def natural_key(name: str) -> list:
    """Sort key putting ``2.png`` before ``10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


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


def _worker_decode_threads() -> int:
    """Decoder threads: 1 inside a DataLoader worker (workers already use the cores), else the
    library's default (0)."""
    return 1 if torch.utils.data.get_worker_info() is not None else 0


def _worker_init(worker_id: int) -> None:
    # Workers run in parallel already; more threads each would oversubscribe the cores.
    torch.set_num_threads(1)
    # Ctrl-C, and the SIGTERM that scancel, a SLURM time limit or `kill -TERM -- -PGID` sends,
    # reach the whole process group: the trainer handles them (saving a checkpoint), so a worker
    # must not die of them first. Workers still stop when the main process shuts the loader down
    # (a None on their queue) or dies (their watchdog sees the parent gone).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


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

    def _clip(self, video_idx: int, clip_seed: int) -> dict[str, Any]:
        rng = np.random.default_rng(clip_seed)
        length = self.video_lengths[video_idx]
        window = min(length, self.sampling.max_num_frames)
        start = int(rng.integers(length - window + 1))  # the official random window
        times = sample_frame_indices(length, self.sampling, rng)
        frames = self.read_frames(video_idx, start + times)
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

    def fingerprint(self) -> str:
        """Hex SHA-256 of what the dataset holds at its resolution: which videos, their lengths and
        their content (see :meth:`_content_digest`). Keys caches of real-data statistics; sampling,
        flips and the dataset's seed do not enter it. Computed once per dataset object."""
        if getattr(self, "_fingerprint", None) is not None:
            return self._fingerprint
        digest = hashlib.sha256(f"{type(self).__name__}\0{self.resolution}\0{self._content_key()}\0".encode())
        for i in range(self.num_videos):
            digest.update(f"{self.video_names[i]}\0{self.video_lengths[i]}\0".encode())
            digest.update(self._content_digest(i))
        self._fingerprint: str | None = digest.hexdigest()
        return self._fingerprint

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


# --------------------------------------------------------------------------------- video files


class _HandleCache:
    """A few open readers per process (least recently used closed first); never pickled or shared
    with forked children, which open their own."""

    def __init__(self, size: int = 8):
        self.size = size
        self._pid = os.getpid()
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._inherited: list[Any] = []

    def get(self, key: Any, opener: Callable[[], Any]) -> Any:
        if self._pid != os.getpid():
            # A forked child (a DataLoader worker): the parent's readers are not ours to use, nor
            # to free: freeing FFmpeg's thread pools that were started in the parent hangs the
            # child (their threads do not exist here). They are kept, unused, until the child exits.
            self._inherited.append(self._items)
            self._items, self._pid = OrderedDict(), os.getpid()
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = opener()
        self._items[key] = value
        while len(self._items) > self.size:
            _, old = self._items.popitem(last=False)
            close = getattr(old, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing a reader we drop anyway
                    pass
        return value

    def drop(self, key: Any) -> None:
        old = self._items.pop(key, None)
        if old is not None and hasattr(old, "close"):
            try:
                old.close()
            except Exception:  # noqa: BLE001
                pass


    def close_all(self) -> None:
        """Close this process's readers (a forked child's inherited ones stay untouched)."""
        if self._pid == os.getpid():
            for key in list(self._items):
                self.drop(key)


_readers = _HandleCache()


def close_readers() -> None:
    """Close the video readers this process holds. Called before DataLoader workers are forked: a
    decoder's thread pool (decord's, FFmpeg's) running in the parent at the fork can leave a lock
    held forever in the child, which then hangs on its first decode."""
    _readers.close_all()


def _decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except Exception:  # noqa: BLE001 - an import that fails any way means no decord
        return False
    return True


def probe_num_frames(path: str) -> int:
    """Frames in a video file from its container, without decoding: the stream's frame count, or a
    count of its packets when the container stores none (Matroska, WebM). Raises ValueError."""
    import av

    if os.path.getsize(path) == 0:
        raise ValueError("empty file")
    try:
        with av.open(path, metadata_errors="ignore") as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            count = stream.frames
            if count <= 0:
                count = sum(1 for packet in container.demux(stream) if packet.size)
    except av.error.FFmpegError as exc:
        raise ValueError(f"cannot open: {exc}") from None
    return int(count)


#: Keyframe indices per video file (this process's; plain data, so forked children may reuse them).
_keyframes: dict[str, np.ndarray] = {}


class _AVReader:
    """Random access to a video's frames with PyAV. Frame ``i`` is the one shown at ``i / fps``.

    The first read lists the keyframes (one pass over the packets, no decoding). A wanted frame is
    then reached by decoding on from the current position when no keyframe lies in between, else
    by seeking to the keyframe before it: each clip decodes every frame at most once.
    """

    def __init__(self, path: str):
        import av

        self.path = path
        self.container = av.open(path, metadata_errors="ignore")
        self.stream = self.container.streams.video[0]
        if _worker_decode_threads() == 1:
            self.stream.codec_context.thread_count = 1
        self.rate = self.stream.average_rate or self.stream.guessed_rate
        self.time_base = self.stream.time_base
        self.start = self.stream.start_time or 0
        self.position: int | None = None  # index of the last decoded frame
        self._frames: Any = None  # the decoding generator, positioned after `position`

    def close(self) -> None:
        self.container.close()

    def _index_of(self, pts: int) -> int:
        return int(round(float((pts - self.start) * self.time_base * self.rate)))

    def _keyframes(self) -> np.ndarray:
        keys = _keyframes.get(self.path)
        if keys is None:
            keys = np.unique([self._index_of(p.pts) for p in self.container.demux(self.stream)
                              if p.is_keyframe and p.pts is not None])
            _keyframes[self.path] = keys
            self._frames = None  # the demuxer is at the end now
        return keys

    def _seek(self, index: int) -> None:
        target = self.start + int(index / (self.rate * self.time_base))
        self.container.seek(target, backward=True, any_frame=False, stream=self.stream)
        self._frames = self.container.decode(self.stream)
        self.position = None

    def read(self, indices: Sequence[int]) -> list[np.ndarray]:
        if not self.rate or not self.time_base:
            return self._read_sequential(indices)
        keys = self._keyframes()
        out: dict[int, np.ndarray] = {}
        for i in sorted(set(int(i) for i in indices)):
            before = int(keys[np.searchsorted(keys, i, side="right") - 1]) if len(keys) and keys[0] <= i else 0
            if self._frames is None or self.position is None or not before <= self.position < i:
                self._seek(i)
            found = self._decode_until(i)
            if found is None:  # landed past the frame (an imprecise seek): from the top
                self.container.seek(0, backward=True, any_frame=False, stream=self.stream)
                self._frames, self.position = self.container.decode(self.stream), None
                found = self._decode_until(i)
            if found is None:
                raise ValueError(f"frame {i} not found")
            out[i] = found
        return [out[int(i)] for i in indices]

    def _decode_until(self, index: int) -> np.ndarray | None:
        for frame in self._frames:
            if frame.pts is None:
                raise ValueError("frames without timestamps")
            self.position = self._index_of(frame.pts)
            if self.position == index:
                return frame.to_ndarray(format="rgb24")
            if self.position > index:
                return None
        self._frames = None
        raise ValueError(f"frame {index} not found before the end of the stream")

    def _read_sequential(self, indices: Sequence[int]) -> list[np.ndarray]:
        wanted, out = set(int(i) for i in indices), {}
        self.container.seek(0)
        for j, frame in enumerate(self.container.decode(self.stream)):
            if j in wanted:
                out[j] = frame.to_ndarray(format="rgb24")
                if len(out) == len(wanted):
                    break
        self._frames = None
        missing = wanted - set(out)
        if missing:
            raise ValueError(f"frames {sorted(missing)} not found")
        return [out[int(i)] for i in indices]


@register("dataset", "video-folder")
class VideoFolderDataset(VideoDataset):
    """A folder of video files (mp4, webm, avi, mov, mkv...), searched recursively.

    Read with decord when it is installed (``backend="auto"``), else PyAV; a video decord fails on
    is read with PyAV instead.
    """

    config_class = VideoFolderConfig

    def _expected(self) -> str:
        return f"a folder of video files ({', '.join(VIDEO_EXTENSIONS)})"

    def _index(self) -> None:
        root = Path(self.config.path)
        if not root.is_dir():
            raise DatasetError(f"{self.config.path}: expected a folder of videos, found "
                               f"{'a file' if root.exists() else 'no such file or directory'}")
        backend = self.config.backend
        if backend == "auto":
            backend = "decord" if _decord_available() else "av"
        elif backend == "decord" and not _decord_available():
            raise DatasetError(f"{self.config.path}: backend 'decord' was asked for, but decord cannot be "
                               "imported (pip install decord, x86-64 only); use backend 'av' or 'auto'")
        self.backend = backend
        self.decord_failed: set[int] = set()  # videos read with PyAV after decord failed (this process)
        self._root = root
        files = [p for p in _walk_files(root) if p.suffix.lower() in VIDEO_EXTENSIONS]
        from concurrent.futures import ThreadPoolExecutor

        def probe(path: Path) -> int | str:
            try:
                return probe_num_frames(str(path))
            except (ValueError, OSError) as exc:
                return str(exc)

        # Probing is mostly I/O in FFmpeg (which releases the GIL): a few threads help on big folders.
        workers = min(8, os.cpu_count() or 1) if len(files) > 16 else 1
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(probe, files))
        for path, result in zip(files, results):
            if isinstance(result, str):
                self._skip(str(path), result)
            else:
                self._add_video(str(path), result, name=path.relative_to(root).as_posix())

    def _read_labels_file(self) -> tuple[str, Any] | None:
        return _read_json(self._root / LABELS_FILE)

    def _decode(self, video_idx: int, frame_indices: np.ndarray) -> list[np.ndarray]:
        path = self.video_paths[video_idx]
        if self.backend == "decord" and video_idx not in self.decord_failed:
            try:
                return self._decode_decord(path, frame_indices)
            except Exception:  # noqa: BLE001
                # decord fails on some files PyAV reads (it cannot convert frames of some widths,
                # e.g. 16 or 48 pixels): PyAV decides whether the video is bad.
                _readers.drop(("decord", path))
                self.decord_failed.add(video_idx)
        try:
            return _readers.get(("av", path), lambda: _AVReader(path)).read(frame_indices)
        except BaseException:
            # A reader left mid-error may be in any state: the next read reopens the file.
            _readers.drop(("av", path))
            raise

    def _decode_decord(self, path: str, frame_indices: np.ndarray) -> list[np.ndarray]:
        import decord

        reader = _readers.get(("decord", path), lambda: decord.VideoReader(
            path, ctx=decord.cpu(0), num_threads=_worker_decode_threads()))
        if frame_indices.max() >= len(reader):
            raise ValueError(f"decord finds {len(reader)} frames, frame {int(frame_indices.max())} was asked for")
        return list(reader.get_batch([int(i) for i in frame_indices]).asnumpy())


# --------------------------------------------------------------------------------- frame folders


@register("dataset", "frame-folder")
class FrameFolderDataset(VideoDataset):
    """A folder or .zip of per-video folders of frames (png, jpg...), in natural order."""

    config_class = FrameFolderConfig
    _unpicklable = ("_zip", "_zip_pid")

    def _expected(self) -> str:
        return f"folders of frame images ({', '.join(IMAGE_EXTENSIONS)})"

    def _index(self) -> None:
        root = Path(self.config.path)
        self._root, self._zip, self._zip_pid = root, None, None
        self._labels_entry: str | None = None
        if root.is_file() and root.suffix.lower() == ".zip":
            self.is_zip = True
            try:
                names = self._zipfile().namelist()
            except (zipfile.BadZipFile, OSError) as exc:
                raise DatasetError(f"{self.config.path}: expected a zip of frame folders, found an unreadable "
                                   f"file ({exc})") from None
            videos: dict[str, list[str]] = {}
            for name in names:
                if name.endswith("/"):
                    continue
                if posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                    videos.setdefault(posixpath.dirname(name), []).append(name)
                elif posixpath.basename(name) == LABELS_FILE:
                    if self._labels_entry is None or name.count("/") < self._labels_entry.count("/"):
                        self._labels_entry = name
            groups = [(name or root.stem, f"{root}:{name or '/'}", files)
                      for name, files in sorted(videos.items(), key=lambda kv: natural_key(kv[0]))]
        elif root.is_dir():
            self.is_zip = False
            groups = []
            for folder, files in _walk_dirs(root):
                images = [f for f in files if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
                if images:
                    rel = folder.relative_to(root).as_posix()
                    groups.append((rel if rel != "." else root.name, str(folder), [str(folder / f) for f in images]))
        else:
            raise DatasetError(f"{self.config.path}: expected a folder or .zip of frame folders, found "
                               f"{'a file that is not a .zip' if root.exists() else 'no such file or directory'}")
        self.frame_files: list[list[str]] = []
        for name, where, files in groups:
            files = sorted(files, key=lambda f: natural_key(posixpath.basename(f.replace(os.sep, "/"))))
            before = self.num_videos
            self._add_video(where, len(files), name=name)
            if self.num_videos > before:
                self.frame_files.append(files)

    def _label_keys(self, i: int) -> list[str]:
        keys = super()._label_keys(i)
        if self._labels_entry and "/" in self._labels_entry:  # dataset.json in a top folder of the zip
            prefix = posixpath.dirname(self._labels_entry) + "/"
            name = self.video_names[i]
            if name.startswith(prefix):
                keys.insert(0, name[len(prefix):])
        return keys

    def _zipfile(self) -> zipfile.ZipFile:
        # One handle per process: a ZipFile shared across a fork would share its file offset.
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip, self._zip_pid = zipfile.ZipFile(self._root), os.getpid()
        return self._zip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._zip, self._zip_pid = None, None

    def _read_labels_file(self) -> tuple[str, Any] | None:
        if not self.is_zip:
            return _read_json(self._root / LABELS_FILE)
        if self._labels_entry is None:
            return None
        where = f"{self._root}:{self._labels_entry}"
        try:
            return where, json.loads(self._zipfile().read(self._labels_entry))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: expected valid JSON, found an error: {exc}") from None

    def _content_digest(self, video_idx: int) -> bytes:
        # Every frame's name and size, plus its CRC inside a zip (free: the zip directory has it).
        files = self.frame_files[video_idx]
        if self.is_zip:
            infos = [self._zipfile().getinfo(f) for f in files]
            text = "\0".join(f"{i.filename}:{i.file_size}:{i.CRC}" for i in infos)
        else:
            text = "\0".join(f"{posixpath.basename(f.replace(os.sep, '/'))}:{os.path.getsize(f)}" for f in files)
        return hashlib.sha256(text.encode()).digest()

    def _decode(self, video_idx: int, frame_indices: np.ndarray) -> list[np.ndarray]:
        from PIL import Image

        files = self.frame_files[video_idx]
        images = []
        for i in frame_indices:
            if self.is_zip:
                data = io.BytesIO(self._zipfile().read(files[int(i)]))
            else:
                data = files[int(i)]
            with Image.open(data) as image:
                images.append(np.asarray(image.convert("RGB")))
        return images


# --------------------------------------------------------------------------------- helpers


def _walk_dirs(root: Path):
    """``(folder, sorted file names)`` for ``root`` and every folder below it, in natural order."""
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)
        yield Path(folder), sorted((f for f in files if not f.startswith(".")), key=natural_key)


def _file_digest(path: str, block: int = 1 << 16) -> bytes:
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(block))
        if size > 2 * block:
            f.seek(size - block)
        digest.update(f.read(block))
    return digest.digest()


def _walk_files(root: Path) -> list[Path]:
    return [folder / f for folder, files in _walk_dirs(root) for f in files]


def _read_json(path: Path) -> tuple[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return str(path), json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: expected valid JSON, found an error: {exc}") from None


def _parse_query(query: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _detect(spec: str) -> str:
    """``"video-folder"``, ``"frame-folder"``; raises DatasetError for anything else."""
    path = Path(spec)
    if not path.exists():
        raise DatasetError(f"{spec}: no such file or directory (expected a folder of videos, a folder or .zip "
                           "of frame folders, or synthetic:shapes)")
    if path.is_file():
        if path.suffix.lower() == ".zip":
            return "frame-folder"
        raise DatasetError(f"{spec}: expected a folder of videos, a folder or .zip of frame folders, found a "
                           f"{path.suffix or 'plain'} file")
    has_images, num_files = False, 0
    for _, files in _walk_dirs(path):
        for f in files:
            num_files += 1
            suffix = Path(f).suffix.lower()
            if suffix in VIDEO_EXTENSIONS:
                return "video-folder"
            has_images = has_images or suffix in IMAGE_EXTENSIONS
    if has_images:
        return "frame-folder"
    if num_files == 0:
        raise DatasetError(f"{spec}: expected video files or folders of frames, found an empty folder")
    raise DatasetError(f"{spec}: expected video files ({', '.join(VIDEO_EXTENSIONS)}) or folders of images "
                       f"({', '.join(IMAGE_EXTENSIONS)}), found {num_files} other files")


def open_dataset(spec: str | os.PathLike, *, resolution: int, sampling: ClipSamplingConfig | None = None,
                 xflip: bool = False, seed: int = 0, **kwargs: Any) -> VideoDataset:
    """Open a dataset, its kind told from ``spec``.

    Args:
        spec: ``"synthetic:shapes"`` (options as a query: ``"synthetic:shapes?num_videos=64&num_frames=100"``),
            a ``.zip`` of frame folders, a folder of video files, or a folder of frame folders.
        resolution: training resolution (frames come out ``[k, C, resolution, resolution]``).
        sampling: clip sampling (StyleGAN-V's by default).
        xflip, seed: see :class:`DatasetConfig`.
        **kwargs: other fields of the dataset's config (``backend="av"`` for video folders...).

    Raises:
        DatasetError: a missing path, an empty folder, content of no known kind, no usable video.
    """
    from vgz import registry

    spec = os.fspath(spec)
    fields: dict[str, Any] = {}
    if spec.startswith("synthetic:"):
        name, _, query = spec[len("synthetic:"):].partition("?")
        names = [e.name[len("synthetic-"):] for e in registry.list_components("dataset", "synthetic-*")]
        if name not in names:
            raise DatasetError(f"{spec}: expected synthetic:<name> with one of {', '.join(names)}, found {name!r}")
        kind = f"synthetic-{name}"
        fields = _parse_query(query)
    else:
        kind = _detect(spec)
    entry = registry.get("dataset", kind)
    try:
        # A spec's query (synthetic:shapes?seed=1) and keyword options override the defaults.
        config = entry.config_cls(path=spec, resolution=resolution,
                                  sampling=sampling if sampling is not None else ClipSamplingConfig(),
                                  **{"xflip": xflip, "seed": seed, **fields, **kwargs})
    except TypeError as exc:  # an unknown option
        raise DatasetError(f"{spec}: {exc}".replace("__init__()", entry.config_cls.__name__)) from None
    except ConfigError as exc:
        raise DatasetError(f"{spec}: {exc}") from None
    return entry.cls(config)


def make_dataloader(dataset: torch.utils.data.Dataset, *, batch_size: int, sampler: Any, num_workers: int = 2,
                    pin_memory: bool = False, prefetch_factor: int = 2) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` drawing items from ``sampler`` (an :class:`InfiniteClipSampler`).

    Workers persist between epochs and decode with one thread each. Batches collate to
    ``frames`` uint8 ``[B, k, C, R, R]``, ``times`` int64 ``[B, k]``, ``label`` ``[B, label_dim]``,
    ``video_len`` and ``video_index`` int64 ``[B]``.
    """
    extra: dict[str, Any] = {}
    if num_workers > 0:
        close_readers()
        extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor, "worker_init_fn": _worker_init}
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                       pin_memory=pin_memory, **extra)


# Registers synthetic-shapes (imported last: shapes.py builds on the classes above).
from vgz.data import shapes as _shapes  # noqa: E402,F401
