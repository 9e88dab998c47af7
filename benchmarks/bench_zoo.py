"""Generation speed of vgz's built-in models (the zoo table's last column), on this machine.

For each built-in model (``vgz list model``): its pipeline from the shipped folder, ``--videos`` (4)
videos of ``--frames`` (64) frames at 64x64 in one call after a warm-up call, ``--iters`` (3) calls,
median: frames/s = videos x frames / seconds, the whole pipeline (latents, motion, rendering) in
float32. ``--write`` records the figure in each model's card (``vgz_zoo.generation_fps`` in its
metadata), from which ``model_cards/zoo.py`` builds the table; run it on an idle machine::

    python benchmarks/bench_zoo.py --threads 2 --write
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import describe, time_fn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--write", action="store_true", help="record frames/s in each built-in model's card")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from vgz.hub import builtin_models
    from vgz.pipelines import VideoPipeline

    print(describe("cpu"))
    print("\n| Model | Pipeline | Videos x frames | Seconds (median) | Frames/s |\n|---|---|---|---|---|")
    measured = {}
    for name, folder in builtin_models().items():
        pipe = VideoPipeline.from_pretrained(folder)

        def run() -> None:
            with torch.no_grad():
                pipe(num_videos=args.videos, num_frames=args.frames, generator=0)

        seconds = statistics.median(time_fn(run, iters=args.iters, warmup=1, device="cpu"))
        fps = args.videos * args.frames / seconds
        measured[folder] = fps
        print(f"| {name} | {pipe.registry_key()[1]} | {args.videos} x {args.frames} | {seconds:.2f} | {fps:.0f} |")
    if args.write:
        from huggingface_hub import ModelCard

        for folder, fps in measured.items():
            card = ModelCard.load(folder / "README.md")
            zoo = dict(card.data.to_dict().get("vgz_zoo") or {})
            zoo["generation_fps"] = round(fps, 1)
            card.data.vgz_zoo = zoo
            card.save(folder / "README.md")
            print(f"wrote {folder / 'README.md'}")


if __name__ == "__main__":
    main()
