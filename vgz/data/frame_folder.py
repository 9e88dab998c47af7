"""``frame-folder``: a folder (or ``.zip``) of per-video folders of images, frames in natural order
(``2.png`` before ``10.png``), or in plain string order (``order="plain"``), as StyleGAN-V's
``VideoFramesFolderDataset`` sorts them. Where the two orders differ (frame names not zero-padded),
opening the dataset warns: the two codes would read other clips, or other videos first.

Frames become 8-bit RGB whatever their mode (:func:`image_to_rgb8`): 16-bit images keep their high
byte (``v >> 8``, what Pillow itself does when it opens 16-bit RGB PNGs, so a 16-bit grey frame and
the same frame as 16-bit RGB decode alike); grey, palette and 1-bit images are expanded to RGB; an
alpha channel is dropped (the colour as stored, not composited onto a background).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vgz.data.base import (IMAGE_EXTENSIONS, LABELS_FILE, DatasetConfig, DatasetError, DatasetWarning, VideoDataset,
                           _read_json, _walk_dirs, natural_key, sort_key)
from vgz.registry import register

__all__ = ["FrameFolderConfig", "FrameFolderDataset", "image_to_rgb8"]

#: Pillow modes of one channel of integers wider than 8 bits: 16-bit PNG and TIFF frames open as
#: "I;16" (or "I;16B"...), and as "I" (32-bit) in older Pillow or from 32-bit integer TIFFs.
_WIDE_GREY_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;16BS", "I;16LS")


def image_to_rgb8(image: Any, where: str = "image") -> np.ndarray:
    """A PIL image -> uint8 ``[H, W, 3]``.

    ``image.convert("RGB")`` alone clips 16-bit grey values to 255 (frames come out almost white),
    so integer grey modes are scaled here: 16-bit values ``v`` become ``v >> 8``. Palette, grey,
    1-bit, CMYK and alpha modes go through ``convert("RGB")`` (alpha dropped).

    Raises:
        ValueError: naming ``where``, for float images (mode ``F``: no known range) and integer
            images with values outside 0..65535.
    """
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image)
    if mode in _WIDE_GREY_MODES:
        values = np.asarray(image)
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if low < 0 or high > 65535:
            raise ValueError(f"{where}: expected 16-bit grey values 0..65535 (mode {mode}), found {low}..{high}")
        grey = (values.astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        raise ValueError(f"{where}: expected 8- or 16-bit integer frames, found 32-bit float (mode F), whose range "
                         "is unknown; save the frames as 8- or 16-bit PNG")
    return np.asarray(image.convert("RGB"))


@dataclass
class FrameFolderConfig(DatasetConfig):
    """A folder or .zip of per-video frame folders."""


@register("dataset", "frame-folder")
class FrameFolderDataset(VideoDataset):
    """A folder or .zip of per-video folders of frames (png, jpg...), in natural order (or plain,
    ``config.order``)."""

    config_class = FrameFolderConfig
    _unpicklable = ("_zip", "_zip_pid")

    def _expected(self) -> str:
        return f"folders of frame images ({', '.join(IMAGE_EXTENSIONS)})"

    def _index(self) -> None:
        root = Path(self.config.path)
        key = sort_key(self.config.order)
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
                      for name, files in sorted(videos.items(), key=lambda kv: _by(key, kv[0]))]
        elif root.is_dir():
            self.is_zip = False
            groups = []
            for folder, files in _walk_dirs(root, key):
                images = [f for f in files if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
                if images:
                    rel = folder.relative_to(root).as_posix()
                    groups.append((rel if rel != "." else root.name, str(folder), [str(folder / f) for f in images]))
        else:
            raise DatasetError(f"{self.config.path}: expected a folder or .zip of frame folders, found "
                               f"{'a file that is not a .zip' if root.exists() else 'no such file or directory'}")
        self.frame_files: list[list[str]] = []
        _warn_if_orders_differ(str(root), groups, self.config.order)
        for name, where, files in groups:
            files = sorted(files, key=lambda f: _by(key, posixpath.basename(f.replace(os.sep, "/"))))
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
                images.append(image_to_rgb8(image, where=files[int(i)]))
        return images


def _by(key: Any, name: str) -> Any:
    return name if key is None else key(name)


def _warn_if_orders_differ(root: str, groups: list[tuple[str, str, list[str]]], order: str) -> None:
    """Warn when natural and plain string order differ for the frames of some video (``1.png, 2.png,
    ..., 10.png``: not zero-padded) or for the videos themselves: vgz (natural) and StyleGAN-V's
    code (plain) would then read other clips, or other videos as "the first N"."""
    frames = [(name, [posixpath.basename(f.replace(os.sep, "/")) for f in files]) for name, _, files in groups]
    unpadded = [(name, names) for name, names in frames if sorted(names) != sorted(names, key=natural_key)]
    videos = [name for name, _, _ in groups]
    reordered = sorted(videos) != sorted(videos, key=natural_key)
    if not unpadded and not reordered:
        return
    found = []
    if unpadded:
        name, names = unpadded[0]
        plain = sorted(names)
        found.append(f"the frames of {len(unpadded)} videos are not zero-padded (in {name}: "
                     f"{', '.join(plain[:3])}, ... in plain order)")
    if reordered:
        found.append(f"the video folders sort differently (plain order starts {', '.join(sorted(videos)[:3])}; "
                     f"natural order {', '.join(sorted(videos, key=natural_key)[:3])})")
    warnings.warn(f"{root}: {' and '.join(found)}. This dataset reads them in {order} order; StyleGAN-V's code sorts "
                  "names as plain strings and vgz by default naturally ('2.png' before '10.png'), so the two read "
                  "other clips or other videos. Zero-pad the names (00001.png) to make both agree, or open the "
                  "dataset with order='plain' (vgz eval --order plain) to read as StyleGAN-V does.",
                  DatasetWarning, stacklevel=4)
