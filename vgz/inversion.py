"""Invert videos into StyleGAN latents with an inversion pipeline (pSp): one latent file per video.

    pipe = VideoPipeline.from_pretrained("psp-faces/")
    report = invert_videos(pipe, "my_videos/", "latents/", preview="recon.mp4")
    dataset = open_dataset("latents/")            # a LatentFolderDataset: clips of ws for training

What :func:`invert_videos` does (the folder format is in :mod:`vgz.data.latents`):

* The videos come from any dataset spec :func:`~vgz.data.datasets.open_dataset` takes (a folder of
  videos, frame folders, a ``.zip``, ``synthetic:shapes?...``). Frames are cropped to their centre
  square and resized to the encoder's input size as the training datasets do (bicubic,
  antialiased; not the pipeline's own ``resize_mode``, which :meth:`PSPPipeline.encode` uses for
  frames of another size), then encoded ``batch_size`` frames at a time.
* Each video's ``ws [T, num_ws, w_dim]`` is written to its own file, under a temporary name renamed
  when complete, before the next video is read: memory holds one video's latents, and an interrupted
  run leaves only complete files (run it again to finish).
* A video whose file exists, made by the same encoder (``encoder_sha256``: the encoder's registry
  name, config and weights) from the same source content (``source_sha256``), is skipped; one whose
  source changed is encoded again. A folder is one dataset's latents by one encoder: latents of
  *another* encoder or of another dataset are refused unless ``overwrite=True`` (``--overwrite``),
  which encodes what is not up to date and, at the end, removes every file this run did not write
  or keep (never all of them: a run that produced no latents removes nothing).
* Videos that cannot be read (no video stream, damaged files, frames missing) are skipped and listed
  in the report with the reason, as the datasets skip them; they do not stop the run.
* ``refine=Refinement(steps=...)`` (``--refine-steps``; a vgz addition, off by default) then sharpens
  each video's codes by optimisation against its frames with
  :meth:`~vgz.pipelines.psp.PSPPipeline.refine`, for encoders whose codes render blurry (a small
  encoder trained on few frames). The refinement is part of what the latents are: it is recorded in
  ``latents.json`` and in every file (``refine``), and latents refined otherwise (or not at all) are
  treated like another encoder's: refused without ``overwrite``, re-encoded with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgz._version import __version__
from vgz.modeling import module_sha256
from vgz.data.latents import (LATENTS_FORMAT, LATENTS_FORMAT_VERSION, LATENTS_MARKER, _latent_files,
                              is_latent_folder, latent_file_name, read_latent_header, read_latents_marker,
                              write_latent_file)

__all__ = ["InversionError", "InversionReport", "Refinement", "invert_videos", "check_inversion_pipeline",
           "check_output_folder", "check_preview_path", "module_sha256", "PREVIEW_SUFFIXES"]

#: What ``preview`` may end with (the containers :class:`~vgz.data.video.VideoWriter` writes).
PREVIEW_SUFFIXES = (".mp4", ".mkv", ".mov", ".gif")


class InversionError(ValueError):
    """The inversion cannot start: not an inversion pipeline, an output folder that is not a latent
    folder, latents of another encoder there (without ``overwrite``), bad arguments."""


@dataclass(frozen=True)
class Refinement:
    """How :func:`invert_videos` refines each video's codes after encoding them (see
    :meth:`~vgz.pipelines.psp.PSPPipeline.refine`): ``steps`` Adam steps at ``lr`` on windows of
    ``batch_size`` consecutive frames (None: the whole video at once, memory permitting), with
    ``smooth`` times the mean squared step between consecutive codes added to the loss."""

    steps: int
    lr: float = 0.02
    smooth: float = 0.0
    batch_size: int | None = 64

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise InversionError(f"refinement steps: expected an integer >= 1, got {self.steps!r}")
        if not self.lr > 0 or not self.smooth >= 0:
            raise InversionError(f"refinement: expected lr > 0 and smooth >= 0, got lr={self.lr}, "
                                 f"smooth={self.smooth}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise InversionError(f"refinement batch_size: expected an integer >= 1 or None, "
                                 f"got {self.batch_size!r}")

    def to_dict(self) -> dict[str, Any]:
        """What the latents record (``refine`` in ``latents.json`` and in each file)."""
        return {"steps": self.steps, "lr": float(self.lr), "smooth": float(self.smooth),
                "batch_size": self.batch_size}


@dataclass
class InversionReport:
    """What :func:`invert_videos` did.

    Attributes:
        out: the latent folder.
        written: names of the latent files written by this run.
        up_to_date: names of the latent files kept (same encoder, same source content).
        skipped: ``(video, reason)`` of every video that could not be read.
        removed: files of another encoder removed at the end (``overwrite=True``).
        preview: the preview video written, or None; ``previewed``: how many videos it shows.
        notes: other things to tell (a previewed video that could not be read again).
        frames_encoded: frames encoded by this run.
        encoder_sha256: the encoder's hash (see :func:`module_sha256`).
    """

    out: Path
    encoder_sha256: str
    written: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    preview: Path | None = None
    previewed: int = 0
    frames_encoded: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def num_latents(self) -> int:
        """Videos of the dataset whose latents are in the folder after the run."""
        return len(self.written) + len(self.up_to_date)


class _Unreadable(Exception):
    """A video's frames could not be read: the video is skipped."""


