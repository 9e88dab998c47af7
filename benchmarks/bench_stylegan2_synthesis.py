"""Time the StyleGAN2 synthesis forward pass: vgz against NVlabs' StyleGAN2-ADA.

Both networks get the same weights (the official state dict, loaded into vgz by name) and the
same ws; the script prints time per image for each, the ratio (official / vgz: > 1 means vgz
is faster) and the largest output difference.

The official code is not part of vgz: pass a checkout of NVlabs/stylegan2-ada-pytorch with
``--official``. Without it only vgz is timed.

    python benchmarks/bench_stylegan2_synthesis.py --official /path/to/stylegan2-ada-pytorch
    python benchmarks/bench_stylegan2_synthesis.py --device cuda --official ...   # on a GPU

Defaults: the StyleGAN2-ADA "paper256" generator (channel_base 16384, channel_max 512, 256x256,
14 ws), fp32 everywhere (``--num-fp16-res`` turns on fp16 blocks on a GPU), batch 4, noise "const".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch

from common import describe, peak_memory, time_fn
from vgz.generators.stylegan2 import SynthesisNetwork


def import_official(path: str):
    """Import ``training.networks`` from an official checkout (its CUDA ops fall back to PyTorch on CPU)."""
    if not os.path.isfile(os.path.join(path, "training", "networks.py")):
        raise SystemExit(f"--official {path!r} is not a stylegan2-ada-pytorch checkout (no training/networks.py)")
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.abspath(path))
    from torch_utils.ops import conv2d_gradfix  # noqa: F401

    from training import networks

    return networks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", help="checkout of NVlabs/stylegan2-ada-pytorch (reference)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--channel-base", type=int, default=16384)
    parser.add_argument("--channel-max", type=int, default=512)
    parser.add_argument("--num-fp16-res", type=int, default=0)
    parser.add_argument("--conv-clamp", type=float, default=None)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device

    torch.manual_seed(0)
    ours = SynthesisNetwork(w_dim=512, img_resolution=args.resolution, channel_base=args.channel_base,
                            channel_max=args.channel_max, num_fp16_res=args.num_fp16_res,
                            conv_clamp=args.conv_clamp).eval().requires_grad_(False)
    official = None
    if args.official:
        networks = import_official(args.official)
        official = networks.SynthesisNetwork(w_dim=512, img_resolution=args.resolution, img_channels=3,
                                             channel_base=args.channel_base, channel_max=args.channel_max,
                                             num_fp16_res=args.num_fp16_res, conv_clamp=args.conv_clamp)
        official = official.eval().requires_grad_(False)
        ours.load_weights({k: v.clone() for k, v in official.state_dict().items()}, source="official network")
        official.to(device)
    ours.to(device)

    ws = torch.randn(args.batch, ours.num_ws, 512, generator=torch.Generator().manual_seed(1)).to(device)

    def run_ours():
        with torch.no_grad():
            return ours(ws, noise_mode="const")

    def run_official():
        with torch.no_grad():
            return official(ws, noise_mode="const")

    print(describe(device))
    print(f"synthesis {args.resolution}x{args.resolution}, channel_base {args.channel_base}, "
          f"channel_max {args.channel_max}, num_fp16_res {args.num_fp16_res}, batch {args.batch}, "
          f"{ours.num_parameters / 1e6:.1f} M parameters")

    t_ours = time_fn(run_ours, args.iters, args.warmup, device)
    ms_ours = statistics.median(t_ours) / args.batch * 1e3
    mem_ours = peak_memory(run_ours, device)
    print(f"vgz:      {ms_ours:8.1f} ms/image (median of {args.iters})"
          + (f", peak {mem_ours:.0f} MiB" if mem_ours is not None else ""))
    if official is None:
        print("official: not timed (pass --official PATH)")
        return
    t_off = time_fn(run_official, args.iters, args.warmup, device)
    ms_off = statistics.median(t_off) / args.batch * 1e3
    mem_off = peak_memory(run_official, device)
    print(f"official: {ms_off:8.1f} ms/image (median of {args.iters})"
          + (f", peak {mem_off:.0f} MiB" if mem_off is not None else ""))
    diff = (run_ours().float() - run_official().float()).abs().max().item()
    print(f"speed ratio official/vgz: {ms_off / ms_ours:.2f}x   max |vgz - official|: {diff:.3g}")


if __name__ == "__main__":
    main()
