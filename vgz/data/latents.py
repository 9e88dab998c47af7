"""``latent-folder``: a folder of per-video StyleGAN latents, as written by ``vgz invert``.

Layout (format version 1)::

    latents/
        latents.json                          the marker: what every file in the folder holds
        clips__a-1f3c5e7a9b2d.safetensors     one file per video: tensor "ws" float32 [T, num_ws, w_dim]
        clips__b-8e2a0c4d6f1b.safetensors

``latents.json`` (written first, so an interrupted ``vgz invert`` leaves a folder it can resume)::

    {"format": "vgz-latents", "format_version": 1, "num_ws": 18, "w_dim": 512,
     "encoder_sha256": "<64 hex>", "synthesis_sha256": "<64 hex>", "input_resolution": 256,
     "generator_resolution": 1024, "pipeline": "psp-faces/", "pipeline_name": "psp",
     "vgz_version": "..."}

Each ``.safetensors`` file holds one tensor ``ws`` and string metadata: ``format``,
``format_version``, ``name`` (the video's item name in its dataset, e.g. ``clips/a.mp4``),
``source`` (its path, or ``synthetic:shapes/000003``), ``dataset`` (the spec it was read from),
``num_frames``, ``fps`` and ``source_width``/``source_height`` (when known), ``input_resolution``,
``num_ws``, ``w_dim``, ``encoder_sha256``, ``synthesis_sha256``, ``source_sha256`` (what the video
held: its size and the hash of its first and last 64 KiB, as dataset fingerprints use) and
``vgz_version``; and ``refine`` (JSON: ``steps``, ``lr``, ``smooth``, ``batch_size``) when the codes
were refined after encoding (``vgz invert --refine-steps``), also in ``latents.json``.

File names (:func:`latent_file_name`) come from the item name alone, so they are stable across runs
and machines: the name without its video suffix, ``/`` as ``__``, other characters outside
``A-Za-z0-9._-`` as ``_``, cut to 80 characters, then ``-`` and 12 hex digits of the SHA-256 of the
whole item name (so ``a/b.mp4``, ``a__b.mp4`` and ``a/b.mkv`` never collide, even on case-insensitive
file systems).

The dataset gives clips as the video datasets do, from the same ``(video_index, clip_seed)`` pairs
and the same :class:`~vgz.data.sampling.ClipSamplingConfig`, with ``ws`` in place of pixels;
:func:`consecutive_sampling` gives clips of ``k`` consecutive latent frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vgz.configs import config_field
from vgz.data.base import (LABELS_FILE, VIDEO_EXTENSIONS, DatasetConfig, DatasetError, VideoDataset, _read_json,
                           natural_key)
from vgz.data.sampling import ClipSamplingConfig
from vgz.data.video import raw_to_uint8
from vgz.registry import register

__all__ = [
    "LATENTS_MARKER",
    "LATENTS_FORMAT",
    "LATENTS_FORMAT_VERSION",
    "LatentFolderConfig",
    "LatentFolderDataset",
    "latent_file_name",
    "read_latents_marker",
    "read_latent_header",
    "write_latent_file",
    "consecutive_sampling",
    "is_latent_folder",
]

LATENTS_MARKER = "latents.json"
LATENTS_FORMAT = "vgz-latents"
LATENTS_FORMAT_VERSION = 1
LATENT_SUFFIX = ".safetensors"
#: Metadata fields stored as numbers (safetensors metadata is strings only).
_INT_FIELDS = ("format_version", "num_frames", "num_ws", "w_dim", "input_resolution", "source_width",
               "source_height")
_FLOAT_FIELDS = ("fps",)
#: Metadata stored as JSON (objects).
_JSON_FIELDS = ("refine",)


def latent_file_name(item_name: str) -> str:
    """The file name of a video's latents: stable, unique per item name, safe on any file system.

    ``"clips/a b.mp4"`` -> ``"clips__a_b-<12 hex>.safetensors"``; the hex digits are the start of
    the SHA-256 of the whole (``/``-separated) item name, so names that clean up alike still differ.
    """
    key = item_name.replace("\\", "/").strip("/")
    stem, suffix = posixpath.splitext(key)
    readable = stem if suffix.lower() in VIDEO_EXTENSIONS else key
    # A leading dot would hide the file (hidden names are skipped, and used for temporary files).
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", readable.replace("/", "__")).strip("._")[:80] or "video"
    return f"{readable}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:12]}{LATENT_SUFFIX}"


def consecutive_sampling(num_frames: int, max_num_frames: int = 2**31 - 1) -> ClipSamplingConfig:
    """Clips of ``num_frames`` consecutive frames at a random position (a span of exactly
    ``num_frames - 1``), in the form every dataset takes: ``open_dataset(latents, sampling=...)``."""
    return ClipSamplingConfig(num_frames=num_frames, total_dists=(num_frames - 1,), max_dist=num_frames - 1,
                              max_num_frames=max_num_frames)


def is_latent_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder with a ``latents.json`` marker (what ``open_dataset`` checks)."""
    return (Path(path) / LATENTS_MARKER).is_file()


