"""The ``vgz`` command line.

Commands import torch and the networks only when they run, so ``vgz --help`` stays fast.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Optional

import typer

from vgz._version import __version__

app = typer.Typer(
    name="vgz",
    help="vgz: a video GAN zoo for PyTorch. Generate, train, evaluate, convert and share video GANs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"vgz {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the vgz version and exit."),
) -> None:
    """vgz: a video GAN zoo for PyTorch."""


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


@app.command("list")
def list_cmd(
    kind: Optional[str] = typer.Argument(None, help="Only this kind (mapping, synthesis, discriminator, ...)."),
    pattern: str = typer.Option("*", "--pattern", "-p", help="Wildcard on names, e.g. 'style*'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List registered components and where each comes from (vgz or a plugin)."""
    from vgz import registry

    try:
        entries = registry.list_components(kind, pattern)
    except registry.UnknownComponentError as exc:
        _fail(str(exc))
    broken = registry.broken_plugins()
    if as_json:
        rows = [{"kind": e.kind, "name": e.name, "source": e.source, "class": e.qualname,
                 "description": e.description} for e in entries]
        rows += [{"kind": "plugin", "name": b.name, "source": b.source, "broken": True, "error": b.error}
                 for b in broken]
        typer.echo(json.dumps(rows, indent=2))
        return
    rows = [(e.kind, e.name, e.source, e.description) for e in entries]
    rows += [("plugin", b.name, b.source, f"BROKEN: {b.error}") for b in broken]
    if not rows:
        typer.echo("no components match")
        return
    headers = ("KIND", "NAME", "SOURCE", "DESCRIPTION")
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) for i in range(3)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    typer.echo(fmt.format(*headers))
    for row in rows:
        typer.echo(fmt.format(*row))


