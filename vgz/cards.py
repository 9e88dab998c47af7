"""Model cards: the ``README.md`` of a model folder, with Hugging Face Hub metadata.

The card's YAML header carries ``library_name: vgz``, tags, and the evaluation results as Hub
``model-index`` entries (huggingface_hub ``EvalResult``: the metric, its value, the dataset, and
the protocol in ``metric_args``); its text has an evaluation section regenerated from them. The
template is ``model_cards/template.md`` (shipped in the package as ``vgz/templates/model_card.md``).

    write_eval_results("runs/shapes/pipeline", report)     # after vgz eval
    read_eval_results("runs/shapes/pipeline")               # [{"metric": "fvd16", "value": ..., ...}]
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["card_path", "load_card", "new_card", "write_eval_results", "read_eval_results", "card_for_push",
           "training_text",
           "TASK_TYPE"]

TASK_TYPE = "unconditional-video-generation"
_EVAL_SECTION = re.compile(r"<!-- vgz-eval:start -->.*?<!-- vgz-eval:end -->", re.S)
_METRIC_TITLES = {"fvd16": "FVD16", "fvd128": "FVD128", "fvd128_subsample8": "FVD128/8", "fid": "FID"}


def card_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / "README.md"


def _template() -> str:
    return resources.files("vgz").joinpath("templates/model_card.md").read_text(encoding="utf-8")


def new_card(folder: str | os.PathLike, *, model_name: str | None = None, repo_id: str | None = None,
             description: str = "", training: str = "", tags: list[str] | None = None, **card_data: Any):
    """A fresh :class:`huggingface_hub.ModelCard` for the pipeline in ``folder``, from the template."""
    import json

    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    index_file = folder / "model_index.json"
    pipeline = json.loads(index_file.read_text()).get("_vgz_pipeline", "vgz") if index_file.is_file() else "vgz"
    name = model_name or folder.resolve().name
    repo_id = repo_id or _placeholder(folder)
    data = ModelCardData(library_name="vgz", tags=sorted({"vgz", "video-generation", "gan", pipeline, *(tags or [])}),
                         model_name=name, **card_data)
    return ModelCard.from_template(data, template_str=_template(), model_name=name, pipeline_name=pipeline,
                                   repo_id=repo_id, description=description, training=training,
                                   evaluation="")


def _placeholder(folder: Path) -> str:
    """What the usage lines name before the model has a Hub repo id (replaced on push)."""
    return f"path/to/{Path(folder).resolve().name}"


def card_for_push(folder: str | os.PathLike, repo_id: str, **new_card_kwargs: Any):
    """The card to upload with ``folder`` to ``repo_id``: the folder's own (usage lines pointed at
    the repo, ``library_name: vgz`` and the vgz tag ensured) or a fresh one from the template."""
    card = load_card(folder)
    if card is None:
        return new_card(folder, repo_id=repo_id, **new_card_kwargs)
    card.text = card.text.replace(_placeholder(Path(folder)), repo_id)
    training = new_card_kwargs.get("training")
    if training and "\n## Training\n\nNot recorded.\n" in card.text:
        card.text = card.text.replace("\n## Training\n\nNot recorded.\n", f"\n## Training\n\n{training}\n", 1)
    card.data.library_name = card.data.library_name or "vgz"
    card.data.tags = sorted({"vgz", *(card.data.tags or [])})
    return card


def load_card(folder: str | os.PathLike):
    """The folder's card, or None when it has no README.md."""
    from huggingface_hub import ModelCard

    path = card_path(folder)
    return ModelCard.load(path) if path.is_file() else None


def _dataset_type(data: str) -> str:
    if data.startswith("synthetic:"):
        return "synthetic-" + data[len("synthetic:"):].partition("?")[0]
    return Path(data.rstrip("/")).name or data


def _eval_results(report: Any) -> list:
    from huggingface_hub import EvalResult

    entries = []
    fingerprint = report.dataset.get("fingerprint", "")[:16]
    for metric, value in report.results.items():
        proto = report.protocols[metric]
        det = proto["detector"]
        args = {k: proto[k] for k in ("num_real", "num_fake", "num_frames", "subsample", "frames_per_video")
                if k in proto}
        args.update(resolution=proto["resolution"], seed=report.seed, comparable=proto["comparable"],
                    real_items=proto["real_taken"].get("items"), fake_items=proto["fake_taken"].get("items"),
                    detector=det["name"], detector_sha256=det["sha256"], vgz=report.environment.get("vgz"))
        # How the samples were taken (older reports predate these: vgz's defaults then).
        args.update(offsets=proto.get("offsets", "seeded"), order=proto.get("order", "natural"),
                    resolution_rule=proto.get("resolution_rule", "model"))
        if proto.get("offsets") == "official":
            args.update(offset_workers=proto.get("offset_workers"))
        if det.get("weights_sha256"):
            args.update(detector_weights_sha256=det["weights_sha256"])
        if proto.get("not_comparable"):
            args.update(not_comparable="; ".join(proto["not_comparable"]))
        entries.append(EvalResult(
            task_type=TASK_TYPE, task_name="Unconditional video generation",
            dataset_type=_dataset_type(report.data), dataset_name=report.data,
            # huggingface_hub groups results by (task, dataset type, config, split, revision) and keeps one
            # dataset name and args per group: the content fingerprint (data and resolution) as the
            # revision keeps results on different data or resolutions in groups of their own.
            dataset_revision=fingerprint or None,
            dataset_args={"resolution": proto["resolution"], "fingerprint": fingerprint},
            metric_type=metric.split("_")[0][:3], metric_name=_METRIC_TITLES.get(metric, metric),
            metric_config=proto.get("official_name", metric), metric_value=round(float(value), 4),
            metric_args=args, verified=False,
        ))
    return entries


