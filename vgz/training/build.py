"""Building a trainer from a recipe name, data and a run folder: fresh runs, resumed runs, and
runs whose folder holds settings but no checkpoint."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from vgz import registry
from vgz._version import __version__
from vgz.training.checkpoints import latest_checkpoint
from vgz.training.recipes.base import Recipe
from vgz.training.run_folder import RUN_CONFIG, RunFolderError, read_run_config
from vgz.training.trainer import RunConfig, Trainer
from vgz.utils import atomic_write_text

__all__ = ["build_trainer", "resolve_configs"]


def resolve_configs(recipe: str, preset: str | None = None, overrides: dict[str, Any] | None = None,
                    run_overrides: dict[str, Any] | None = None) -> tuple[Recipe, RunConfig]:
    """The recipe (preset + overrides) and the run config (recipe's run preset + overrides)."""
    entry = registry.get("recipe", recipe)
    preset = preset or "paper"
    instance = entry.cls.from_preset(preset, **(overrides or {}))
    run = RunConfig(**{**entry.cls.run_presets.get(preset, {}), **(run_overrides or {})})
    return instance, run


def build_trainer(recipe: str | None = None, *, data: str | None = None, outdir: str | Path,
                  preset: str | None = None, overrides: dict[str, Any] | None = None,
                  run_overrides: dict[str, Any] | None = None, resume: bool = False) -> Trainer:
    """Open the data, prepare the run folder and build a :class:`Trainer`.

    The dataset is opened first, so a wrong ``data`` fails before any model is built.

    * A folder with a checkpoint holds a run. Without ``resume`` it is refused. With ``resume`` the
      run's settings (its ``config.json``) are used: ``recipe``, ``preset`` and recipe ``overrides``
      may be left out and must match when given; run settings (``run_overrides``, e.g. more
      ``steps``) may change; ``data`` may name the run's data at a new location, accepted when its
      fingerprint is the recorded one.
    * A folder without a checkpoint (e.g. a run that failed before its first) holds nothing to
      continue: the run starts at step 0 from this call's settings, with or without ``resume``.
      With ``resume``, what the call leaves out comes from its ``config.json`` (the recipe, the data,
      the preset, and the recipe settings unless another preset is asked for).

    ``trainer.settings`` holds what is used (the ``config.json`` written).

    Raises:
        RunFolderError: ``outdir`` holds a run and ``resume`` is False; settings differ from the run's
            on resume; another process trains in ``outdir``.
        vgz.data.datasets.DatasetError: the data cannot be used.
    """
    from vgz.data.datasets import open_dataset

    outdir = Path(outdir)
    saved = outdir / RUN_CONFIG
    record = read_run_config(outdir)
    checkpoint = latest_checkpoint(outdir)
    if checkpoint is not None and not resume:
        raise RunFolderError(f"{outdir} already holds a run (latest checkpoint {checkpoint.name}); pass --resume to "
                             f"continue it, or start over in another --outdir (or after deleting {outdir})")
    moved_from = None
    if checkpoint is not None:
        if record is None:
            raise RunFolderError(f"{outdir} has checkpoints but no {RUN_CONFIG} with the run's settings, so it cannot "
                                 "be resumed; restore that file, or start over in another --outdir")
        recipe_obj, run, preset = _run_settings(record, saved, recipe, preset, overrides, run_overrides)
        dataset, moved_from = _open_run_data(record, saved, data, recipe_obj, run)
        data = str(record["data"]) if moved_from is None else data
    else:
        if resume and record is not None:  # nothing to continue: a fresh start, filled in from config.json
            recipe = recipe or record["recipe"]
            data = data or record["data"]
            if recipe == record["recipe"] and preset in (None, record.get("preset")):
                entry = registry.get("recipe", recipe)
                config = entry.cls.config_class.from_dict({**record["recipe_config"], **(overrides or {})},
                                                          source=str(saved))
                recipe_obj = entry.cls(config)
                run = RunConfig.from_dict({**record["run"], **(run_overrides or {})})
                preset = record.get("preset")
            else:
                recipe_obj, run = resolve_configs(recipe, preset, overrides, run_overrides)
                preset = preset or "paper"
        else:
            if recipe is None or data is None:
                raise ValueError("a new run needs a recipe and data (--recipe, --data)")
            recipe_obj, run = resolve_configs(recipe, preset, overrides, run_overrides)
            preset = preset or "paper"
        cfg = recipe_obj.config
        recipe_obj.check_data(str(data))
        dataset = open_dataset(data, resolution=cfg.resolution, sampling=recipe_obj.sampling(), xflip=cfg.xflip,
                               seed=run.seed)
    recipe = recipe or record["recipe"]
    cfg = recipe_obj.config
    trainer = Trainer(recipe_obj, dataset, outdir, run, resume=resume)
    settings = {"recipe": recipe, "preset": preset, "recipe_config": cfg.to_dict(), "run": run.to_dict(),
                "data": data,
                "dataset": {"num_videos": len(dataset), "resolution": dataset.resolution,
                            "channels": dataset.num_channels, "label_dim": dataset.label_dim,
                            "skipped": len(dataset.skipped), "fingerprint": dataset.fingerprint()},
                "processes": trainer.accelerator.num_processes, "vgz_version": __version__}
    trainer.settings = settings
    if trainer.accelerator.is_main_process:
        dataset.report_skipped()
        if moved_from is not None:
            print(f"--data {data}: the same data as the run's {moved_from} (fingerprint "
                  f"{settings['dataset']['fingerprint'][:12]}); the run uses it from now on")
        try:
            atomic_write_text(saved, json.dumps(settings, indent=2) + "\n")
        except BaseException:
            trainer.close()
            raise
    return trainer


def _run_settings(record: dict[str, Any], saved: Path, recipe: str | None, preset: str | None,
                  overrides: dict[str, Any] | None, run_overrides: dict[str, Any] | None,
                  ) -> tuple[Recipe, RunConfig, str | None]:
    """The saved recipe and run of a run being resumed; what the call gives must match them."""
    keep = f"--resume keeps the run's settings (from {saved})"
    start_over = "; leave it out, or start a new run in another --outdir"
    if recipe is not None and recipe != record["recipe"]:
        raise RunFolderError(f"{keep}: it trains recipe {record['recipe']!r}, not {recipe!r}{start_over}")
    saved_preset = record.get("preset")
    if preset is not None and preset != saved_preset:
        found = f"preset {saved_preset!r}" if saved_preset else "a preset that was not recorded (an earlier vgz)"
        raise RunFolderError(f"{keep}: it was started with {found}, not --preset {preset!r}{start_over}")
    entry = registry.get("recipe", record["recipe"])
    recipe_obj = entry.cls(entry.cls.config_class.from_dict(record["recipe_config"], source=str(saved)))
    changed = {k: v for k, v in (overrides or {}).items() if getattr(recipe_obj.config, k, v) != v}
    if changed:
        # Compare as the config would store them (a list given for a tuple field is the same setting).
        probe = entry.cls.config_class.from_dict({**record["recipe_config"], **changed}, source=str(saved))
        changed = {k: v for k, v in changed.items() if getattr(probe, k) != getattr(recipe_obj.config, k)}
    if changed:
        raise RunFolderError(f"{keep}; these recipe settings differ: "
                             + ", ".join(f"{k}={v!r} (run has {getattr(recipe_obj.config, k)!r})"
                                         for k, v in changed.items()) + start_over)
    run = RunConfig.from_dict({**record["run"], **(run_overrides or {})})
    return recipe_obj, run, saved_preset


def _open_run_data(record: dict[str, Any], saved: Path, data: str | None, recipe_obj: Recipe,
                   run: RunConfig) -> tuple[Any, str | None]:
    """The dataset of a run being resumed, and the recorded data spec when ``data`` names a new
    location of the same data (None when the recorded one is used)."""
    from vgz.data.datasets import open_dataset

    cfg = recipe_obj.config
    options = dict(resolution=cfg.resolution, sampling=recipe_obj.sampling(), xflip=cfg.xflip, seed=run.seed)
    recorded = str(record["data"])
    expected = (record.get("dataset") or {}).get("fingerprint")
    if data is None or str(data) == recorded:
        recipe_obj.check_data(recorded)
        try:
            dataset = open_dataset(recorded, **options)
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"the run's data {recorded!r} (from {saved}) cannot be opened: {exc}. If it moved, "
                                 "pass its new location with --data") from None
        if expected and dataset.fingerprint() != expected:
            warnings.warn(f"{recorded}: the data changed since the run was started (fingerprint "
                          f"{dataset.fingerprint()[:12]}, recorded {expected[:12]}); the run continues on it as it "
                          "is now", UserWarning, stacklevel=3)
        return dataset, None
    recipe_obj.check_data(str(data))
    dataset = open_dataset(data, **options)
    if not expected:
        raise RunFolderError(f"--data {data}: the run was started on {recorded!r} and its {saved.name} records no "
                             "data fingerprint (an earlier vgz), so another location cannot be checked; resume "
                             "without --data, with the data at its recorded location")
    if dataset.fingerprint() != expected:
        raise RunFolderError(f"--data {data} is not the run's data: the run was started on {recorded!r} (fingerprint "
                             f"{expected[:12]}), {data!r} has fingerprint {dataset.fingerprint()[:12]}. Resume "
                             "without --data to use the run's own, or start a new run in another --outdir")
    return dataset, recorded

