"""Peak memory of `vgz generate` against the number of seeds: 10 seeds vs 1000, one file per seed.

Runs the real command line in a fresh process for each seed count, with the built-in model (64x64
StyleGAN-V, `vgz/assets/shapes64`) by default:

    vgz generate MODEL -n 16 --seeds 0-<N-1> --out TMP/s{seed}.mp4 -q --device cpu [--batch-size B]

and reads that process's peak resident memory from the OS (``wait4``). Seeds are generated in
batches (``--batch-size``, one file writer per video of the batch), so the peak should not grow with
the number of seeds. The script checks that every file was written with its frame count, and prints
each peak, its time and the ratio of the largest to the smallest peak.

    python benchmarks/bench_generate_memory.py                      # 10 and 1000 seeds
    python benchmarks/bench_generate_memory.py --seeds 10 200 --batch-size 16
    python benchmarks/bench_generate_memory.py --seeds 32 --batch-size 1 4 16   # speed and memory per batch size
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

import vgz

BUILTIN = Path(vgz.__file__).parent / "assets" / "shapes64"


def run(model: str, out_dir: Path, num_seeds: int, num_frames: int, batch_size: int | None) -> tuple[float, float]:
    """Run `vgz generate` for seeds 0..num_seeds-1; returns (seconds, peak RSS in MiB) of that process alone."""
    cmd = [sys.executable, "-m", "vgz", "generate", model, "-n", str(num_frames), "--seeds", f"0-{num_seeds - 1}",
           "--out", str(out_dir / "s{seed}.mp4"), "--quiet", "--device", "cpu"]
    if batch_size is not None:
        cmd += ["--batch-size", str(batch_size)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def count_frames(path: Path) -> int:
    """Frames of a video file, by demuxing its packets (no decoding)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({model}), {memory:.0f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(BUILTIN), help="pipeline folder (default: the built-in model)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[10, 1000], help="seed counts to compare")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[None],
                        help="passed to vgz generate, one run per value (default: its own default)")
    args = parser.parse_args()

    import torch

    print(f"vgz {vgz.__version__}, torch {torch.__version__}, {machine()}; `vgz generate` on CPU")
    for batch_size in args.batch_size:
        peaks = []
        for num_seeds in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                seconds, peak = run(args.model, Path(tmp), num_seeds, args.num_frames, batch_size)
                files = sorted(Path(tmp).glob("s*.mp4"))
                assert len(files) == num_seeds, (len(files), num_seeds)
                assert count_frames(files[-1]) == args.num_frames
            print(f"batch size {batch_size or 'default'}: {num_seeds:5d} seeds x {args.num_frames} frames: "
                  f"{seconds:7.1f} s ({seconds / num_seeds:.2f} s/video), peak RSS {peak:7.1f} MiB")
            peaks.append(peak)
        if len(peaks) > 1:
            print(f"batch size {batch_size or 'default'}: peak memory, most seeds / fewest: {peaks[-1] / peaks[0]:.3f}")


if __name__ == "__main__":
    main()
