"""``vgz generate``: videos of any length and frame rate, streamed to files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vgz.cli._common import fail, resolve_device


def parse_seeds(text: str) -> list[int]:
    """``"0-7"``, ``"1,5,9"`` or ``"0-3,10"`` -> list of ints (ranges inclusive)."""
    import re

    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or (match[2] is not None and int(match[2]) < int(match[1])):
            raise typer.BadParameter(f"{text!r}: expected seeds like '0-7', '1,5,9' or '0-3,10'", param_hint="--seeds")
        seeds.extend(range(int(match[1]), int(match[2] or match[1]) + 1))
    return seeds


def generate_cmd(
    model: Optional[str] = typer.Argument(None, help="A saved pipeline folder, a run folder or a Hub repo id. "
                                          "Default: vgz's built-in model (StyleGAN-V trained by vgz on "
                                          "synthetic:shapes), written to video.mp4 and grid.mp4 here."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output .mp4/.mkv/.mov/.gif (default video.mp4). "
                                       "With '{seed}' in the name, one file per seed."),
    num_frames: int = typer.Option(64, "--num-frames", "-n", min=1, help="Frames to write."),
    fps: Optional[float] = typer.Option(None, help="Frames per second of the output (default: the model's)."),
    seeds: str = typer.Option("0", "--seeds", "-s", help="Seeds, e.g. '0-7' or '1,5,9': one video each."),
    truncation_psi: float = typer.Option(1.0, "--truncation-psi", help="Truncation towards the average w."),
    slowmo: float = typer.Option(1.0, min=1e-3, help="Slow-motion factor: sample times this many frames per "
                                                     "second of motion, play them at --fps."),
    grid: bool = typer.Option(False, "--grid", help="Content/motion grid: row r has seed r's content, column k "
                                                   "seed k's motion."),
    class_id: Optional[int] = typer.Option(None, "--class", help="Class id, for class-conditional models."),
    noise_mode: str = typer.Option("const", help="Per-pixel noise: const, random or none."),
    chunk_size: int = typer.Option(16, min=1, help="Frames synthesised at once (memory vs speed)."),
    lossless: bool = typer.Option(False, help="Lossless H.264 (exact frames; larger files)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    revision: Optional[str] = typer.Option(None, help="Hub revision (branch, tag or commit)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Generate videos of any length and frame rate; frames stream to the file chunk by chunk.

    With no MODEL and no --out, the built-in model writes video.mp4 (the first seed) and grid.mp4
    (a content/motion grid of three seeds) in the current folder.
    """
    from vgz.hub import ModelNotFoundError, builtin_model, model_folder
    from vgz.pipelines import VideoPipeline

    seed_list = parse_seeds(seeds)
    device = resolve_device(device)
    try:
        if model is None:
            ref = builtin_model()
        elif Path(model).expanduser().is_dir():
            ref = model_folder(model)  # a run folder: its EMA pipeline
        else:
            ref = model
        pipe = VideoPipeline.from_pretrained(ref, revision=revision, device=device)
    except (ModelNotFoundError, FileNotFoundError, ValueError, TypeError) as exc:
        fail(str(exc))
    jobs = [(out or Path("video.mp4"), seed_list, grid)]
    if model is None and out is None and not grid:  # the first-five-minutes default: a video and a grid
        jobs = [(Path("video.mp4"), seed_list[:1], False), (Path("grid.mp4"), [s + seed_list[0] for s in range(3)], True)]
    options = dict(num_frames=num_frames, fps=pipe.config.fps if fps is None else fps, slowmo=slowmo,
                   truncation_psi=truncation_psi, noise_mode=noise_mode, class_id=class_id, chunk_size=chunk_size,
                   lossless=lossless, quiet=quiet)
    for path, job_seeds, job_grid in jobs:
        _generate_file(pipe, path, job_seeds, job_grid, **options)
    if model is None:
        typer.echo(f"made by vgz's built-in model ({ref}); its card: {Path(ref) / 'README.md'}")


def _generate_file(pipe, out: Path, seed_list: list[int], grid: bool, *, num_frames: int, fps: float, slowmo: float,
                   truncation_psi: float, noise_mode: str, class_id: int | None, chunk_size: int, lossless: bool,
                   quiet: bool) -> None:
    import contextlib

    from tqdm import tqdm

    from vgz.data.video import VideoWriter, tile_videos

    per_seed = "{seed}" in str(out)
    if grid and per_seed:
        fail("--grid writes one video; drop '{seed}' from --out")
    if grid:
        t_max = pipe.frame_times(1, num_frames, fps * slowmo).max().item()
        z, motion_z = pipe.grid_latents(seed_list, seed_list, t_max)
        rows, num_videos, generators, latents = len(seed_list), len(seed_list) ** 2, None, dict(z=z, motion_z=motion_z)
    else:
        rows = max(r for r in range(1, int(len(seed_list) ** 0.5) + 1) if len(seed_list) % r == 0)
        num_videos, generators, latents = len(seed_list), seed_list, {}
    c = None if class_id is None else [class_id] * num_videos
    paths = [Path(str(out).replace("{seed}", str(s))) for s in seed_list] if per_seed else [out]
    try:
        with contextlib.ExitStack() as stack:  # an error removes every unfinished file
            writers = [stack.enter_context(VideoWriter(p, fps, lossless=lossless)) for p in paths]
            chunks = pipe.stream(num_videos, num_frames, fps=fps * slowmo, generator=generators,
                                 truncation_psi=truncation_psi, noise_mode=noise_mode, c=c, chunk_size=chunk_size,
                                 **latents)
            with tqdm(total=num_frames, unit="frame", desc=f"generating {out}", disable=quiet) as bar:
                for chunk in chunks:
                    if per_seed:
                        for writer, video in zip(writers, chunk.frames):
                            writer.write(video)
                    else:
                        writers[0].write(tile_videos(chunk.frames, rows))
                    bar.update(chunk.frames.shape[1])
    except ValueError as exc:
        fail(str(exc))
    h, w = writers[0].frame_size
    what = "grid" if grid else f"video{'s' if len(paths) > 1 else ''}"
    typer.echo(f"wrote {len(paths)} {what} ({num_frames} frames, {w}x{h}, {fps:g} fps): "
               + ", ".join(str(p.resolve()) for p in paths))
