"""``vgz list`` and ``vgz info``: what is registered, and what a saved model holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from vgz.cli._common import fail


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
    headers = ("KIND", "NAME", "SOURCE", "DESCRIPTION")
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) for i in range(3)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    typer.echo(fmt.format(*headers))
    for row in rows:
        typer.echo(fmt.format(*row))


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
        fail(str(exc))
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
