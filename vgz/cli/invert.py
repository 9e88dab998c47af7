"""``vgz invert``: encode every video of a dataset into StyleGAN latents, one file per video.

The work is :func:`vgz.inversion.invert_videos`; this module checks the arguments (the output
locations before anything is loaded), loads the pipeline and reports. Exit status 0 when at least
one video has latents in the folder afterwards (unreadable videos are skipped and listed on stderr),
1 otherwise or on an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from vgz.cli._common import fail, resolve_device, unwritable


def _check_index(folder: Path, where: str) -> None:
    """Fail at once when ``folder``'s ``model_index.json`` lists no encoder (read as JSON, without
    torch); anything odd about the index is left to the loader, which names it."""
    import json

    try:
        index = json.loads((folder / "model_index.json").read_text())
        name, components = index["_vgz_pipeline"], index["components"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if isinstance(components, dict) and "encoder" not in components:
        fail(f"{where} is a {name!r} pipeline (components {', '.join(map(str, components))}), which has no encoder: "
             "vgz invert needs an inversion pipeline such as 'psp' (vgz convert psp CHECKPOINT.pt FOLDER makes one "
             "from a pSp checkpoint)")


def invert_cmd(
    pipeline: str = typer.Argument(..., help="An inversion pipeline (psp): a saved pipeline folder, a run folder "
                                             "or a Hub repo id."),
    data: str = typer.Option(..., "--data", "-d", help="The videos: a folder of videos, of frame folders, a .zip of "
                                                      "frame folders, or synthetic:shapes?..."),
    out: Path = typer.Option(..., "--out", "-o", help="The latent folder: one .safetensors file per video and "
                                                     "latents.json. New, empty, or from an earlier run (resumed)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1, help="Frames encoded at once "
                                             "(default 16 on a GPU, 8 on a CPU)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Re-encode latents of another encoder found in --out "
                                                             "(they are refused otherwise) and remove the rest."),
    preview: Optional[Path] = typer.Option(None, "--preview", help="Also write this video (.mp4, .mkv, .mov, .gif): "
                                           "the first videos' frames beside their reconstructions."),
    preview_videos: int = typer.Option(4, "--preview-videos", min=1, help="Videos shown in --preview."),
    refine_steps: int = typer.Option(0, "--refine-steps", min=0, help="Then sharpen each video's codes by this many "
                                     "Adam steps against its frames (a vgz addition for encoders whose codes render "
                                     "blurry; 0: off). Costs that many generator passes per frame."),
    refine_lr: float = typer.Option(0.02, "--refine-lr", min=0.0, help="Learning rate of the refinement."),
    refine_smooth: float = typer.Option(0.0, "--refine-smooth", min=0.0, help="Weight of the mean squared step "
                                        "between consecutive frames' codes in the refinement (keeps them from "
                                        "jittering apart)."),
    refine_batch: int = typer.Option(64, "--refine-batch", min=1, help="Consecutive frames refined together (one "
                                     "window; memory grows with it)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    revision: Optional[str] = typer.Option(None, help="Hub revision of the pipeline (branch, tag or commit)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Invert videos into StyleGAN latents (ws [T, num_ws, w_dim] per video) with an inversion pipeline such as pSp.

    Re-running skips videos whose latents are there already, made by the same encoder from the same
    source; unreadable videos are skipped and listed. The folder opens as a dataset
    (open_dataset("LATENTS/")) for recipes that train on latents.
    """
    from vgz.hub import ModelNotFoundError, model_folder, resolve_folder

    # Cheap checks first, before torch is imported: nothing is loaded for a run that cannot be done.
    problems = []
    reason = unwritable(out, folder=True)
    if reason:
        problems.append(f"cannot write --out {out}: {reason}")
    reason = unwritable(preview) if preview is not None else None
    if reason:
        problems.append(f"cannot write --preview {preview}: {reason}")
    if not data.startswith("synthetic:") and not Path(data).expanduser().exists():
        problems.append(f"--data {data}: no such file or directory (expected a folder of videos, of frame folders, "
                        "a .zip of frame folders, or synthetic:shapes?...)")
    if refine_steps and not refine_lr > 0:
        problems.append(f"--refine-lr: expected a learning rate > 0, got {refine_lr}")
    if problems:
        fail("; ".join(problems) + " (nothing was inverted)")
    try:
        # A run folder gives its pipeline/; a Hub repo id is downloaded (or found in the cache).
        local = Path(pipeline).expanduser().is_dir()
        folder = model_folder(pipeline) if local else resolve_folder(pipeline, revision=revision)
    except ModelNotFoundError as exc:
        fail(str(exc))
    _check_index(folder, pipeline)

    import torch

    from vgz import registry
    from vgz.data.datasets import DatasetError
    from vgz.inversion import (InversionError, Refinement, check_inversion_pipeline, check_output_folder,
                               check_preview_path, invert_videos)
    from vgz.pipelines import VideoPipeline
    from vgz.utils import describe_os_error

    try:
        if preview is not None:
            check_preview_path(preview)
        check_output_folder(out)
    except InversionError as exc:
        fail(f"{exc} (nothing was inverted)")
    device = resolve_device(device)
    try:
        pipe = VideoPipeline.from_pretrained(folder, device=device)
        check_inversion_pipeline(pipe, where=pipeline)
    except (ModelNotFoundError, FileNotFoundError, InversionError, ValueError, TypeError,
            registry.RegistryError) as exc:
        fail(str(exc))
    ref = os.path.abspath(folder) if local else pipeline  # recorded in the metadata
    refine = Refinement(refine_steps, refine_lr, refine_smooth, refine_batch) if refine_steps else None
    try:
        report = invert_videos(pipe, data, out, batch_size=batch_size, overwrite=overwrite, preview=preview,
                               preview_videos=preview_videos, progress=not quiet, pipeline_ref=ref, refine=refine)
    except torch.cuda.OutOfMemoryError:
        used = batch_size or (16 if device.startswith("cuda") else 8)
        if refine:
            fail(f"out of memory on {device} encoding {used} frames or refining {refine_batch} at a time; lower "
                 "--batch-size or --refine-batch")
        fail(f"out of memory on {device} encoding {used} frames at a time; lower --batch-size")
    except (InversionError, DatasetError, ValueError) as exc:  # NonFiniteOutputError (the preview) among them
        fail(str(exc))
    except OSError as exc:
        fail(describe_os_error(exc) + f" (latent files finished before it are complete and kept in {out}; run the "
                                      "same command again to go on)")

    total = report.num_latents + len(report.skipped)
    for source, why in report.skipped:
        typer.echo(f"warning: skipped {source}: {why}", err=True)
    for note in report.notes:
        typer.echo(f"warning: {note}", err=True)
    if report.num_latents == 0:
        fail(f"no video could be inverted: all {total} were skipped (listed above)")
    parts = [f"{len(report.written)} written ({report.frames_encoded} frames)",
             f"{len(report.up_to_date)} already there"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped (unreadable, listed above)")
    if report.removed:
        parts.append(f"{len(report.removed)} files of another encoder removed")
    typer.echo(f"latents of {report.num_latents} of {total} videos in {out.resolve()}: {', '.join(parts)}; "
               f"ws [T, {pipe.num_ws}, {pipe.synthesis.w_dim}] each, encoder {report.encoder_sha256[:12]}"
               + (f", refined ({refine_steps} steps)" if refine else ""))
    if report.preview is not None:
        typer.echo(f"wrote {report.preview.resolve()}: {report.previewed} video(s), frames beside reconstructions")