def _positive_int(where: str, data: dict, key: str, *, optional: bool = False) -> int | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DatasetError(f"{where}: expected {key!r} to be a positive integer, found {value!r}")
    return value


def read_latents_marker(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``latents.json`` of ``folder``, checked.

    Raises:
        DatasetError: naming the file and field: no marker, bad JSON, another format, a newer
            format version, or a missing or ill-typed ``num_ws``/``w_dim``/``encoder_sha256``.
    """
    path = Path(folder) / LATENTS_MARKER
    if not path.is_file():
        raise DatasetError(f"{folder}: expected a latent folder with {LATENTS_MARKER} (written by vgz invert), "
                           "found none")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: expected valid JSON, found an error: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != LATENTS_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DatasetError(f"{path}: expected \"format\": \"{LATENTS_FORMAT}\", found {found!r}")
    version = _positive_int(str(path), data, "format_version")
    if version > LATENTS_FORMAT_VERSION:
        raise DatasetError(f"{path}: format_version {version} was written by a newer vgz; this one reads up to "
                           f"{LATENTS_FORMAT_VERSION} (upgrade vgz)")
    _positive_int(str(path), data, "num_ws")
    _positive_int(str(path), data, "w_dim")
    _positive_int(str(path), data, "generator_resolution", optional=True)
    digest = data.get("encoder_sha256")
    if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        raise DatasetError(f"{path}: expected \"encoder_sha256\" to be 64 hex digits, found {digest!r}")
    return data


def _parse_metadata(raw: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(raw)
    for key in _JSON_FIELDS:
        if key in out:
            try:
                out[key] = json.loads(out[key])
            except ValueError:
                raise ValueError(f"metadata {key!r}: expected JSON, found {out[key]!r}") from None
    for fields, cast, what in ((_INT_FIELDS, int, "an integer"), (_FLOAT_FIELDS, float, "a number")):
        for key in fields:
            if key in out:
                try:
                    out[key] = cast(out[key])
                except ValueError:
                    raise ValueError(f"metadata {key!r}: expected {what}, found {out[key]!r}") from None
    return out


def read_latent_header(path: str | os.PathLike) -> tuple[dict[str, Any], tuple[int, ...]]:
    """``(metadata, shape of ws)`` of a latent file, read from its header only (no tensor data).

    Metadata numbers (``num_frames``, ``fps``, ...) come back as numbers.

    Raises:
        ValueError: not a safetensors file, no ``ws`` tensor, or not written by ``vgz invert``.
        OSError: the file cannot be read.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            raw, keys = f.metadata() or {}, list(f.keys())
            shape = tuple(f.get_slice("ws").get_shape()) if "ws" in keys else None
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        raise ValueError(f"not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    if shape is None:
        raise ValueError(f"expected a tensor 'ws', found {', '.join(keys) or 'none'}")
    if raw.get("format") != LATENTS_FORMAT:
        raise ValueError(f"expected metadata format={LATENTS_FORMAT!r} (a file written by vgz invert), found "
                         f"{raw.get('format')!r}")
    return _parse_metadata(raw), shape


def write_latent_file(path: str | os.PathLike, ws: torch.Tensor, metadata: dict[str, Any]) -> Path:
    """Write ``ws [T, num_ws, w_dim]`` (stored float32) and ``metadata`` (values stored as strings;
    None values left out) to ``path`` atomically: a temporary name in the same folder, then a rename."""
    from safetensors.torch import save_file

    from vgz.utils import atomic_path

    if ws.ndim != 3:
        raise ValueError(f"expected ws [T, num_ws, w_dim], found shape {tuple(ws.shape)}")
    meta = {"format": LATENTS_FORMAT, "format_version": str(LATENTS_FORMAT_VERSION)}
    meta.update({k: json.dumps(v, sort_keys=True) if k in _JSON_FIELDS else str(v)
                 for k, v in metadata.items() if v is not None and k not in meta})
    tensor = ws.detach().to("cpu", torch.float32).contiguous()
    with atomic_path(path) as tmp:
        save_file({"ws": tensor}, str(tmp), metadata=meta)
    return Path(path)


def _latent_files(folder: Path) -> list[Path]:
    """The visible ``.safetensors`` files of ``folder`` (not below it), in natural order; hidden
    names are temporary files of writes in progress."""
    return sorted((p for p in folder.iterdir() if p.suffix == LATENT_SUFFIX and not p.name.startswith(".")
                   and p.is_file()), key=lambda p: natural_key(p.name))


@dataclass
class LatentFolderConfig(DatasetConfig):
    """A folder of latents written by ``vgz invert``."""

    resolution: int | None = config_field(
        None, min=1, help="the resolution of the generator the latents are for (checked against latents.json; "
                          "None: take it from there)")

    def check(self) -> None:
        if self.xflip:
            self.fail("xflip", "False: latents have no pixels to mirror")


@register("dataset", "latent-folder")
class LatentFolderDataset(VideoDataset):
    """Per-video latents ``ws [T, num_ws, w_dim]`` written by ``vgz invert``: clips of latents for
    recipes that train on them.

    Built on :class:`VideoDataset` for what latents share with videos (indexing with skipped files
    counted, labels from ``dataset.json`` keyed by the original video names, ``(video_index,
    clip_seed)`` items with unreadable files replaced, fingerprints); frames are replaced by latents:
    an item is ``{"ws": float32 [k, num_ws, w_dim], "times", "video_len", "label", "video_index"}``.
    With the same sampling and seed, a clip takes the same frame indices as the video dataset the
    latents came from.

    Attributes (besides the base class's):
        num_ws, w_dim: the latent shape; ``resolution``: the generator's (from ``latents.json``).
        encoder_sha256: the encoder every file was made with.
        info: the parsed ``latents.json``.
        metadata: per video, its file's metadata (``name``, ``source``, ``fps``, ``num_frames``...).

    Raises (on opening):
        DatasetError: no or bad ``latents.json``; files of another encoder or latent shape than
            ``latents.json`` says (a folder of mixed encoders); no readable latent file.
    """

    config_class = LatentFolderConfig

    def _expected(self) -> str:
        return f"latent files (*{LATENT_SUFFIX}) written by vgz invert"

    def _index(self) -> None:
        root = Path(self.config.path)
        if not root.is_dir():
            raise DatasetError(f"{self.config.path}: expected a latent folder, found "
                               f"{'a file' if root.exists() else 'no such file or directory'}")
        self._root = root
        self.info = read_latents_marker(root)
        self.num_ws, self.w_dim = self.info["num_ws"], self.info["w_dim"]
        self.encoder_sha256 = self.info["encoder_sha256"]
        generator_resolution = self.info.get("generator_resolution")
        if self.config.resolution is not None and generator_resolution is not None \
                and self.config.resolution != generator_resolution:
            raise DatasetError(f"{root / LATENTS_MARKER}: these latents are for a {generator_resolution}x"
                               f"{generator_resolution} generator, but resolution {self.config.resolution} was asked "
                               f"for; pass resolution={generator_resolution} (or None)")
        self.resolution = self.config.resolution or generator_resolution
        self.metadata: list[dict[str, Any]] = []
        foreign: list[str] = []
        for path in _latent_files(root):
            try:
                meta, shape = read_latent_header(path)
            except (OSError, ValueError) as exc:
                self._skip(str(path), str(exc))
                continue
            if len(shape) != 3:
                self._skip(str(path), f"expected ws [T, {self.num_ws}, {self.w_dim}], found {list(shape)}")
                continue
            if meta.get("encoder_sha256") != self.encoder_sha256 or shape[1:] != (self.num_ws, self.w_dim):
                foreign.append(f"{path.name} (encoder {str(meta.get('encoder_sha256'))[:12]}, ws {list(shape)})")
                continue
            before = len(self.video_paths)
            self._add_video(str(path), shape[0], name=str(meta.get("name") or path.stem))
            if len(self.video_paths) > before:
                self.metadata.append(meta)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise DatasetError(
                f"{root}: expected latents of one encoder (latents.json: encoder {self.encoder_sha256[:12]}, ws "
                f"[T, {self.num_ws}, {self.w_dim}]), found {len(foreign)} file(s) of another: {shown}. Re-run vgz "
                "invert with --overwrite to encode every video with one encoder, or move those files out")

    def _read_labels_file(self) -> tuple[str, Any] | None:
        return _read_json(self._root / LABELS_FILE)

    def read_latents(self, video_idx: int, frame_indices: Sequence[int] | None = None) -> torch.Tensor:
        """float32 ``ws [k, num_ws, w_dim]`` of frames ``frame_indices`` of video ``video_idx`` (all
        ``T`` frames when None). Only the rows from the first to the last index are read."""
        from safetensors import safe_open

        length = self.video_lengths[video_idx]
        indices = np.arange(length) if frame_indices is None else np.asarray(frame_indices, np.int64).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= length):
            raise IndexError(f"{self.video_paths[video_idx]}: frame indices {indices.tolist()} out of range "
                             f"[0, {length})")
        if not len(indices):
            return torch.zeros([0, self.num_ws, self.w_dim])
        first, last = int(indices.min()), int(indices.max())
        with safe_open(self.video_paths[video_idx], "pt") as f:
            rows = f.get_slice("ws")[first:last + 1]
        return rows[torch.from_numpy(indices - first)].float()

    def read_frames(self, video_idx: int, frame_indices: Sequence[int]) -> torch.Tensor:
        """uint8 ``[k, C, R, R]``: the latents rendered, on a view made by :meth:`rendered` (a latent folder
        itself holds no frames)."""
        synthesis = getattr(self, "_synthesis", None)
        if synthesis is None:
            raise TypeError(f"{self.config.path} is a latent folder: it holds ws, not frames. Use read_latents, and "
                            f"render them with the pipeline that made them ({self.info.get('pipeline')!r}), or "
                            "read frames from dataset.rendered(synthesis)")
        device = next(synthesis.parameters()).device
        ws = self.read_latents(video_idx, frame_indices)
        with torch.no_grad():
            parts = [synthesis(ws[b:b + self._render_batch].to(device), noise_mode="const")
                     for b in range(0, len(ws), self._render_batch)]
        raw = torch.cat(parts) if parts else torch.zeros([0, self.num_channels, self.resolution, self.resolution])
        return raw_to_uint8(raw).cpu()

    def rendered(self, synthesis: torch.nn.Module, *, batch_size: int = 16) -> "LatentFolderDataset":
        """A view of this dataset whose frames are its latents rendered by ``synthesis`` (constant noise),
        e.g. StyleVideoGAN's "W+ embedding rendered" reference for evaluation. ``synthesis`` must be the
        generator the latents were made for (``synthesis_sha256`` in ``latents.json``), else a
        DatasetError. Frames are rendered where ``synthesis`` is, in the calling process
        (``renders_in_process``); the fingerprint includes the generator."""
        import copy

        from vgz.modeling import module_sha256

        expected = self.info.get("synthesis_sha256")
        digest = module_sha256(synthesis)
        if expected and digest != expected:
            raise DatasetError(f"{self._root / LATENTS_MARKER}: these latents were made for the generator "
                               f"{expected[:12]}, not for {digest[:12]} (the one asked to render them): render them "
                               "with the StyleGAN2 they were inverted for")
        view = copy.copy(self)
        view._synthesis, view._render_batch, view._fingerprint = synthesis, batch_size, None
        view._synthesis_sha256 = digest
        view.resolution, view.num_channels = synthesis.config.img_resolution, synthesis.config.img_channels
        view.renders_in_process = True
        return view

    def _clip(self, video_idx: int, clip_seed: int) -> dict[str, Any]:
        _, indices, times, window = self._clip_frames(video_idx, clip_seed)  # the video datasets' frames
        return {
            "ws": self.read_latents(video_idx, indices),
            "times": torch.from_numpy(times),
            "video_len": window,
            "label": torch.from_numpy(self.get_label(video_idx)),
            "video_index": video_idx,
        }

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        """One clip: ``{"ws": float32 [k, num_ws, w_dim], "times": int64 [k], "video_len": int,
        "label": float32 [label_dim], "video_index": int}`` (see :meth:`VideoDataset.__getitem__`)."""
        return super().__getitem__(index)

    def _content_key(self) -> str:
        rendered = getattr(self, "_synthesis_sha256", None)
        return f"encoder={self.encoder_sha256}" + (f";rendered={rendered}" if rendered else "")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.config.path!r}, {self.num_videos} videos, ws [T, {self.num_ws}, "
                f"{self.w_dim}], encoder {self.encoder_sha256[:12]}, {len(self.skipped)} skipped)")
