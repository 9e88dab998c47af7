"""Video datasets for training: clips of ``k`` frames from folders of videos, frame folders, zips
or procedural shapes. This is the public module: it opens datasets by spec and re-exports every
dataset name, so ``from vgz.data.datasets import X`` works for all of them.

Every dataset is a :class:`VideoDataset` (kind ``dataset`` in the registry)::

    dataset = open_dataset("my_videos/", resolution=256)          # or a .zip, or "synthetic:shapes"
    sampler = InfiniteClipSampler(len(dataset), rank=0, world_size=1, seed=0)
    loader = make_dataloader(dataset, batch_size=16, sampler=sampler, num_workers=4)
    batch = next(iter(loader))    # frames uint8 [B, k, C, R, R], times int64 [B, k], label [B, label_dim]

Indexing is cheap and forgiving: files that cannot be opened, empty files and videos too short for
the sampling are skipped, counted in ``dataset.skipped`` and reported in one warning. A video that
fails to decode later is marked bad and another video is used in its place, deterministically.

Modules, one per concern:

* :mod:`vgz.data.base`: the :class:`VideoDataset` base (indexing, labels from ``dataset.json``,
  clip drawing, bad videos, fingerprints), :class:`DatasetConfig`, errors and frame helpers;
* :mod:`vgz.data.video_folder`: ``video-folder``, a folder of video files (decord or PyAV);
* :mod:`vgz.data.frame_folder`: ``frame-folder``, a folder or ``.zip`` of per-video frame folders
  (8- and 16-bit, grey, palette and RGBA images);
* :mod:`vgz.data.shapes`: ``synthetic-shapes``, procedural moving shapes;
* :mod:`vgz.data.latents`: ``latent-folder``, per-video latents written by ``vgz invert`` (a folder
  with a ``latents.json`` marker; items hold ``ws`` instead of frames).
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import signal
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import torch

from vgz.configs import ConfigError
from vgz.data.base import (IMAGE_EXTENSIONS, LABELS_FILE, VIDEO_EXTENSIONS, DatasetConfig, DatasetError,
                           DatasetWarning, VideoDataset, _walk_dirs, natural_key, resize_center_crop)
from vgz.data.frame_folder import FrameFolderConfig, FrameFolderDataset, image_to_rgb8
from vgz.data.latents import LATENTS_MARKER, LatentFolderConfig, LatentFolderDataset, consecutive_sampling
from vgz.data.sampling import ClipSamplingConfig
from vgz.data.shapes import ShapesConfig, SyntheticShapesDataset
from vgz.data.video_folder import VideoFolderConfig, VideoFolderDataset, close_readers, probe_num_frames

__all__ = [
    "WorkerLoader",
    "shutdown_workers",
    "DatasetError",
    "DatasetWarning",
    "DatasetConfig",
    "VideoFolderConfig",
    "FrameFolderConfig",
    "ShapesConfig",
    "LatentFolderConfig",
    "VideoDataset",
    "VideoFolderDataset",
    "FrameFolderDataset",
    "SyntheticShapesDataset",
    "LatentFolderDataset",
    "consecutive_sampling",
    "LATENTS_MARKER",
    "open_dataset",
    "make_dataloader",
    "close_readers",
    "probe_num_frames",
    "resize_center_crop",
    "image_to_rgb8",
    "natural_key",
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "LABELS_FILE",
]


def _worker_init(worker_id: int) -> None:
    # Workers run in parallel already; more threads each would oversubscribe the cores.
    torch.set_num_threads(1)
    # Ctrl-C, and the SIGTERM that scancel, a SLURM time limit or `kill -TERM -- -PGID` sends,
    # reach the whole process group: the trainer handles them (saving a checkpoint), so a worker
    # must not die of them first. Workers still stop when the main process shuts the loader down
    # (a None on their queue) or dies (their watchdog sees the parent gone).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _parse_query(query: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _detect(spec: str) -> str:
    """``"video-folder"``, ``"frame-folder"``, ``"latent-folder"``; raises DatasetError for anything else."""
    path = Path(spec)
    if not path.exists():
        raise DatasetError(f"{spec}: no such file or directory (expected a folder of videos, a folder or .zip "
                           "of frame folders, or synthetic:shapes)")
    if path.is_dir() and (path / LATENTS_MARKER).is_file():  # written by vgz invert
        return "latent-folder"
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


def open_dataset(spec: str | os.PathLike, *, resolution: int | None = None, sampling: ClipSamplingConfig | None = None,
                 xflip: bool = False, seed: int = 0, **kwargs: Any) -> VideoDataset:
    """Open a dataset, its kind told from ``spec``.

    Args:
        spec: ``"synthetic:shapes"`` (options as a query: ``"synthetic:shapes?num_videos=64&num_frames=100"``),
            a ``.zip`` of frame folders, a folder of video files, a folder of frame folders, or a
            latent folder written by ``vgz invert`` (told by its ``latents.json``).
        resolution: training resolution (frames come out ``[k, C, resolution, resolution]``); needed
            for videos. A latent folder takes it from ``latents.json`` (a different value is an error).
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
    if resolution is None and getattr(entry.config_cls, "resolution", None) is not None:
        raise DatasetError(f"{spec}: pass resolution= (frames are cropped and resized to it)")
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


