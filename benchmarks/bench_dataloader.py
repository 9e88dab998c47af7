"""Data-loader throughput alone (no model): clips per second through `make_dataloader`.

Sources, all read as StyleGAN-V clips (k=3 frames, spans up to 32) in batches of 16:

* ``shapes-64``, ``shapes-256``: the procedural ``synthetic:shapes`` dataset at 64 and 256 pixels;
* ``mp4-decord``, ``mp4-av``: a folder of real H.264 mp4 videos (written first into a temporary
  folder with vgz's VideoWriter from shapes frames: 16 videos of 128 frames at 256x256, crf 18,
  x264's default keyframe interval) read with decord and with PyAV;
* ``zip-png``: the same frames as a zip (stored) of per-video PNG folders (StyleGAN-V's format).

For each, with 0, 1 and 2 loader workers: a few warm-up batches (worker start-up excluded), then
``--batches`` timed batches. Prints one table of clips/s.

    python benchmarks/bench_dataloader.py
    python benchmarks/bench_dataloader.py --workers 0 4 8 --batches 50
    python benchmarks/bench_dataloader.py --threads 1      # one torch thread in the main process
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import torch

from common import describe
from vgz.data.datasets import make_dataloader, open_dataset
from vgz.data.sampling import ClipSamplingConfig, InfiniteClipSampler
from vgz.data.video import VideoWriter


def write_sources(folder: Path, num_videos: int, num_frames: int, resolution: int) -> tuple[Path, Path]:
    """``folder/videos/*.mp4`` and ``folder/frames.zip`` holding the same shapes videos."""
    from PIL import Image

    shapes = open_dataset(f"synthetic:shapes?num_videos={num_videos}&num_frames={num_frames}", resolution=resolution)
    videos = folder / "videos"
    archive = folder / "frames.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for v in range(num_videos):
            with VideoWriter(videos / f"video{v:03d}.mp4", fps=25) as writer:
                for start in range(0, num_frames, 32):
                    chunk = shapes.read_frames(v, range(start, min(start + 32, num_frames)))
                    writer.write(chunk)
                    for i, image in enumerate(chunk.permute(0, 2, 3, 1).numpy()):
                        buffer = io.BytesIO()
                        Image.fromarray(image).save(buffer, format="png", compress_level=1)
                        zf.writestr(f"video{v:03d}/{start + i:06d}.png", buffer.getvalue())
    return videos, archive


def measure(dataset, workers: int, batch_size: int, batches: int, warmup: int) -> float:
    """Clips per second over ``batches`` batches after ``warmup``."""
    loader = make_dataloader(dataset, batch_size=batch_size, sampler=InfiniteClipSampler(len(dataset), seed=0),
                             num_workers=workers)
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
    seconds = time.perf_counter() - start
    assert batch["frames"].shape[:2] == (batch_size, 3), batch["frames"].shape
    del it, loader  # stops the workers
    return batches * batch_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--num-videos", type=int, default=16)
    parser.add_argument("--num-frames", type=int, default=128)
    parser.add_argument("--sources", nargs="+", default=["shapes-64", "shapes-256", "mp4-decord", "mp4-av", "zip-png"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads of the main process "
                        "(default: torch's; workers use 1 each)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(describe("cpu"), f"| {os.cpu_count()} CPUs | batch {args.batch}, k=3 frames per clip")
    sampling = ClipSamplingConfig.from_preset("styleganv")
    with tempfile.TemporaryDirectory() as tmp:
        if any(not s.startswith("shapes") for s in args.sources):
            start = time.perf_counter()
            videos, archive = write_sources(Path(tmp), args.num_videos, args.num_frames, 256)
            size = sum(p.stat().st_size for p in videos.iterdir()) / 2**20
            print(f"wrote {args.num_videos} mp4 videos of {args.num_frames} frames at 256x256 ({size:.1f} MiB) and "
                  f"a PNG zip ({archive.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - start:.1f} s")
        rows = []
        for source in args.sources:
            if source.startswith("shapes-"):
                res = int(source.split("-")[1])
                dataset = open_dataset(f"synthetic:shapes?num_videos={args.num_videos}&num_frames={args.num_frames}",
                                       resolution=res, sampling=sampling)
            elif source.startswith("mp4-"):
                dataset = open_dataset(videos, resolution=256, sampling=sampling, backend=source.split("-")[1])
            elif source == "zip-png":
                dataset = open_dataset(archive, resolution=256, sampling=sampling)
            else:
                raise SystemExit(f"unknown source {source!r}")
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a decode failure must not pass silently in a benchmark
                rates = [measure(dataset, w, args.batch, args.batches, args.warmup) for w in args.workers]
            rows.append((source, rates))
            print(f"  {source}: " + ", ".join(f"{r:.0f}" for r in rates), flush=True)
    header = f"{'source':<12}" + "".join(f"{f'{w} workers':>12}" for w in args.workers)
    print("\nclips/s (k=3 frames each)")
    print(header)
    print("-" * len(header))
    for source, rates in rows:
        print(f"{source:<12}" + "".join(f"{r:>12.0f}" for r in rates))


if __name__ == "__main__":
    main()
