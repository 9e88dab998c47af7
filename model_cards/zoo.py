"""The zoo table: vgz's built-in models compared on the same data, by the same protocol and detectors.

Every number comes from the built-in models' cards (``vgz/assets/*/README.md``): the ``vgz eval``
results in their ``model-index`` metadata, and a ``vgz_zoo`` metadata block with the training time
(``training_hours``: for a model built on a trained StyleGAN2, its whole chain of runs, itemised in
``training_chain``), the hardware and the generation speed (``benchmarks/bench_zoo.py`` measures
it). Parameters are counted from the shipped safetensors files. Run::

    python model_cards/zoo.py            # rewrite the table in README.md and model_cards/zoo.md
    python model_cards/zoo.py --check    # exit 1 if either is out of date (a test runs this)

Only results of the zoo protocol enter the table: on ``synthetic:shapes`` at 64x64, with the
random-weight detectors of ``model_cards/random_detectors.py`` (told by their weights hashes below),
vgz's default sampling (seeded offsets, natural order, model resolution) and the sample counts of
:data:`PROTOCOL`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- vgz-zoo:start -->", "<!-- vgz-zoo:end -->"

#: The detectors' weights hashes (model_cards/random_detectors.py): I3D seed 0, Inception seed 1.
I3D_WEIGHTS = "cfe9e4f3b5954c8b7d4158015de49fff02ec9af937b8605549bc6eb478d9ac54"
INCEPTION_WEIGHTS = "b87a438359410260481cf454e3844168bb5750a6480e53a5ab533e170a4751b7"
#: Metric -> (official name, detector weights, real / generated samples of the zoo protocol).
PROTOCOL = {
    "FVD16": ("fvd2048_16f", I3D_WEIGHTS, 256),
    "FVD128": ("fvd2048_128f", I3D_WEIGHTS, 32),
    "FID": ("fid50k_full", INCEPTION_WEIGHTS, 2048),
}
TITLES = {"styleganv": "StyleGAN-V", "styleinv": "StyleInV", "stylevideogan": "StyleVideoGAN"}


def _parameters(folder: Path) -> int:
    """Parameters of every shipped weight file (each component once), from the safetensors headers."""
    import json
    import math
    import struct

    total = 0
    for path in sorted(folder.rglob("*.safetensors")):
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def _result(results: list, config: str, weights: str, count: int) -> float | None:
    """The zoo-protocol value of the metric ``config`` among a card's results, else None."""
    for r in results:
        a = r.metric_args or {}
        taken = a.get("real_items") if config != "fid50k_full" else a.get("fake_items")
        if (r.metric_config == config and str(r.dataset_name).startswith("synthetic:shapes")
                and a.get("detector_weights_sha256") == weights and taken == count and a.get("resolution") == 64
                and (a.get("offsets"), a.get("order"), a.get("resolution_rule")) == ("seeded", "natural", "model")):
            return float(r.metric_value)
    return None


def rows() -> list[dict[str, Any]]:
    """One row per built-in model, from its card."""
    from huggingface_hub import ModelCard

    from vgz.hub import BUILTIN_MODELS, builtin_models

    found = builtin_models()
    out = []
    for name in BUILTIN_MODELS:
        if name not in found:
            continue
        folder = found[name]
        card = ModelCard.load(folder / "README.md")
        zoo = card.data.to_dict().get("vgz_zoo", {})
        results = card.data.eval_results or []
        row = {"name": name, "title": TITLES.get(name, name), "folder": folder.name,
               "parameters": _parameters(folder), **zoo}
        for metric, (config, weights, count) in PROTOCOL.items():
            row[metric] = _result(results, config, weights, count)
        out.append(row)
    return out


def _num(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _chain(chain: dict[str, float] | None) -> str:
    """`` (StyleGAN2 2.8 h + pSp 0.3 h + ...)``: the runs a model's training hours add up, in order."""
    return f" ({' + '.join(f'{run} {hours:.1f} h' for run, hours in chain.items())})" if chain else ""


def table() -> str:
    lines = ["| Model | `vgz generate --model` | FVD16 | FVD128 | FID | Training | Parameters | Generation (frames/s, "
             "this CPU) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows():
        training = (f"{r['training_hours']:.1f} h{_chain(r.get('training_chain'))} on {r['training_hardware']}"
                    if r.get("training_hours") is not None else "n/a")
        lines.append(f"| {r['title']} | `{r['name']}` | {_num(r['FVD16'], '.2f')} | {_num(r['FVD128'], '.2f')} | "
                     f"{_num(r['FID'], '.3f')} | {training} | {r['parameters'] / 1e6:.2f} M | "
                     f"{_num(r.get('generation_fps'), '.0f')} |")
    counts = ", ".join(f"{m} {n} real / {n} generated {'frames' if m == 'FID' else 'clips'}"
                       for m, (_, _, n) in PROTOCOL.items())
    notes = (f"All three trained by vgz on `synthetic:shapes` at 64x64 and evaluated with `vgz eval` on the same "
             f"data ({counts}; seeded offsets, natural order) with the same detectors: an I3D and an Inception "
             "with **random weights** (`model_cards/random_detectors.py`, weights hashes "
             f"`{I3D_WEIGHTS[:12]}` and `{INCEPTION_WEIGHTS[:12]}`), since the real weights cannot be downloaded "
             "where the models were trained. The numbers rank these models on this data; they are not comparable "
             "to published FVD or FID. Lower is better. Each model's card gives its commands, commit and what it "
             "does well and badly; `python model_cards/zoo.py` regenerates this table from the cards.")
    return "\n".join(lines) + "\n\n" + notes + "\n"


def _replace(text: str, block: str, where: Path) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"{where}: expected the markers {START} and {END}")
    head, rest = text.split(START, 1)
    return head + START + "\n" + block + END + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md or model_cards/zoo.md is stale")
    args = parser.parse_args(argv)
    block = table()
    targets = {ROOT / "README.md": None, ROOT / "model_cards" / "zoo.md": None}
    stale = []
    for path in targets:
        text = path.read_text() if path.is_file() else f"# The vgz zoo\n\n{START}\n{END}\n"
        new = _replace(text, block, path)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"stale: {', '.join(str(p) for p in stale)}; run python model_cards/zoo.py", file=sys.stderr)
        return 1
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
