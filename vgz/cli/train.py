"""``vgz train``: a recipe on a dataset, on a CPU, a GPU or many."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Optional

import typer

from vgz.cli._common import fail


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


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    # Warnings (skipped videos, a damaged checkpoint set aside) as one line each, not with source lines.
    typer.echo(f"warning: {message}", err=True)


def train_cmd(
    ctx: typer.Context,
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="A training recipe: styleganv, stylegan2 (vgz "
                                                                     "list recipe). With --resume: the run's."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="A folder of videos, of frame folders, a .zip of "
                                                                 "frame folders, or synthetic:shapes. With --resume: "
                                                                 "the run's, or its new location."),
    outdir: Path = typer.Option(Path("runs/run"), "--outdir", "-o", help="The run folder (checkpoints, samples, logs, "
                                                                        "pipeline/)."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Hyper-parameter preset: paper (default) or "
                                                                     "tiny. With --resume: the run's."),
    resolution: Optional[int] = typer.Option(None, help="Training resolution (a power of two)."),
    steps: Optional[int] = typer.Option(None, help="Training steps (default: the recipe's total_kimg)."),
    mixed_precision: Optional[str] = typer.Option(None, "--mixed-precision", help="no, fp16 (GPU) or bf16."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --outdir from its latest checkpoint, "
                                                       "with its settings."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
) -> None:
    """Train a recipe on your videos: one CPU, one GPU, or many through `accelerate launch`.

    Every hyper-parameter of the recipe and of the run can be set as an extra option, e.g.
    --r1-gamma 0.5 --batch-size 32 --lr 0.002 --augment noaug --checkpoint-every 500 --num-workers 4;
    --dry-run lists them all with their values. A run stopped by SIGINT or SIGTERM saves a
    checkpoint and exits with 130 or 143.
    """
    import warnings

    from vgz.configs import ConfigError

    try:
        extra = parse_overrides(list(ctx.args))
    except ValueError as exc:
        fail(str(exc))
    from vgz import registry
    from vgz.training import (CheckpointError, RunConfig, RunFolderError, TrainingDiverged, build_trainer,
                              read_run_config, resolve_configs)

    if recipe is None and resume and not dry_run:
        try:
            record = read_run_config(outdir)
        except RunFolderError as exc:
            fail(str(exc))
        recipe = record["recipe"] if record is not None else None
    if recipe is None:
        fail("--recipe is required (a training recipe: styleganv or stylegan2; vgz list recipe)"
             + ("" if resume else "; with --resume it is read from the run folder"))
    if data is None and not (resume or dry_run):
        fail("--data is required for a new run (a folder of videos, of frame folders, a .zip, or synthetic:shapes)")
    try:
        entry = registry.get("recipe", recipe)
    except registry.UnknownComponentError as exc:
        fail(str(exc))
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
        fail(f"--{unknown[0].replace('_', '-')} is not a setting of recipe {recipe!r} or of the run.{hint} "
             "(--dry-run lists them all)")
    if resolution is not None:
        overrides["resolution"] = resolution
    for name, value in (("steps", steps), ("mixed_precision", mixed_precision)):
        if value is not None:
            run_overrides[name] = value
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line
        try:
            if dry_run:
                recipe_obj, run = resolve_configs(recipe, preset, overrides, run_overrides)
                cfg = recipe_obj.config
                resolved = {"recipe": recipe, "preset": preset or "paper", "data": data, "outdir": str(outdir),
                            "recipe_config": cfg.to_dict(), "run": run.to_dict(),
                            "derived": {**recipe_obj.derived(), "steps": run.total_steps(recipe_obj)}}
                typer.echo(json.dumps(resolved, indent=2))
                return
            trainer = build_trainer(recipe, data=data, outdir=outdir, preset=preset, overrides=overrides,
                                    run_overrides=run_overrides, resume=resume)
            main_process = trainer.accelerator.is_main_process
            if main_process:
                used = trainer.settings  # what config.json says: on --resume the run's own settings
                start = (f"from step {trainer.step} ({trainer.last_checkpoint})" if trainer.last_checkpoint
                         else "from step 0")
                typer.echo(f"training {used['recipe']} ({used['preset'] or 'preset not recorded'}) on {used['data']}: "
                           f"{len(trainer.dataset)} videos, {trainer.total_steps} steps {start}, on "
                           f"{trainer.accelerator.num_processes} process(es), {trainer.device}; run folder {outdir}")
            status = trainer.train()
        except TrainingDiverged as exc:
            fail(str(exc))
        except (ConfigError, RunFolderError, CheckpointError, ValueError, FileNotFoundError) as exc:
            fail(str(exc))
    if status == "interrupted":
        # As a shell reports a command killed by the signal, so `vgz train ... && vgz eval ...` stops here.
        raise typer.Exit(code=128 + int(trainer.stop_signal or 15))
    if main_process:
        typer.echo(f"done: step {trainer.step}; pipeline in {outdir / 'pipeline'} "
                   f"({trainer.recipe.next_command.format(pipeline=outdir / 'pipeline')})")