@app.command("info")
def info_cmd(
    model: str = typer.Argument(..., help="A saved component folder or a Hub repo id."),
    revision: Optional[str] = typer.Option(None, help="Hub revision (branch, tag or commit)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a saved component's or pipeline's kinds, configs, parameter counts and sizes, without building it."""
    from vgz.hub import ModelNotFoundError, resolve_folder
    from vgz.modeling import read_component_config

    try:
        folder = resolve_folder(model, revision=revision)
        if (folder / "model_index.json").is_file():
            return _pipeline_info(folder, as_json)
        kind, name, config = read_component_config(folder)
    except (ModelNotFoundError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    names = _parameter_names(kind, name, config)
    weights = [_weights_summary(path, names) for path in sorted(folder.glob("model*.safetensors"))]
    result = {"path": str(folder), "kind": kind, "name": name, "config": config, "weights": weights}
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"{kind} {name!r} in {folder}")
    for w in weights:
        typer.echo(f"  {w['file']}: {w['num_parameters']:,} parameters + {w['num_buffer_values']:,} buffer values, "
                   f"{w['dtypes']}, {w['bytes'] / 2**20:.2f} MiB")
    typer.echo("config:")
    for key, value in config.items():
        typer.echo(f"  {key}: {json.dumps(value)}")


def _pipeline_info(folder: Path, as_json: bool) -> None:
    from vgz.modeling import read_component_config

    index = json.loads((folder / "model_index.json").read_text())
    components = {}
    for attr in index.get("components", {}):
        kind, name, config = read_component_config(folder / attr)
        names = _parameter_names(kind, name, config)
        weights = [_weights_summary(p, names) for p in sorted((folder / attr).glob("model*.safetensors"))]
        components[attr] = {"kind": kind, "name": name, "config": config, "weights": weights}
    from vgz.cards import read_eval_results

    result = {"path": str(folder), "pipeline": index.get("_vgz_pipeline"), "config": index.get("config", {}),
              "components": components, "evaluation": read_eval_results(folder)}
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"pipeline {result['pipeline']!r} in {folder}; config {json.dumps(result['config'])}")
    for attr, comp in components.items():
        sizes = ", ".join(f"{w['file']}: {w['num_parameters']:,} parameters, {w['bytes'] / 2**20:.2f} MiB"
                          for w in comp["weights"])
        typer.echo(f"  {attr}: {comp['kind']} {comp['name']!r} ({sizes})")
    if result["evaluation"]:
        typer.echo("evaluation (README.md):")
    for r in result["evaluation"]:
        p = r["protocol"]
        typer.echo(f"  {r['name']} ({r['metric']}): {r['value']} on {r['data']} at {r['resolution']}px; "
                   f"{p.get('real_items')} real / {p.get('fake_items')} generated, detector {p.get('detector')} "
                   f"sha256 {str(p.get('detector_sha256'))[:12]}, seed {p.get('seed')}"
                   + ("" if p.get("comparable", True) else "; reduced sample count"))


def _parameter_names(kind: str, name: str, config: dict) -> set[str] | None:
    """Parameter names of the component, from a build on the meta device (no memory used)."""
    import torch

    from vgz import registry

    try:
        entry = registry.get(kind, name)
        with torch.device("meta"):
            model = entry.cls(entry.config_cls.from_dict(config))
    except Exception as exc:  # e.g. a plugin that is not installed: count everything as parameters
        typer.echo(f"note: cannot build {kind} {name!r} to tell parameters from buffers ({exc})", err=True)
        return None
    return {n for n, _ in model.named_parameters()}


def _weights_summary(path: Path, param_names: set[str] | None) -> dict:
    """Count the values in a safetensors file from its header (no tensor is loaded)."""
    from safetensors import safe_open

    params = buffers = 0
    dtypes: set[str] = set()
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            sl = f.get_slice(key)
            n = 1
            for dim in sl.get_shape():
                n *= dim
            dtypes.add(sl.get_dtype())
            if param_names is None or key in param_names:
                params += n
            else:
                buffers += n
    return {"file": path.name, "num_parameters": params, "num_buffer_values": buffers,
            "dtypes": ",".join(sorted(dtypes)), "bytes": path.stat().st_size}


convert_app = typer.Typer(help="Convert official checkpoints into vgz folders (their code is never run).",
                          no_args_is_help=True)
app.add_typer(convert_app, name="convert")


def _convert(kind: str, snapshot: Path, out: Path, discriminator: bool, overwrite: bool) -> None:
    from vgz.conversion import snapshots
    from vgz.conversion.pickles import UnsafePickleError

    convert = snapshots.convert_styleganv if kind == "styleganv" else snapshots.convert_stylegan2_ada
    try:
        folder = convert(snapshot, out, discriminator=discriminator, overwrite=overwrite)
    except UnsafePickleError as exc:
        _fail(f"refused: {exc}")
    except (ValueError, OSError) as exc:  # bad formats, configs and weights; missing or existing paths
        _fail(str(exc))
    parts = sorted(p.name for p in folder.iterdir() if p.is_dir())
    typer.echo(f"converted {snapshot} -> {folder} ({', '.join(parts)})")


@convert_app.command("styleganv")
def convert_styleganv_cmd(
    snapshot: Path = typer.Argument(..., help="network-snapshot-*.pkl from universome/stylegan-v."),
    out: Path = typer.Argument(..., help="Pipeline folder to write."),
    discriminator: bool = typer.Option(False, "--discriminator", help="Also convert D (for fine-tuning)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
) -> None:
    """StyleGAN-V snapshot -> a StyleGAN-V pipeline folder (then: vgz generate OUT)."""
    _convert("styleganv", snapshot, out, discriminator, overwrite)


@convert_app.command("stylegan2-ada")
def convert_stylegan2_ada_cmd(
    snapshot: Path = typer.Argument(..., help="network-snapshot-*.pkl from NVlabs/stylegan2-ada-pytorch."),
    out: Path = typer.Argument(..., help="Folder for the mapping/, synthesis/ (and discriminator/) components."),
    discriminator: bool = typer.Option(False, "--discriminator", help="Also convert D."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
) -> None:
    """StyleGAN2-ADA snapshot -> vgz component folders (load with vgz.load_component)."""
    _convert("stylegan2-ada", snapshot, out, discriminator, overwrite)


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


@app.command("generate")
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
    import torch

    from vgz.hub import ModelNotFoundError, builtin_model, model_folder
    from vgz.pipelines import VideoPipeline

    seed_list = parse_seeds(seeds)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        if model is None:
            ref = builtin_model()
        elif Path(model).expanduser().is_dir():
            ref = model_folder(model)  # a run folder: its EMA pipeline
        else:
            ref = model
        pipe = VideoPipeline.from_pretrained(ref, revision=revision, device=device)
    except (ModelNotFoundError, FileNotFoundError, ValueError, TypeError) as exc:
        _fail(str(exc))
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
        _fail("--grid writes one video; drop '{seed}' from --out")
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
        _fail(str(exc))
    h, w = writers[0].frame_size
    what = "grid" if grid else f"video{'s' if len(paths) > 1 else ''}"
    typer.echo(f"wrote {len(paths)} {what} ({num_frames} frames, {w}x{h}, {fps:g} fps): "
               + ", ".join(str(p.resolve()) for p in paths))


def parse_overrides(args: list[str]) -> dict[str, object]:
    """``["--r1-gamma", "0.5", "--betas=0,0.99", "--xflip", "false"]`` -> ``{"r1_gamma": 0.5, ...}``.

    Values are read as JSON where they parse (numbers, true/false, null, lists), ``none`` as None,
    a comma list as a list, anything else as a string; the configs validate them.
    """
    out: dict[str, object] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or len(token) == 2:
            raise ValueError(f"unexpected argument {token!r}: hyper-parameters are given as --name value")
        name, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ValueError(f"--{name} needs a value (e.g. --{name} 0.5; booleans as true/false)")
            value, i = args[i + 1], i + 1
        i += 1
        out[name.replace("-", "_")] = _parse_value(value)
    return out


def _parse_value(text: str) -> object:
    if text.lower() in ("none", "null"):
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return [_parse_value(part) for part in text.split(",")]
    return text


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_cmd(
    ctx: typer.Context,
    recipe: str = typer.Option(..., "--recipe", "-r", help="A training recipe: styleganv, stylegan2 (vgz list recipe)."),
    data: str = typer.Option(..., "--data", "-d", help="A folder of videos, of frame folders, a .zip of frame "
                                                      "folders, or synthetic:shapes."),
    outdir: Path = typer.Option(Path("runs/run"), "--outdir", "-o", help="The run folder (checkpoints, samples, logs, "
                                                                        "pipeline/)."),
    preset: str = typer.Option("paper", "--preset", "-p", help="Hyper-parameter preset: paper or tiny."),
    resolution: Optional[int] = typer.Option(None, help="Training resolution (a power of two)."),
    steps: Optional[int] = typer.Option(None, help="Training steps (default: the recipe's total_kimg)."),
    mixed_precision: Optional[str] = typer.Option(None, "--mixed-precision", help="no, fp16 (GPU) or bf16."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --outdir from its latest checkpoint."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
) -> None:
    """Train a recipe on your videos: one CPU, one GPU, or many through `accelerate launch`.

    Every hyper-parameter of the recipe and of the run can be set as an extra option, e.g.
    --r1-gamma 0.5 --batch-size 32 --lr 0.002 --augment noaug --checkpoint-every 500 --num-workers 4;
    --dry-run lists them all with their values.
    """
    from vgz.configs import ConfigError

    try:
        extra = parse_overrides(list(ctx.args))
    except ValueError as exc:
        _fail(str(exc))
    from vgz import registry
    from vgz.training.trainer import RunConfig, RunFolderError, TrainingDiverged, build_trainer, resolve_configs

    try:
        entry = registry.get("recipe", recipe)
    except registry.UnknownComponentError as exc:
        _fail(str(exc))
    recipe_fields = set(entry.cls.config_class.__dataclass_fields__)
    run_fields = set(RunConfig.__dataclass_fields__)
    for config_class in (entry.cls.config_class, RunConfig):  # "--sample-seeds 0": a one-item tuple
        hints = typing.get_type_hints(config_class)
        for name, value in extra.items():
            if name in hints and "tuple" in str(hints[name]) and not isinstance(value, list) and value is not None:
                extra[name] = [value]
    overrides = {k: v for k, v in extra.items() if k in recipe_fields}
    run_overrides = {k: v for k, v in extra.items() if k in run_fields and k not in recipe_fields}
    unknown = sorted(set(extra) - recipe_fields - run_fields)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(recipe_fields | run_fields), n=3)
        hint = f" Did you mean {', '.join('--' + c.replace('_', '-') for c in close)}?" if close else ""
        _fail(f"--{unknown[0].replace('_', '-')} is not a setting of recipe {recipe!r} or of the run.{hint} "
              "(--dry-run lists them all)")
    if resolution is not None:
        overrides["resolution"] = resolution
    for name, value in (("steps", steps), ("mixed_precision", mixed_precision)):
        if value is not None:
            run_overrides[name] = value
    try:
        if dry_run:
            recipe_obj, run = resolve_configs(recipe, preset, overrides, run_overrides)
            cfg = recipe_obj.config
            resolved = {"recipe": recipe, "preset": preset, "data": data, "outdir": str(outdir),
                        "recipe_config": cfg.to_dict(), "run": run.to_dict(),
                        "derived": {"r1_gamma": cfg.r1_gamma_value(), "ema_kimg": cfg.ema_kimg_value(),
                                    "steps": run.total_steps(cfg)}}
            typer.echo(json.dumps(resolved, indent=2))
            return
        trainer = build_trainer(recipe, data=data, outdir=outdir, preset=preset, overrides=overrides,
                                run_overrides=run_overrides, resume=resume)
        main_process = trainer.accelerator.is_main_process
        if main_process:
            typer.echo(f"training {recipe} ({preset}) on {data}: {len(trainer.dataset)} videos, "
                       f"{trainer.total_steps} steps from step {trainer.step}, on {trainer.accelerator.num_processes} "
                       f"process(es), {trainer.device}; run folder {outdir}")
        status = trainer.train()
    except TrainingDiverged as exc:
        _fail(str(exc))
    except (ConfigError, RunFolderError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if main_process and status == "done":
        typer.echo(f"done: step {trainer.step}; pipeline in {outdir / 'pipeline'} "
                   f"(vgz generate {outdir / 'pipeline'})")


@app.command("eval")
def eval_cmd(
    model: str = typer.Argument(..., help="A pipeline folder, a Hub repo id, a run folder (its pipeline/), or a "
                                          "folder of generated videos."),
    data: str = typer.Option(..., "--data", "-d", help="The real videos: a folder, a .zip of frame folders, or "
                                                      "synthetic:shapes?..."),
    metrics: str = typer.Option("fvd16", "--metrics", "-m", help="Comma-separated: fvd16, fvd128, "
                                                                 "fvd128_subsample8, fid (vgz list metric)."),
    detector: list[str] = typer.Option([], "--detector", help="Feature detector file, folder or Hub repo id; give "
                                       "one video detector (I3D) for FVD and one image detector (Inception) for FID."),
    num_videos: Optional[int] = typer.Option(None, "--num-videos", min=1, help="At most this many real and "
                                             "generated videos per metric (quick; not comparable to papers)."),
    seed: int = typer.Option(0, help="Seed of the generated samples."),
    resolution: Optional[int] = typer.Option(None, help="Evaluation resolution (default: the model's)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The JSON result (default: eval_results.json in "
                                                                "the model folder, or here)."),
    card: bool = typer.Option(True, "--card/--no-card", help="Write the results into the model folder's README.md."),
    bn_eps: Optional[float] = typer.Option(None, "--bn-eps", help="Batch-norm epsilon of a state-dict I3D: 1e-5 "
                                           "(the port, default) or 1e-3 (TF-Hub's original)."),
    truncation_psi: float = typer.Option(1.0, "--truncation-psi"),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse cached real-data statistics."),
    cache_dir: Optional[Path] = typer.Option(None, help="Where real statistics are cached (default ~/.cache/vgz/metrics)."),
    num_workers: int = typer.Option(2, min=0, help="Processes decoding real videos."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    revision: Optional[str] = typer.Option(None, help="Hub revision of the model (branch, tag or commit)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate a model (or generated videos) against real videos: FVD16, FVD128, FID with StyleGAN-V's protocol."""
    import contextlib

    import torch

    from vgz.data.datasets import DatasetError
    from vgz.hub import ModelNotFoundError, model_folder
    from vgz.metrics.detectors import DetectorError
    from vgz.metrics.evaluation import EvaluationError, evaluate
    from vgz.registry import UnknownComponentError

    folder = Path(model).expanduser()
    if folder.is_dir():
        with contextlib.suppress(ModelNotFoundError):  # else a folder of generated videos
            folder = model_folder(folder)  # a run folder: its EMA pipeline
            model = str(folder)
    local_model = (folder / "model_index.json").is_file()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        report = evaluate(model, data, [m.strip() for m in metrics.split(",") if m.strip()], detectors=detector,
                          num_videos=num_videos, seed=seed, resolution=resolution, device=device,
                          num_workers=num_workers, cache_dir=(cache_dir if cache else False), progress=not quiet,
                          bn_eps=bn_eps, truncation_psi=truncation_psi, hub_kwargs={"revision": revision})
    except (EvaluationError, DetectorError, DatasetError, ModelNotFoundError, UnknownComponentError,
            FileNotFoundError) as exc:
        _fail(str(exc))
    out = out or ((folder if local_model else Path(".")) / "eval_results.json")
    report.save(out)
    for name, value in report.results.items():
        proto = report.protocols[name]
        det = proto["detector"]
        typer.echo(f"{name}: {value:.4f}  ({proto['real_taken']['items']} real / {proto['fake_taken']['items']} "
                   f"generated, {proto['resolution']}px, detector {det['name']} sha256 {str(det['sha256'])[:12]}, "
                   f"seed {seed})")
    typer.echo(f"wrote {out}")
    if card and local_model:
        from vgz.cards import write_eval_results

        typer.echo(f"wrote {write_eval_results(folder, report)}")


@app.command("push")
def push_cmd(
    model: Path = typer.Argument(..., help="A saved pipeline or component folder, or a training run folder (its "
                                           "pipeline/ is pushed)."),
    repo_id: str = typer.Argument(..., help="The Hub repo, org/name (created if missing)."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="Commit message."),
    private: bool = typer.Option(False, "--private", help="Create the repo private."),
    revision: Optional[str] = typer.Option(None, help="Branch to commit to."),
    create_pr: bool = typer.Option(False, "--create-pr", help="Open a pull request instead of committing."),
    token: Optional[str] = typer.Option(None, help="Hub token (default: the saved login or HF_TOKEN)."),
) -> None:
    """Upload a model to the Hugging Face Hub in one commit: weights, configs and its model card."""
    from vgz.cards import training_text
    from vgz.hub import ModelNotFoundError, model_folder, push_folder

    try:
        folder = model_folder(model)
    except ModelNotFoundError as exc:
        _fail(str(exc))
    card_kwargs = {"training": training_text(model)} if folder != model.expanduser() else {}
    try:
        info = push_folder(folder, repo_id, commit_message=message, private=private or None, token=token,
                           revision=revision, create_pr=create_pr, card_kwargs=card_kwargs)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"pushed {folder} to https://huggingface.co/{repo_id}: {getattr(info, 'commit_url', info)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