def check_inversion_pipeline(pipe: Any, where: str | None = None) -> None:
    """Raise :class:`InversionError` unless ``pipe`` inverts images into ``ws`` (``encode``,
    ``decode`` and an ``encoder`` with an ``input_size``, as :class:`~vgz.pipelines.psp.PSPPipeline`)."""
    if all(callable(getattr(pipe, m, None)) for m in ("encode", "decode")) \
            and getattr(getattr(getattr(pipe, "encoder", None), "config", None), "input_size", None):
        return
    name = pipe.registry_key()[1] if hasattr(pipe, "registry_key") else "?"
    raise InversionError(f"{where or 'the pipeline'} is a {name!r} pipeline ({type(pipe).__name__}), which has no "
                         "encoder: inversion needs an inversion pipeline such as 'psp' (vgz convert psp "
                         "CHECKPOINT.pt FOLDER makes one from a pSp checkpoint)")


def check_preview_path(preview: str | os.PathLike) -> None:
    """Raise :class:`InversionError` unless ``preview`` names a video file vgz writes (its suffix)."""
    suffix = Path(preview).suffix
    if suffix.lower() not in PREVIEW_SUFFIXES:
        raise InversionError(f"--preview {preview}: expected a video file name ending in {', '.join(PREVIEW_SUFFIXES)}, "
                             f"found {suffix or 'no suffix'!r}")


