"""``vgz list`` and ``vgz info``: what is registered, and what a saved model holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from vgz.cli._common import fail


def list_cmd(
    kind: Optional[str] = typer.Argument(None, help="Only this kind (mapping, synthesis, discriminator, ...), or "
                                                    "'model' for the built-in models."),
    pattern: str = typer.Option("*", "--pattern", "-p", help="Wildcard on names, e.g. 'style*'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List registered components and where each comes from (vgz or a plugin); `vgz list model`: the built-in
    models with their pipeline, data and evaluation results."""
    from vgz import registry

    if kind == "model":
        return _list_builtin_models(pattern, as_json)

    try:
        entries = registry.list_components(kind, pattern)
    except registry.UnknownComponentError as exc:
        fail(str(exc))
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
    _echo_table(("KIND", "NAME", "SOURCE", "DESCRIPTION"), rows)


def _echo_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last one left free."""
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) for i in range(len(headers) - 1)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    typer.echo(fmt.format(*headers))
    for row in rows:
        typer.echo(fmt.format(*row))


def _list_builtin_models(pattern: str, as_json: bool) -> None:
    """The built-in models (``vgz generate --model NAME``): pipeline, data and the results their folders record."""
    import fnmatch

    from vgz.hub import builtin_models

    rows = []
    for name, folder in builtin_models().items():
        if not fnmatch.fnmatchcase(name, pattern):
            continue
        index = json.loads((folder / "model_index.json").read_text())
        results, data = {}, []
        for path in sorted(folder.glob("eval*.json")):
            try:
                report = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            results.update(report.get("results", {}))
            data.append(report.get("data") or "")
        # The plainest spec (FID may read the same videos cut short: synthetic:shapes?num_frames=16).
        rows.append({"name": name, "pipeline": index.get("_vgz_pipeline"), "data": min(data, key=len, default=None)
                     or None, "results": results, "path": str(folder)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no built-in models match")
        return
    table = [(r["name"], r["pipeline"] or "?", r["data"] or "?",
              ", ".join(f"{k} {v:.2f}" for k, v in r["results"].items()) or "not evaluated") for r in rows]
    _echo_table(("NAME", "PIPELINE", "DATA", "RESULTS (vgz eval; random-weight detectors)"), table)
    typer.echo("vgz generate --model NAME writes videos with one of them")


def info_cmd(
    model: str = typer.Argument(..., help="A saved component folder or a Hub repo id."),
    revision: Optional[str] = typer.Option(None, help="Hub revision (branch, tag or commit)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a saved component's or pipeline's kinds, configs, parameter counts and sizes, without building it.

    The weights files' headers are checked against the component: a missing, corrupt or mismatched file makes the model
    broken (exit status 1).
    """
    from vgz.hub import ModelNotFoundError, resolve_folder
    from vgz.modeling import read_component_config

    try:
        folder = resolve_folder(model, revision=revision)
        if (folder / "model_index.json").is_file():
            return _pipeline_info(folder, as_json)
        kind, name, config = read_component_config(folder)
    except (ModelNotFoundError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    component, problems = _component_info(folder, kind, name, config)
    result = {"path": str(folder), **component, "problems": problems}
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(f"{kind} {name!r} in {folder}")
        for w in component["weights"]:
            typer.echo(f"  {w['file']}: {w['num_parameters']:,} parameters + {w['num_buffer_values']:,} buffer values, "
                       f"{w['dtypes']}, {w['bytes'] / 2**20:.2f} MiB")
        typer.echo("config:")
        for key, value in config.items():
            typer.echo(f"  {key}: {json.dumps(value)}")
    if problems:
        fail(f"{folder} is broken: " + "; ".join(problems))


def _component_info(folder: Path, kind: str, name: str, config: dict) -> tuple[dict, list[str]]:
    """``({kind, name, config, weights}, problems)`` of a component folder: problems are missing,
    unreadable or mis-fitting weights files, each a phrase naming the file."""
    from vgz.modeling import state_dict_problems

    expected = _expected_state(kind, name, config, folder)
    files = sorted(folder.glob("model*.safetensors"))
    problems = [] if files else [f"{folder} has no model.safetensors (no weights)"]
    weights = []
    for path in files:
        try:
            summary, shapes = _weights_summary(path, None if expected is None else set(expected["parameters"]))
        except ValueError as exc:
            problems.append(str(exc))
            continue
        weights.append(summary)
        if expected is not None:
            import torch

            found = {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}
            issues, _ = state_dict_problems(expected["state"], found)
            if issues:
                problems.append(f"{path} does not fit {kind} {name!r}: " + "; ".join(issues))
    return {"kind": kind, "name": name, "config": config, "weights": weights}, problems


def _pipeline_info(folder: Path, as_json: bool) -> None:
    from vgz import registry
    from vgz.configs import ConfigError
    from vgz.modeling import read_component_config

    index_path = folder / "model_index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        fail(f"{index_path} is not valid JSON ({exc}); it is not a readable vgz pipeline index")
    if not isinstance(index, dict) or not isinstance(index.get("components"), dict):
        fail(f"{index_path} is not a vgz pipeline index: expected an object with a 'components' mapping")
    problems: list[str] = []
    name = index.get("_vgz_pipeline")
    try:
        pipeline_cls = registry.get("pipeline", str(name), needed_by=str(index_path)).cls
    except registry.RegistryError as exc:  # e.g. a plugin that is not installed: the files can still be shown
        typer.echo(f"note: {exc}", err=True)
        pipeline_cls = None
    if pipeline_cls is not None:
        try:
            pipeline_cls.config_class.from_dict(index.get("config", {}), source=str(index_path))
        except ConfigError as exc:
            problems.append(str(exc))
        for attr in pipeline_cls.component_kinds:
            if attr not in index["components"] and attr not in pipeline_cls.optional_components:
                problems.append(f"{attr}: the {name} pipeline needs it, but {index_path.name} does not list it")
    components = {}
    for attr, entry in index["components"].items():
        sub = folder / attr
        if not sub.is_dir():
            problems.append(f"{attr}: {folder} has no folder {attr!r}, which {index_path.name} lists")
            continue
        try:
            kind, cname, config = read_component_config(sub)
        except (FileNotFoundError, ValueError) as exc:
            problems.append(f"{attr}: {exc}")
            continue
        if entry != [kind, cname]:
            problems.append(f"{attr}: {index_path.name} lists {entry!r}, but {sub / 'config.json'} holds "
                            f"{kind} {cname!r}")
        components[attr], comp_problems = _component_info(sub, kind, cname, config)
        problems += [f"{attr}: {p}" for p in comp_problems]
    from vgz.cards import read_eval_results

    result = {"path": str(folder), "pipeline": name, "config": index.get("config", {}),
              "components": components, "evaluation": read_eval_results(folder), "problems": problems}
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print_pipeline(result)
    if problems:
        fail(f"pipeline {folder} is broken: " + "; ".join(problems))


def _print_pipeline(result: dict) -> None:
    typer.echo(f"pipeline {result['pipeline']!r} in {result['path']}; config {json.dumps(result['config'])}")
    for attr, comp in result["components"].items():
        sizes = ", ".join(f"{w['file']}: {w['num_parameters']:,} parameters, {w['bytes'] / 2**20:.2f} MiB"
                          for w in comp["weights"])
        typer.echo(f"  {attr}: {comp['kind']} {comp['name']!r} ({sizes or 'no weights'})")
    if result["evaluation"]:
        typer.echo("evaluation (README.md):")
    for r in result["evaluation"]:
        p = r["protocol"]
        typer.echo(f"  {r['name']} ({r['metric']}): {r['value']} on {r['data']} at {r['resolution']}px; "
                   f"{p.get('real_items')} real / {p.get('fake_items')} generated, detector {p.get('detector')} "
                   f"sha256 {str(p.get('detector_sha256'))[:12]}, seed {p.get('seed')}"
                   + ("" if p.get("comparable", True) else "; reduced sample count"))


def _expected_state(kind: str, name: str, config: dict, folder: Path) -> dict | None:
    """``{"parameters": names, "state": meta tensors of the state dict}`` of the component, from a
    build on the meta device (no memory used); None, with a note, when it cannot be built."""
    import torch

    from vgz import registry

    try:
        entry = registry.get(kind, name, needed_by=str(folder / "config.json"))
        with torch.device("meta"):
            model = entry.cls(entry.config_cls.from_dict(config))
    except Exception as exc:  # e.g. a plugin that is not installed: count everything as parameters
        typer.echo(f"note: cannot build {kind} {name!r} to tell parameters from buffers and check the weights "
                   f"({exc})", err=True)
        return None
    return {"parameters": {n for n, _ in model.named_parameters()}, "state": model.state_dict()}


def _weights_summary(path: Path, param_names: set[str] | None) -> tuple[dict, dict[str, list[int]]]:
    """Count the values in a safetensors file from its header (no tensor is loaded): ``(summary,
    {key: shape})``. An unreadable or truncated file is a ValueError naming it."""
    from safetensors import SafetensorError, safe_open

    params = buffers = 0
    dtypes: set[str] = set()
    shapes: dict[str, list[int]] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                sl = f.get_slice(key)
                shapes[key] = list(sl.get_shape())
                dtypes.add(sl.get_dtype())
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a valid safetensors file ({exc})") from None
    for key, shape in shapes.items():
        n = 1
        for dim in shape:
            n *= dim
        if param_names is None or key in param_names:
            params += n
        else:
            buffers += n
    return {"file": path.name, "num_parameters": params, "num_buffer_values": buffers,
            "dtypes": ",".join(sorted(dtypes)), "bytes": path.stat().st_size}, shapes