class WorkerLoader(torch.utils.data.DataLoader):
    """A ``DataLoader`` whose workers start clean and are stopped before the interpreter exits.

    Before forking workers it closes this process's cached decoders and collects its garbage (see
    ``_get_iterator``). vgz's workers ignore SIGINT and SIGTERM (:func:`_worker_init`), and the
    interpreter's exit handler stops leftover workers with a SIGTERM and then joins them: a loader
    left open at exit would wait forever. The iterators of these loaders are shut down first, at exit.
    """

    def _get_iterator(self) -> Any:
        if self.num_workers > 0:
            # The workers are forked copies of this process without its threads. Decoders cached here
            # are closed first (a copied reader would wait on threads that are not there), and so is
            # garbage the collector has not freed yet: freed later in a worker, a PyAV codec context
            # would join its thread pool there and hang the worker forever.
            close_readers()
            gc.collect()
        iterator = super()._get_iterator()
        if self.num_workers > 0:
            _open_iterators.add(iterator)
        return iterator


_open_iterators: "weakref.WeakSet[Any]" = weakref.WeakSet()


def shutdown_workers(iterator: Any) -> None:
    """Stop the worker processes of a DataLoader iterator now (a worker that does not stop when
    told is killed: the loader's own fallback, SIGTERM, is ignored by vgz's workers)."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for worker in getattr(iterator, "_workers", None) or []:
        if worker.is_alive():
            worker.kill()
            worker.join(timeout=5)


@atexit.register
def _shutdown_open_loaders() -> None:
    # Registered after torch's own exit hooks, so it runs before them (atexit is last in, first out)
    # while the loaders' shutdown still works.
    for iterator in list(_open_iterators):
        shutdown_workers(iterator)


def make_dataloader(dataset: torch.utils.data.Dataset, *, batch_size: int, sampler: Any, num_workers: int = 2,
                    pin_memory: bool = False, prefetch_factor: int = 2) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` drawing items from ``sampler`` (an :class:`InfiniteClipSampler`).

    Workers persist between epochs and decode with one thread each; they ignore SIGINT/SIGTERM
    (the trainer saves first) and are stopped at exit (:class:`WorkerLoader`). Batches collate to
    ``frames`` uint8 ``[B, k, C, R, R]``, ``times`` int64 ``[B, k]``, ``label`` ``[B, label_dim]``,
    ``video_len`` and ``video_index`` int64 ``[B]``.
    """
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor, "worker_init_fn": _worker_init}
    return WorkerLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                        pin_memory=pin_memory, **extra)