def check_output_folder(out: str | os.PathLike) -> None:
    """Raise :class:`InversionError` unless ``out`` can become (or is) a latent folder: a new or empty
    folder, or one with ``latents.json``. Not a file, not a folder of other things (the latents would
    be mixed with them)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InversionError(f"--out {out} is a file; expected a folder for the latent files")
    if out.is_dir() and not (out / LATENTS_MARKER).is_file():
        visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        if visible:
            shown = ", ".join(visible[:5]) + (f" and {len(visible) - 5} more" if len(visible) > 5 else "")
            raise InversionError(f"--out {out} is not empty and has no {LATENTS_MARKER}, so it is not a latent folder "
                                 f"written by vgz invert (it holds {shown}); choose a new or empty folder")


def _prepare_folder(out: Path, marker: dict[str, Any], overwrite: bool) -> None:
    """Refuse a folder of other things or of another encoder's latents (unless ``overwrite``); then
    create it and write ``latents.json`` before any latent file, so that an interrupted run leaves a
    folder that the next run recognises and completes."""
    from vgz.data.base import DatasetError

    check_output_folder(out)
    new, refine = marker["encoder_sha256"], marker.get("refine")
    old = None
    if (out / LATENTS_MARKER).is_file():
        try:
            old = read_latents_marker(out)
        except DatasetError as exc:
            if not overwrite:
                raise InversionError(f"{exc}; pass --overwrite to replace it and re-encode every video") from None
    if old is not None and old["encoder_sha256"] != new and not overwrite:
        raise InversionError(
            f"--out {out} holds latents of another encoder ({old['encoder_sha256'][:12]}, from "
            f"{old.get('pipeline')!r}); this pipeline's encoder is {new[:12]}. Pass --overwrite to re-encode every "
            "video with this one (the other encoder's files are then removed), or choose another --out")
    if old is not None and old["encoder_sha256"] == new and old.get("refine") != refine and not overwrite:
        raise InversionError(
            f"--out {out} holds latents {_refined(old.get('refine'))}, and this run's are {_refined(refine)}: the "
            "refinement is part of what latents are. Pass --overwrite to re-encode every video this way, or choose "
            "another --out")
    if old is not None and not overwrite and old.get("dataset") not in (None, marker["dataset"]):
        raise InversionError(
            f"--out {out} holds the latents of {old['dataset']}, and this run inverts {marker['dataset']}: one latent "
            "folder per dataset; choose another --out (or pass --overwrite to make it this dataset's)")
    if out.is_dir() and not overwrite:
        # Files of another encoder under a marker of this one: an earlier --overwrite run was interrupted.
        foreign = []
        for path in _latent_files(out):
            with contextlib.suppress(OSError, ValueError):  # unreadable files are re-encoded when their video comes
                meta = read_latent_header(path)[0]
                if meta.get("encoder_sha256") != new or meta.get("refine") != refine:
                    foreign.append(path.name)
        if foreign:
            raise InversionError(
                f"--out {out}: {len(foreign)} file(s) hold latents of another encoder than this pipeline's "
                f"({new[:12]}) or refined otherwise, e.g. {foreign[0]} (an interrupted --overwrite run?); pass "
                "--overwrite to re-encode them, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if old is None or overwrite or old["encoder_sha256"] != new or old.get("refine") != refine:
        from vgz.utils import atomic_write_text

        atomic_write_text(out / LATENTS_MARKER, json.dumps(marker, indent=2) + "\n")


def _refined(refine: dict[str, Any] | None) -> str:
    if not refine:
        return "not refined"
    return "refined with " + ", ".join(f"{k} {v}" for k, v in refine.items())


def _open_videos(data: str | os.PathLike, size: int):
    """The dataset of videos to invert: every video of at least one frame, frames at ``size``."""
    from vgz.data.datasets import DatasetWarning, open_dataset
    from vgz.data.sampling import ClipSamplingConfig

    if os.path.isdir(data) and is_latent_folder(data):
        raise InversionError(f"--data {data} is a latent folder; expected videos (a folder of videos, frame folders, "
                             "a .zip or synthetic:shapes)")
    with warnings.catch_warnings():
        # Files skipped while indexing are reported with the decoding failures, in the report.
        warnings.simplefilter("ignore", DatasetWarning)
        return open_dataset(data, resolution=size, sampling=ClipSamplingConfig.from_preset("image"),
                            use_labels=False)


def _dataset_id(data: str | os.PathLike) -> str:
    """The dataset a latent folder is of: a local path made absolute (the same folder however it is
    named), any other spec as given."""
    path = Path(os.fspath(data)).expanduser()
    return str(path.resolve()) if path.exists() else os.fspath(data)


def _source_info(dataset: Any, i: int) -> dict[str, Any]:
    """``fps``, ``source_width``, ``source_height`` of video ``i``, where they can be told cheaply
    (absent ones are left out of the metadata)."""
    from vgz.data.video_folder import VideoFolderDataset

    if isinstance(dataset, VideoFolderDataset):
        import av

        try:
            with av.open(dataset.video_paths[i], metadata_errors="ignore") as container:
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                return {"fps": float(rate) if rate else None, "source_width": stream.codec_context.width or None,
                        "source_height": stream.codec_context.height or None}
        except Exception:  # noqa: BLE001 - the frames were read; only the description is missing
            return {}
    info: dict[str, Any] = {"fps": getattr(dataset.config, "fps", None)}
    try:
        height, width = dataset._decode(i, np.zeros(1, dtype=np.int64))[0].shape[:2]
    except NotImplementedError:  # datasets that render their frames (synthetic) do so at the asked size
        height = width = dataset.resolution
    except Exception:  # noqa: BLE001
        return info
    return {**info, "source_width": int(width), "source_height": int(height)}


def _existing(path: Path, encoder: str, refine: dict[str, Any] | None, source: str) -> str:
    """``"current"`` (keep it), ``"missing"``, ``"changed"`` (its source changed), ``"other"``
    (another encoder or refinement) or ``"unreadable"``."""
    if not path.exists():
        return "missing"
    try:
        meta, _ = read_latent_header(path)
    except (OSError, ValueError):
        return "unreadable"
    if meta.get("encoder_sha256") != encoder or meta.get("refine") != refine:
        return "other"
    return "current" if meta.get("source_sha256") == source else "changed"


def _read(dataset: Any, i: int, start: int, stop: int) -> torch.Tensor:
    try:
        return dataset.read_frames(i, np.arange(start, stop))
    except Exception as exc:  # noqa: BLE001 - a damaged video is skipped, whatever its decoder raises
        raise _Unreadable(f"cannot decode frames {start}-{stop - 1} of {dataset.video_lengths[i]}: "
                          f"{type(exc).__name__}: {exc}") from exc


def _encode_video(pipe: Any, dataset: Any, i: int, batch_size: int, bar: Any,
                  refine: Refinement | None) -> torch.Tensor:
    """``ws [T, num_ws, w_dim]`` float32 on the CPU, ``batch_size`` frames at a time, then refined
    against the video's frames (kept as read, uint8, until then) when ``refine`` is given."""
    length = dataset.video_lengths[i]
    chunks, frames = [], []
    for start in range(0, length, batch_size):
        stop = min(start + batch_size, length)
        try:
            batch = _read(dataset, i, start, stop)
        except _Unreadable:
            bar.update((2 if refine else 1) * length - start)  # the bar counts the dataset's frames
            raise
        chunks.append(pipe.encode(batch).float().cpu())
        if refine is not None:
            frames.append(batch)
        bar.update(stop - start)
    ws = torch.cat(chunks)
    if refine is None:
        return ws
    return pipe.refine(torch.cat(frames), ws, steps=refine.steps, lr=refine.lr, smooth=refine.smooth,
                       batch_size=refine.batch_size, callback=bar.update).cpu()


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images.float() * 255).round_().clamp_(0, 255).to(torch.uint8)


