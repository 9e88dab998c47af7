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
    builtin: Optional[str] = typer.Option(None, "--model", "-m", help="A built-in model instead: styleganv (the "
                                          "default), styleinv or stylevideogan, all trained by vgz on "
                                          "synthetic:shapes (vgz list model)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file: .mp4, .mkv, .mov or .gif (default "
                                       "video.mp4). With '{seed}' in the name, one file per seed."),
    num_frames: int = typer.Option(64, "--num-frames", "-n", min=1, help="Frames to write."),
    fps: Optional[float] = typer.Option(None, help="Frames per second of the output (default: the model's)."),
    seeds: str = typer.Option("0", "--seeds", "-s", help="Seeds, e.g. '0-7' or '1,5,9': one video each."),
    truncation_psi: float = typer.Option(1.0, "--truncation-psi", help="Truncation towards the average w."),
    slowmo: float = typer.Option(1.0, min=1e-3, help="Slow-motion factor: sample times this many frames per "
                                                     "second of motion, play them at --fps."),
    grid: bool = typer.Option(False, "--grid", help="Content/motion grid: row r has seed r's content, column k "
                                                   "seed k's motion."),
    class_id: Optional[int] = typer.Option(None, "--class", help="Class id, for class-conditional models."),
    image: Optional[Path] = typer.Option(None, "--image", help="Animate this photo (StyleInV and StyleVideoGAN "
                                         "models with an encoder): its inversion is every video's content "
                                         "(StyleVideoGAN: its subject), each seed a motion."),
    stylized: bool = typer.Option(False, "--stylized", help="Render with the model's style-transfer fine-tune "
                                  "(StyleInV pipelines with a stylized_synthesis)."),
    identity: Optional[int] = typer.Option(None, "--identity", help="StyleVideoGAN: move the subject of this seed "
                                           "(rendered, re-embedded with the model's pSp encoder) by the offset trick."),
    offset: str = typer.Option("pca", "--offset", help="StyleVideoGAN's offset trick for --identity/--image: pca (the "
                               "paper's) or naive (its ablation)."),
    noise_mode: str = typer.Option("const", help="Per-pixel noise: const, random or none."),
    chunk_size: int = typer.Option(16, min=1, help="Frames synthesised at once (memory vs speed)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1,
                                             help="Videos synthesised at once; memory grows with it, not with the "
                                                  "number of seeds. Default: 1 on a CPU (fastest there), 16 on a GPU."),
    lossless: bool = typer.Option(False, help="Lossless H.264 (exact frames; larger files)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    revision: Optional[str] = typer.Option(None, help="Hub revision (branch, tag or commit)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Generate videos of any length and frame rate; frames stream to the file chunk by chunk.

    With no MODEL and no --out, the built-in model writes video.mp4 (the first seed) and grid.mp4 (a content/motion
    grid of three seeds) in the current folder.
    """
    from vgz import registry
    from vgz.hub import ModelNotFoundError, builtin_model, model_folder
    from vgz.pipelines import VideoPipeline
    from vgz.pipelines.base import check_number

    if model is not None and builtin is not None:
        fail(f"give a MODEL ({model}) or --model {builtin}, not both")
    seed_list = parse_seeds(seeds)
    # Cheap checks first (click's ranges let NaN and inf through): nothing is loaded for a request
    # that cannot be met.
    try:
        if fps is not None:
            check_number("--fps", fps, positive=True)
        check_number("--slowmo", slowmo, positive=True)
        check_number("--truncation-psi", truncation_psi)
    except ValueError as exc:
        fail(str(exc))
    if offset not in ("pca", "naive"):
        fail(f"--offset must be pca or naive, got {offset!r}")
    if offset != "pca" and image is None and identity is None:
        fail("--offset chooses how --identity or --image moves a subject; give one of them")
    if image is not None and identity is not None:
        fail("--image and --identity both name the subject to move; give one")
    if image is not None and grid:
        fail("--image animates one photo; it cannot be combined with --grid (a content/motion grid)")
    if image is not None and not image.is_file():
        fail(f"--image {image}: no such file")
    if out is not None and "{seed}" in str(out) and not grid:
        from collections import Counter

        repeated = sorted(s for s, count in Counter(seed_list).items() if count > 1)
        if repeated:
            fail(f"--seeds lists {', '.join(map(str, repeated))} more than once, and with '{{seed}}' in --out "
                 f"each seed writes its own file ({out}); list each seed once")
    device = resolve_device(device)
    try:
        if model is None:
            ref = builtin_model(builtin)
        elif Path(model).expanduser().is_dir():
            ref = model_folder(model)  # a run folder: its EMA pipeline
        else:
            ref = model
        pipe = VideoPipeline.from_pretrained(ref, revision=revision, device=device)
    except (ModelNotFoundError, FileNotFoundError, ValueError, TypeError, registry.RegistryError) as exc:
        fail(str(exc))
    if not hasattr(pipe, "stream"):  # image generators, inversion pipelines
        name = pipe.registry_key()[1]
        hint = ("; it inverts videos: vgz invert MODEL --data VIDEOS --out LATENTS/" if name == "psp" else
                "; it makes images: call it from Python, pipe(num_images=N)")
        fail(f"{model or ref} is a '{name}' pipeline, not a video generator{hint}")
    if stylized and getattr(pipe, "stylized_synthesis", None) is None:
        fail(f"{model or ref} has no stylized_synthesis to render with (--stylized): fine-tune one with vgz train "
             "--recipe stylegan2 --preset transfer --transfer MODEL")
    model_options: dict = {"stylized": True} if stylized else {}
    moves_subjects = pipe.registry_key()[1] == "stylevideogan"
    if identity is not None and not moves_subjects:
        fail(f"{model or ref} is a '{pipe.registry_key()[1]}' pipeline; only StyleVideoGAN pipelines move other "
             "subjects (--identity)")
    if moves_subjects and (identity is not None or image is not None):
        model_options.update(offset=offset, **({"identity": identity} if identity is not None else {}))
    w = None
    if image is not None:
        if not hasattr(pipe, "invert"):
            fail(f"{model or ref} is a '{pipe.registry_key()[1]}' pipeline; only StyleInV and StyleVideoGAN pipelines "
                 "animate photos (--image)")
        try:
            w = pipe.invert(image)
        except ValueError as exc:
            fail(str(exc))
    if batch_size is None:
        batch_size = 16 if str(device).startswith("cuda") else 1  # CPU: grouped convolutions slow bigger batches down
    jobs = [(out or Path("video.mp4"), seed_list, grid)]
    if model is None and out is None and not grid:  # the first-five-minutes default: a video and a grid
        jobs = [(Path("video.mp4"), seed_list[:1], False), (Path("grid.mp4"), [s + seed_list[0] for s in range(3)], True)]
    options = dict(num_frames=num_frames, fps=pipe.config.fps if fps is None else fps, slowmo=slowmo,
                   truncation_psi=truncation_psi, noise_mode=noise_mode, class_id=class_id, chunk_size=chunk_size,
                   batch_size=batch_size, lossless=lossless, quiet=quiet, w=w, model_options=model_options)
    for path, job_seeds, job_grid in jobs:
        _generate_file(pipe, path, job_seeds, job_grid, **options)
    if model is None:
        typer.echo(f"made by vgz's built-in model ({ref}); its card: {Path(ref) / 'README.md'}")


def _generate_file(pipe, out: Path, seed_list: list[int], grid: bool, *, num_frames: int, fps: float, slowmo: float,
                   truncation_psi: float, noise_mode: str, class_id: int | None, chunk_size: int, batch_size: int,
                   lossless: bool, quiet: bool, w=None, model_options: dict | None = None) -> None:
    """Write one video (seeds tiled, or a content/motion grid) or, with '{seed}' in ``out``, one per
    seed. Memory is bounded by ``batch_size`` videos and ``chunk_size`` frames, except that every
    frame of a tiled video or grid holds all its cells (and a grid's latents are held for all of them)."""
    import contextlib

    from tqdm import tqdm

    from vgz.data.video import VideoWriter, tile_videos
    from vgz.pipelines.base import NonFiniteOutputError
    from vgz.utils import describe_os_error

    per_seed = "{seed}" in str(out)
    if grid and per_seed:
        fail("--grid writes one video; drop '{seed}' from --out")
    generate = dict(fps=fps * slowmo, truncation_psi=truncation_psi, noise_mode=noise_mode, chunk_size=chunk_size,
                    **(model_options or {}))
    labels = (lambda n: None) if class_id is None else (lambda n: [class_id] * n)
    # An animated photo: its latent is every video's content.
    content = (lambda n: {}) if w is None else (lambda n: {"w": w.expand(n, *w.shape[1:])})
    current = out  # the file being written, for error messages
    written: list[Path] = []
    frame_size = None
    try:
        if per_seed:
            pipe.last_frame_time(num_frames, fps * slowmo, num_videos=min(batch_size, len(seed_list)))
            total = num_frames * len(seed_list)
        elif grid:
            n = len(seed_list)
            t_max = pipe.last_frame_time(num_frames, fps * slowmo, num_videos=n * n)
            z, motion_z = pipe.grid_latents(seed_list, seed_list, t_max)
            total = num_frames
        else:
            pipe.last_frame_time(num_frames, fps * slowmo, num_videos=len(seed_list))
            total = num_frames
        with tqdm(total=total, unit="frame", desc=f"generating {out}", disable=quiet) as bar:
            if per_seed:
                # One batch of seeds at a time, each with its own writers: memory does not grow with the seeds.
                for b0 in range(0, len(seed_list), batch_size):
                    batch = seed_list[b0:b0 + batch_size]
                    paths = [Path(str(out).replace("{seed}", str(s))) for s in batch]
                    with contextlib.ExitStack() as stack:  # an error removes this batch's unfinished files
                        writers = []
                        for path in paths:
                            current = path
                            writers.append(stack.enter_context(VideoWriter(path, fps, lossless=lossless)))
                        for chunk in pipe.stream(len(batch), num_frames, generator=batch, c=labels(len(batch)),
                                                 **content(len(batch)), **generate):
                            for writer, video in zip(writers, chunk.frames):
                                current = writer.path
                                writer.write(video)
                            bar.update(chunk.frames.shape[0] * chunk.frames.shape[1])
                        frame_size = writers[0].frame_size
                        for writer in writers:  # one by one, so that an error names its file
                            current = writer.path
                            writer.close()
                    written += paths
            else:
                rows = len(seed_list) if grid else \
                    max(r for r in range(1, int(len(seed_list) ** 0.5) + 1) if len(seed_list) % r == 0)
                num_videos = len(seed_list) ** 2 if grid else len(seed_list)
                latents = dict(z=z, motion_z=motion_z) if grid else dict(generator=seed_list)
                with VideoWriter(out, fps, lossless=lossless) as writer:
                    for chunk in pipe.stream(num_videos, num_frames, batch_size=batch_size, c=labels(num_videos),
                                             **latents, **content(num_videos), **generate):
                        writer.write(tile_videos(chunk.frames, rows))
                        bar.update(chunk.frames.shape[1])
                    frame_size = writer.frame_size
                written = [out]
    except NonFiniteOutputError as exc:
        if grid:  # the pipeline saw explicit latents: name the cells by their seeds
            n = len(seed_list)
            cells = ", ".join(f"content {seed_list[v // n]}/motion {seed_list[v % n]}" for v in exc.videos[:10])
            fail(f"{out}: not written: the generator produced NaN or infinite values for grid cells {cells} "
                 f"(frames {exc.frames[0]}-{exc.frames[1]}): the model's weights or --truncation-psi are not finite")
        fail(f"{exc}; {'their files were' if per_seed else str(out) + ' was'} not written" + _so_far(written))
    except OSError as exc:
        fail(describe_os_error(exc, current) + _so_far(written))
    except ValueError as exc:
        fail(str(exc) + _so_far(written))
    h, w = frame_size
    what = "grid" if grid else f"video{'s' if len(written) > 1 else ''}"
    typer.echo(f"wrote {len(written)} {what} ({num_frames} frames, {w}x{h}, {fps:g} fps): "
               + ", ".join(str(p.resolve()) for p in written))


def _so_far(written: list[Path]) -> str:
    """What an error leaves: per-seed files of finished batches are complete and stay."""
    return f" ({len(written)} complete file{'s' if len(written) > 1 else ''} of earlier seeds kept)" if written else ""
