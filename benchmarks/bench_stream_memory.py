"""Peak memory of streaming generation: a 1-hour video against a 1-minute one, through `vgz generate`.

Saves a randomly initialised 64x64 StyleGAN-V pipeline (the released motion module, a narrow
synthesis network so that an hour of video takes minutes on a CPU), then runs the real command
line for each duration in a fresh process:

    vgz generate PIPE --num-frames N --fps 25 --out video.mp4 --chunk-size 64 -q

and reads that process's peak resident memory from the OS (``wait4``). Frames stream from the
generator to the encoder chunk by chunk, so the peak should not grow with the video's length.
The script prints both peaks and their ratio, and checks each file's frame count and size.

    python benchmarks/bench_stream_memory.py                # 1 min and 60 min at 25 fps
    python benchmarks/bench_stream_memory.py --minutes 1 10
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import torch

import vgz
from vgz.generators.stylegan2 import MappingConfig, MappingNetwork
from vgz.generators.styleganv import MotionConfig, MotionMappingNetwork, StyleGANVSynthesisConfig, StyleGANVSynthesisNetwork
from vgz.pipelines import StyleGANVPipeline


def build_pipeline(resolution: int) -> StyleGANVPipeline:
    torch.manual_seed(0)
    synthesis = StyleGANVSynthesisNetwork(StyleGANVSynthesisConfig(
        w_dim=128, img_resolution=resolution, channel_base=2048, channel_max=128, motion_v_dim=512))
    motion = MotionMappingNetwork(MotionConfig.from_preset("styleganv"))
    mapping = MappingNetwork(MappingConfig(z_dim=128, w_dim=128, num_ws=synthesis.num_ws, num_layers=2))
    return StyleGANVPipeline(mapping=mapping, motion=motion, synthesis=synthesis)


def run(folder: Path, out: Path, num_frames: int, chunk_size: int) -> tuple[float, float]:
    """Run `vgz generate`; returns (seconds, peak RSS in MiB) of that process alone."""
    cmd = [sys.executable, "-m", "vgz", "generate", str(folder), "--num-frames", str(num_frames), "--fps", "25",
           "--out", str(out), "--chunk-size", str(chunk_size), "--quiet", "--device", "cpu"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def count_frames(path: Path) -> tuple[int, int, int, float]:
    """(frames, width, height, fps) by demuxing packets (no decoding)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = sum(1 for p in container.demux(stream) if p.size)
        return packets, stream.width, stream.height, float(stream.average_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 60])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=64)
    args = parser.parse_args()

    print(f"vgz {vgz.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs; `vgz generate` on CPU")
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_pipeline(args.resolution).save_pretrained(Path(tmp) / "pipe")
        results = []
        for minutes in args.minutes:
            num_frames = round(minutes * 60 * 25)
            out = Path(tmp) / f"video_{minutes:g}min.mp4"
            seconds, peak = run(folder, out, num_frames, args.chunk_size)
            frames, width, height, fps = count_frames(out)
            assert (frames, width, height, fps) == (num_frames, args.resolution, args.resolution, 25), \
                (frames, width, height, fps)
            size = out.stat().st_size / 2**20
            print(f"{minutes:6g} min: {num_frames:7d} frames {width}x{height} @ {fps:g} fps in {seconds:7.1f} s "
                  f"({num_frames / seconds:6.0f} frames/s), file {size:7.1f} MiB, peak RSS {peak:7.1f} MiB")
            results.append(peak)
            out.unlink()
        if len(results) > 1:
            print(f"peak memory, longest / shortest: {results[-1] / results[0]:.3f}")


if __name__ == "__main__":
    main()
