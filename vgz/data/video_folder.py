"""``video-folder``: a folder (searched recursively) of video files, read with decord when it is
installed, else PyAV; lengths come from the container (a frame count, or a count of packets for
Matroska/WebM, which store none).

Open readers are kept per process (a few, least recently used closed first) and never shared with
forked DataLoader workers; :func:`close_readers` closes them before workers are forked.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch

from vgz.configs import config_field
from vgz.data.base import (LABELS_FILE, VIDEO_EXTENSIONS, DatasetConfig, DatasetError, VideoDataset, _read_json,
                           _walk_files, sort_key)
from vgz.registry import register

__all__ = ["VideoFolderConfig", "VideoFolderDataset", "probe_num_frames", "close_readers"]


@dataclass
class VideoFolderConfig(DatasetConfig):
    """A folder of video files."""

    backend: Literal["auto", "decord", "av"] = config_field("auto", help="decoder; auto = decord if installed")


def _worker_decode_threads() -> int:
    """Decoder threads: 1 inside a DataLoader worker (workers already use the cores), else the
    library's default (0)."""
    return 1 if torch.utils.data.get_worker_info() is not None else 0


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
        files = [p for p in _walk_files(root, sort_key(self.config.order)) if p.suffix.lower() in VIDEO_EXTENSIONS]
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