def _write_preview(writer: Any, pipe: Any, dataset: Any, i: int, ws: torch.Tensor, batch_size: int,
                   height: int) -> None:
    """Append video ``i`` to the preview: each frame as the encoder saw it beside ``pipe.decode(ws)``,
    both resized to ``height`` (frames ``[height, 2 * height]``)."""
    from vgz.data.base import resize_center_crop

    for start in range(0, len(ws), batch_size):
        stop = min(start + batch_size, len(ws))
        frames = _read(dataset, i, start, stop)
        recon = _to_uint8(pipe.decode(ws[start:stop].to(pipe.device)).cpu())
        writer.write(torch.cat([resize_center_crop(frames, height), resize_center_crop(recon, height)], dim=-1))


def invert_videos(
    pipe: Any,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    batch_size: int | None = None,
    overwrite: bool = False,
    preview: str | os.PathLike | None = None,
    preview_videos: int = 4,
    progress: bool = True,
    pipeline_ref: str | None = None,
    refine: Refinement | None = None,
) -> InversionReport:
    """Encode every video of ``data`` with ``pipe`` into one latent file per video in ``out``.

    Args:
        pipe: an inversion pipeline (``encode``: frames ``[N, 3, H, W]`` in [0, 1] -> ``ws [N, num_ws,
            w_dim]``; ``decode``: ``ws`` -> ``[N, 3, R, R]``), e.g. :class:`~vgz.pipelines.psp.PSPPipeline`.
        data: a dataset spec (see :func:`~vgz.data.datasets.open_dataset`).
        out: the latent folder: new, empty, or written by an earlier run (see the module docstring
            for what is skipped and what is refused).
        batch_size: frames encoded at once (default 16 on a GPU, 8 on a CPU).
        overwrite: replace latents of another encoder (they are otherwise refused).
        preview: write a video there (``.mp4``, ``.mkv``, ``.mov`` or ``.gif``) of the first
            ``preview_videos`` videos with latents, one after the other, each frame as the encoder
            saw it beside its reconstruction ``pipe.decode(ws)``, both resized to the larger height.
        progress: a tqdm bar over the frames.
        pipeline_ref: where the pipeline came from, recorded in the metadata (e.g. its folder).
        refine: sharpen each video's codes by optimisation after encoding them (see
            :class:`Refinement`; off by default). Costs ``steps`` generator forward and backward
            passes per frame.

    Returns:
        An :class:`InversionReport`. Each file holds ``ws`` float32 ``[T, num_ws, w_dim]``.

    Raises:
        InversionError: a refusal (see :class:`InversionError`), before anything is written.
        DatasetError: ``data`` holds no usable video.
        OSError: writing failed (the file being written is not left behind).
    """
    from tqdm import tqdm

    from vgz.data.video import VideoWriter
    from vgz.data.video_folder import close_readers
    from vgz.pipelines.base import check_count

    check_inversion_pipeline(pipe)
    if refine is not None and not callable(getattr(pipe, "refine", None)):
        raise InversionError(f"a {type(pipe).__name__} cannot refine its codes (no refine method); invert without "
                             "refinement")
    on_gpu = pipe.device.type == "cuda"
    batch_size = check_count("batch_size", batch_size) if batch_size is not None else (16 if on_gpu else 8)
    preview_videos = check_count("preview_videos", preview_videos)
    if preview is not None:
        preview = Path(preview)
        check_preview_path(preview)
    out = Path(out)
    check_output_folder(out)  # before the encoder is hashed and the dataset indexed
    size = int(pipe.encoder.config.input_size)
    encoder_hash = module_sha256(pipe.encoder)
    dataset = _open_videos(data, size)
    names = [latent_file_name(n) for n in dataset.video_names]
    seen: dict[str, str] = {}
    for item, name in zip(dataset.video_names, names):
        other = seen.setdefault(name.lower(), item)  # lower: case-insensitive file systems
        if other != item:
            raise InversionError(f"videos {other!r} and {item!r} would both be written to {name}")
    num_ws, w_dim = int(pipe.num_ws), int(pipe.synthesis.w_dim)
    generator_resolution = getattr(getattr(pipe.synthesis, "config", None), "img_resolution", None)
    common = {
        "num_ws": num_ws, "w_dim": w_dim, "encoder_sha256": encoder_hash,
        "synthesis_sha256": module_sha256(pipe.synthesis), "input_resolution": size,
        "pipeline": pipeline_ref, "vgz_version": __version__,
    }
    if refine is not None:  # absent otherwise, as in latents written before refinement existed
        common["refine"] = refine.to_dict()
    marker = {"format": LATENTS_FORMAT, "format_version": LATENTS_FORMAT_VERSION, **common,
              "generator_resolution": generator_resolution, "pipeline_name": pipe.registry_key()[1],
              "dataset": _dataset_id(data)}
    _prepare_folder(out, marker, overwrite)

    report = InversionReport(out=out, encoder_sha256=encoder_hash, skipped=list(dataset.skipped))
    preview_height = max(size, int(generator_resolution or size))
    writer = None
    try:
        with contextlib.ExitStack() as stack:
            passes = 2 if refine is not None else 1  # encoding, then refining, each frame
            bar = stack.enter_context(tqdm(total=passes * sum(dataset.video_lengths), unit="frame",
                                           desc=f"inverting {'and refining ' if refine else ''}into {out}",
                                           disable=not progress))
            for i in range(dataset.num_videos):
                path, source = out / names[i], dataset.video_paths[i]
                try:
                    source_sha = dataset.video_sha256(i)
                except OSError as exc:  # the file went away or became unreadable since indexing
                    report.skipped.append((source, f"cannot read: {exc.strerror or exc}"))
                    bar.update(passes * dataset.video_lengths[i])
                    continue
                ws, info = None, None
                if _existing(path, encoder_hash, common.get("refine"), source_sha) == "current":
                    report.up_to_date.append(path.name)
                    bar.update(passes * dataset.video_lengths[i])
                else:
                    try:
                        ws = _encode_video(pipe, dataset, i, batch_size, bar, refine)
                    except _Unreadable as exc:
                        report.skipped.append((source, str(exc)))
                        continue
                    info = _source_info(dataset, i)
                    meta = {"name": dataset.video_names[i],
                            "source": os.path.abspath(source) if os.path.exists(source) else source,
                            "dataset": os.fspath(data), "num_frames": len(ws), **info, **common,
                            "source_sha256": source_sha}
                    write_latent_file(path, ws, meta)
                    report.written.append(path.name)
                    report.frames_encoded += len(ws)
                if preview is not None and report.previewed < preview_videos:
                    if ws is None:
                        from safetensors.torch import load_file

                        ws = load_file(str(path))["ws"]
                    if writer is None:
                        fps = (info if info is not None else _source_info(dataset, i)).get("fps") or 25.0
                        writer = stack.enter_context(VideoWriter(preview, fps))  # aborted (no file) on errors
                    try:
                        _write_preview(writer, pipe, dataset, i, ws, batch_size, preview_height)
                    except _Unreadable as exc:  # read a moment ago (or kept from a past run): it changed since
                        report.notes.append(f"the preview of {source} stops early: {exc}")
                    report.previewed += 1
                del ws  # one video's latents at a time
            kept = set(report.written) | set(report.up_to_date)
            if overwrite and kept:  # the folder becomes this run's; never emptied by a run that wrote nothing
                for path in _latent_files(out):
                    if path.name not in kept:
                        with contextlib.suppress(OSError):
                            path.unlink()
                            report.removed.append(path.name)
    finally:
        close_readers()
    if writer is not None:
        report.preview = preview
    return report
