"""Throughput of the metric detectors: clips/s through I3D (FVD), frames/s through Inception (FID).

    python benchmarks/bench_detectors.py                       # this machine's CPU (or its GPU)
    python benchmarks/bench_detectors.py --device cuda --clips 16
    python benchmarks/bench_detectors.py --videogpt /tmp/official/videogpt --pytorch-fid /tmp/official/pytorch-fid

Times, on random weights (speed does not depend on them), uint8 input of 16 frames at
``--size`` (resized to 224 inside, as FVD does):

* vgz's I3D (:class:`vgz.metrics.i3d.I3DDetector`, the port's network) and its TorchScript export
  called as StyleGAN-V calls ``i3d_torchscript.pt``;
* with ``--videogpt``, the reference: the VideoGPT/TATS port's own ``InceptionI3d`` after TATS's
  preprocessing, on the same weights (its output is checked to be the same);
* vgz's FID Inception, and with ``--pytorch-fid`` the reference pytorch-fid network.

It also prints what the full FVD16 protocol (2048 + 2048 clips) and FID (50k generated frames)
would spend in the detector at that rate.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import describe, peak_memory, time_fn  # noqa: E402

from vgz.metrics.detectors import TorchScriptDetector, randomize_  # noqa: E402
from vgz.metrics.i3d import I3DDetector, export_torchscript  # noqa: E402
from vgz.metrics.inception import InceptionDetector  # noqa: E402


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_i3d(root: Path, weights: dict, device: str):
    """The port's network (VideoGPT's pytorch_i3d.py) with our weights, and TATS's preprocessing."""
    port = load_module(root / "videogpt" / "fvd" / "pytorch_i3d.py", "official_pytorch_i3d")
    net = port.InceptionI3d(400, in_channels=3).to(device).eval()
    net.load_state_dict(weights)

    def run(clips):  # uint8 [B, T, C, H, W] -> logits; TATS fvd.preprocess then the port's forward
        b, t = clips.shape[:2]
        frames = clips.flatten(0, 1).float().contiguous()
        frames = F.interpolate(frames, size=(224, 224), mode="bilinear", align_corners=False)
        frames = 2.0 * frames / 255.0 - 1.0
        return net(frames.view(b, t, 3, 224, 224).transpose(1, 2).contiguous())

    return run


def official_inception(root: Path, weights: dict, device: str):
    sys.path.insert(0, str(root / "src"))
    from pytorch_fid.inception import InceptionV3  # noqa: PLC0415

    # pytorch-fid's FID blocks are built by fid_inception_v3(), which downloads weights: build it
    # without them and load ours (same names as the .pth file).
    module = sys.modules["pytorch_fid.inception"]
    original = module.load_state_dict_from_url
    module.load_state_dict_from_url = lambda *a, **k: weights
    try:
        net = InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True)
    finally:
        module.load_state_dict_from_url = original
    net = net.to(device).eval()
    return lambda images: net(images.float() / 255)[0].flatten(1)


def report(name: str, seconds: list[float], items: int, unit: str, memory: float | None) -> float:
    per = statistics.median(seconds)
    rate = items / per
    mem = f", peak {memory:.0f} MiB" if memory is not None else ""
    print(f"  {name:<34s} {rate:8.2f} {unit}/s  ({per * 1000:.0f} ms per {items} {unit}s{mem})")
    return rate


@torch.no_grad()
def compare(ours: dict, reference: tuple, batch: torch.Tensor, unit: str, iters: int, device: str) -> dict[str, float]:
    """Time vgz's detectors and the reference (if given) on ``batch``; print rates and the ratio."""
    runs = dict(ours)
    ref_name, ref_fn = reference
    first = next(iter(ours))
    if ref_fn is not None:
        diff = (ref_fn(batch) - ours[first](batch)).abs().max().item()
        print(f"  ({ref_name} vs {first}: max |difference| {diff:.2e})")
        runs[ref_name] = ref_fn
    rates = {name: report(name, time_fn(lambda: fn(batch), iters, 1, device), len(batch), unit,
                          peak_memory(lambda: fn(batch), device)) for name, fn in runs.items()}
    if ref_fn is not None:
        print(f"  vgz / reference: {rates[first] / rates[ref_name]:.2f}x")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clips", type=int, default=2, help="clips per batch (official: 8 at 256x256)")
    parser.add_argument("--frames", type=int, default=32, help="frames per Inception batch (official: 32)")
    parser.add_argument("--size", type=int, default=256, help="input frame size (resized inside)")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--videogpt", type=Path, help="a checkout of wilson1yan/VideoGPT (reference I3D)")
    parser.add_argument("--pytorch-fid", type=Path, help="a checkout of mseitzer/pytorch-fid (reference Inception)")
    parser.add_argument("--skip-inception", action="store_true")
    args = parser.parse_args()
    device = args.device
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation notices
    print(describe(device))
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    clips = torch.randint(0, 256, (args.clips, 16, 3, args.size, args.size), dtype=torch.uint8, generator=gen)
    clips = clips.to(device)
    i3d = randomize_(I3DDetector()).to(device)
    script_path = Path(f"/tmp/vgz-bench-i3d-{device}.pt")
    scripted = TorchScriptDetector(torch.jit.load(str(export_torchscript(i3d.cpu(), script_path)), map_location=device),
                                   "video").to(device)
    i3d = i3d.to(device)
    print(f"I3D, {args.clips} clips of 16 frames at {args.size}x{args.size} (FVD16 input), {device}:")
    reference = official_i3d(args.videogpt, i3d.net.state_dict(), device) if args.videogpt else None
    rates = compare({"vgz I3DDetector": i3d, "vgz TorchScript (StyleGAN-V call)": scripted},
                    ("reference: VideoGPT/TATS port", reference), clips, "clip", args.iters, device)
    best = max(rates["vgz I3DDetector"], rates["vgz TorchScript (StyleGAN-V call)"])
    print(f"  FVD16 protocol (4096 clips through I3D): {4096 / best / 60:.1f} min in the detector")

    if args.skip_inception:
        return
    images = torch.randint(0, 256, (args.frames, 3, args.size, args.size), dtype=torch.uint8, generator=gen).to(device)
    inception = randomize_(InceptionDetector()).to(device)
    print(f"Inception, {args.frames} frames at {args.size}x{args.size} (resized to 299), {device}:")
    reference = official_inception(args.pytorch_fid, inception.net.state_dict(), device) if args.pytorch_fid else None
    rates = compare({"vgz InceptionDetector": inception}, ("reference: pytorch-fid", reference), images, "frame",
                    args.iters, device)
    print(f"  FID generated side (50k frames through Inception): {50000 / rates['vgz InceptionDetector'] / 60:.1f} min")


if __name__ == "__main__":
    main()
