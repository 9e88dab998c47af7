"""Time ``vgz invert`` end to end: mp4 files -> pSp codes -> one latent file per video.

pSp's released architecture (an IR-SE50 W+ encoder at 256x256 and a 1024x1024 StyleGAN2, random
weights: speed does not depend on them) inverts ``--videos`` H.264 files of ``--frames`` frames at
256x256 (written first, procedural shapes). Timed: :func:`vgz.inversion.invert_videos`, decoding,
resizing, encoding and writing included; printed: frames/s and the peak resident memory.
``--refine-steps N`` adds the refinement (``vgz invert --refine-steps``), which runs the generator
forward and backward N times per frame; ``--pipeline FOLDER`` times a saved psp pipeline instead
(e.g. a small 64x64 one, where pSp's 1024x1024 generator is too slow to refine on a CPU).

    python benchmarks/bench_invert.py --videos 2 --frames 16
    python benchmarks/bench_invert.py --videos 1 --frames 64 --pipeline runs/psp/pipeline --refine-steps 20
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import describe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=None, help="frames per encoder call (vgz invert's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--pipeline", default=None, help="a saved psp pipeline folder (default: pSp's architecture)")
    parser.add_argument("--refine-steps", type=int, default=0)
    parser.add_argument("--refine-batch", type=int, default=64)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import vgz
    from vgz.data.datasets import open_dataset
    from vgz.inversion import Refinement, invert_videos

    print(describe(args.device))
    with tempfile.TemporaryDirectory(prefix="vgz-bench-invert-") as tmp:
        shapes = open_dataset(f"synthetic:shapes?num_videos={args.videos}&num_frames={args.frames}", resolution=256)
        videos = Path(tmp) / "videos"
        for i in range(args.videos):
            frames = shapes.read_frames(i, list(range(args.frames))).float() / 255
            vgz.export_video(frames, videos / f"v{i}.mp4", fps=25)
        torch.manual_seed(0)
        if args.pipeline:
            pipe = vgz.VideoPipeline.from_pretrained(args.pipeline, device=args.device)
        else:
            pipe = vgz.create("pipeline", "psp", preset="paper").to(args.device)
        refine = Refinement(args.refine_steps, batch_size=args.refine_batch) if args.refine_steps else None
        res = pipe.synthesis.img_resolution
        print(f"pSp: encoder {pipe.encoder.num_parameters / 1e6:.1f} M parameters ({pipe.num_ws} W+ codes), "
              f"generator {res}x{res}; {args.videos} mp4 files of {args.frames} frames at 256x256"
              + (f"; refined, {args.refine_steps} steps" if refine else ""))
        start = time.perf_counter()
        report = invert_videos(pipe, videos, Path(tmp) / "latents", batch_size=args.batch_size, progress=False,
                               refine=refine)
        seconds = time.perf_counter() - start
        total = args.videos * args.frames
        print(f"vgz invert: {total} frames in {seconds:.1f} s = {total / seconds:.2f} frames/s "
              f"({len(report.written)} files); peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