def _same(a: Any, b: Any) -> bool:
    """Two results of the same metric on the same data at the same resolution (the newer replaces)."""
    defaults = {"offsets": "seeded", "order": "natural", "resolution_rule": "model"}  # results written before them
    mode = lambda r: tuple((r.metric_args or {}).get(k, v) for k, v in defaults.items())  # noqa: E731
    return (a.metric_config == b.metric_config and a.dataset_name == b.dataset_name
            and (a.dataset_args or {}).get("resolution") == (b.dataset_args or {}).get("resolution")
            and mode(a) == mode(b))


def _evaluation_text(results: list) -> str:
    if not results:
        return ""
    rows = ["| Metric | Value | Data | Resolution | Real / generated | Detector (SHA-256) | Seed | Offsets, order, "
            "resolution rule |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        a = r.metric_args or {}
        note = "" if a.get("comparable", True) else " (reduced sample count: not comparable to papers)"
        offsets = a.get("offsets", "seeded")
        if offsets == "official":
            offsets += f" (torch seed {a.get('seed')}, {a.get('offset_workers')} workers)"
        weights = str(a.get("detector_weights_sha256") or a.get("detector_sha256"))[:12]
        rows.append(f"| {r.metric_name} (`{r.metric_config}`) | {r.metric_value:.2f}{note} | `{r.dataset_name}` | "
                    f"{(r.dataset_args or {}).get('resolution')} | {a.get('real_items')} / {a.get('fake_items')} | "
                    f"{a.get('detector')} (`{weights}`) | {a.get('seed')} | "
                    f"{offsets}, {a.get('order', 'natural')}, {a.get('resolution_rule', 'model')} |")
    protocol = (
        "Computed with `vgz eval` (vgz {vgz}) using StyleGAN-V's protocol: FVD on one clip per real video "
        "(videos shorter than the clip dropped, random offset with a fixed seed) against generated clips of "
        "frames t = 0, 1, ... (FVD128/8: every 8th frame); FID on every real frame against generated frames "
        "t = 0..15 of consecutive videos. Generated frames become uint8 as `(x * 127.5 + 128).clamp(0, 255)`; "
        "features are accumulated in float64 and the Frechet distance is taken by symmetric "
        "eigendecomposition. The detector column names the feature network and the SHA-256 of its weights "
        "(`weights_sha256`: tensors and code; older results: of its file): numbers are comparable only between "
        "equal hashes. Offsets: real clip offsets seeded per video "
        "(vgz) or drawn as StyleGAN-V's code draws them (official); order: natural (`2.png` before `10.png`) or "
        "plain (StyleGAN-V's `sorted()`); resolution rule: real frames resized to the model's resolution "
        "(model) or fed at their own size (native, as StyleGAN-V's code does with two folders)."
    ).format(vgz=(results[0].metric_args or {}).get("vgz", "?"))
    return "\n".join(rows) + "\n\n" + protocol


def training_text(run_dir: str | os.PathLike) -> str:
    """A card's training section from a run folder: recipe, data, steps and the settings that differ
    from the recipe's defaults (read from the run's config.json and its latest checkpoint)."""
    import json

    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return ""
    steps = None
    states = sorted(run_dir.glob("checkpoints/step-*/trainer_state.json"), key=lambda p: int(p.parent.name[5:]))
    if states:
        steps = json.loads(states[-1].read_text()).get("step")
    recipe = config.get("recipe_config", {})
    lines = [f"Trained by vgz {config.get('vgz_version', '')} with `vgz train --recipe {config.get('recipe')}` on "
             f"`{config.get('data')}` at {recipe.get('resolution')}x{recipe.get('resolution')}"
             + (f" for {steps} steps of {recipe.get('batch_size')} clips." if steps is not None else "."),
             "", "Recipe settings:", "", "```json", json.dumps(recipe, indent=2), "```"]
    return "\n".join(lines)


def write_eval_results(folder: str | os.PathLike, report: Any, **new_card_kwargs: Any) -> Path:
    """Add ``report``'s results to ``folder/README.md`` (created from the template if missing):
    model-index entries in the header (a newer result of the same metric, data and resolution
    replaces the older) and the evaluation section of the text. Written atomically."""
    from vgz.utils import atomic_write_text

    card = load_card(folder) or new_card(folder, **new_card_kwargs)
    fresh = _eval_results(report)
    kept = [r for r in (card.data.eval_results or []) if not any(_same(r, f) for f in fresh)]
    card.data.eval_results = kept + fresh
    card.data.library_name = card.data.library_name or "vgz"
    if not card.data.model_name:
        card.data.model_name = Path(folder).resolve().name
    section = f"<!-- vgz-eval:start -->\n{_evaluation_text(card.data.eval_results)}\n<!-- vgz-eval:end -->"
    text = card.text
    text = _EVAL_SECTION.sub(lambda _: section, text) if _EVAL_SECTION.search(text) else \
        text.rstrip() + "\n\n## Evaluation\n\n" + section + "\n"
    card.text = text
    path = card_path(folder)
    atomic_write_text(path, str(card))
    return path


def read_eval_results(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The model-index results of ``folder/README.md`` as plain dicts (empty without a card)."""
    card = load_card(folder)
    if card is None or not card.data.eval_results:
        return []
    return [{"metric": r.metric_config, "name": r.metric_name, "value": r.metric_value, "data": r.dataset_name,
             "resolution": (r.dataset_args or {}).get("resolution"), "protocol": r.metric_args or {}}
            for r in card.data.eval_results]
