"""Time StyleGAN-V video generation: vgz against the official universome/stylegan-v generator.

One video of 16 frames at 256x256 (the released config: 2-layer mapping, z/w 512, channel_base
16384, motion codes every 16 frames, 256 time frequencies). Both generators get the same weights
(the official state dict converted with ``vgz.conversion.styleganv``), the same z, times and
motion noise. The script prints time per video and frames/s for each, the ratio (official / vgz:
> 1 means vgz is faster) and the largest output difference; on a GPU also the peak memory.

vgz's fast path is the default one: every layer modulates its weights once per video and runs
the video's frames as one conv batch (the official code builds the same weights once per frame).
``--channels-last``, ``--dtype bf16|fp16`` (GPU) and ``--compile`` try the other options.

    python benchmarks/bench_styleganv_generate.py --official /path/to/stylegan-v   # needs omegaconf

The official code is not part of vgz; without ``--official`` only vgz is timed.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
from typing import Any

import torch

from common import describe, peak_memory, time_fn
from vgz.conversion.styleganv import generator_configs, split_generator_state
from vgz.generators.stylegan2 import MappingNetwork
from vgz.generators.styleganv import MotionMappingNetwork, StyleGANVSynthesisNetwork

# The resolved `cfg.model.generator` of the released StyleGAN-V (configs/model/stylegan-v.yaml).
CFG = dict(
    source="networks", use_noise=False, w_dim=512, z_dim=512, c_dim=0, input=dict(type="temporal"),
    motion=dict(time_enc={}, z_dim=512, v_dim=512, motion_z_distance=16, gen_strategy="conv", kernel_size=11,
                use_fractional_t=True, fourier=True),
    time_enc=dict(cond_type="concat_const", dim=256, min_period_len=16, max_period_len=1024, phase_dropout_std=1.0),
    sampling=dict(name="random3_max32", fps=25, max_num_frames=1024, num_frames_per_video=3, type="random",
                  total_dists=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048], max_dist=32),
)


def register_built_extensions() -> None:
    """Shim so that the official code finds the CUDA plugins it builds on current PyTorch.

    Its ``custom_ops.get_plugin`` builds each plugin with ``torch.utils.cpp_extension.load`` and then
    imports it by name. Older PyTorch registered the built module in ``sys.modules``; current PyTorch
    returns it without doing so, so the import fails ("No module named 'bias_act_plugin'", seen on an
    H200 with torch 2.11) and the official code runs its slow PyTorch fallbacks. This registers what
    ``load`` returns, under its name. Idempotent."""
    from torch.utils import cpp_extension

    if getattr(cpp_extension.load, "_vgz_registers", False):
        return
    load = cpp_extension.load

    def load_and_register(name: str, *args: Any, **kwargs: Any) -> Any:
        module = load(name, *args, **kwargs)
        if module is not None and not isinstance(module, str):
            sys.modules.setdefault(name, module)
        return module

    load_and_register._vgz_registers = True  # type: ignore[attr-defined]
    cpp_extension.load = load_and_register


def import_official(path: str):
    """Import the official ``training.networks`` (its CUDA ops fall back to PyTorch on CPU; on a GPU
    they build with nvcc, found through :func:`register_built_extensions`)."""
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "src", "training", "networks.py")):
        raise SystemExit(f"--official {path!r} is not a universome/stylegan-v checkout (no src/training/networks.py)")
    sys.dont_write_bytecode = True
    sys.path[:0] = [path, os.path.join(path, "src")]
    register_built_extensions()
    from omegaconf import OmegaConf
    from src.torch_utils.ops import conv2d_gradfix

    conv2d_gradfix.enabled = False
    from training import networks

    return networks, OmegaConf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", help="checkout of universome/stylegan-v (reference)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--num-fp16-res", type=int, default=0, help="fp16 blocks (GPU only; 4 in the release)")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="vgz: run everything in it")
    parser.add_argument("--channels-last", action="store_true", help="vgz: channels-last memory format")
    parser.add_argument("--compile", action="store_true", help="vgz: torch.compile the synthesis network")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device

    init_kwargs = dict(c_dim=0, w_dim=512, img_resolution=args.resolution, img_channels=3,
                       mapping_kwargs=dict(num_layers=2),
                       synthesis_kwargs=dict(channel_base=16384, channel_max=512, num_fp16_res=args.num_fp16_res,
                                             conv_clamp=256))
    torch.manual_seed(0)
    official = None
    if args.official:
        networks, OmegaConf = import_official(args.official)
        cfg = OmegaConf.create(copy.deepcopy(CFG))
        kwargs = copy.deepcopy(init_kwargs)
        kwargs["mapping_kwargs"]["cfg"] = cfg
        official = networks.Generator(**kwargs, cfg=cfg).eval().requires_grad_(False)
        state = {k: v.clone() for k, v in official.state_dict().items()}
    mapping_cfg, motion_cfg, synthesis_cfg = generator_configs(init_kwargs, CFG)
    mapping, motion = MappingNetwork(mapping_cfg), MotionMappingNetwork(motion_cfg)
    synthesis = StyleGANVSynthesisNetwork(synthesis_cfg)
    if official is not None:
        for net, sd in zip((mapping, motion, synthesis), split_generator_state(state)):
            net.load_weights(sd, source="official generator")
        official.to(device)
    for net in (mapping, motion, synthesis):
        net.eval().requires_grad_(False).to(device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    if dtype != torch.float32:
        synthesis.to(dtype)
    if args.channels_last:
        synthesis.to(memory_format=torch.channels_last)
    run_synthesis = torch.compile(synthesis) if args.compile else synthesis

    gen = torch.Generator().manual_seed(1)
    z = torch.randn([1, 512], generator=gen).to(device)
    c = torch.zeros([1, 0], device=device)
    t = torch.arange(args.num_frames, dtype=torch.float32).unsqueeze(0).to(device)
    motion_z = motion.sample_motion_z(1, t.max().item(), gen).to(device)

    def run_ours() -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
            ws = mapping(z, skip_w_avg_update=True)
            return run_synthesis(ws.to(dtype), motion(t, motion_z=motion_z).to(dtype), noise_mode="const")[0]

    def run_official() -> torch.Tensor:
        with torch.no_grad():
            return official(z, c, t, motion_z=motion_z, noise_mode="const")

    print(describe(device))
    print(f"StyleGAN-V generator {args.resolution}x{args.resolution}, {args.num_frames} frames, num_fp16_res "
          f"{args.num_fp16_res}, vgz dtype {args.dtype}{', channels_last' if args.channels_last else ''}"
          f"{', compiled' if args.compile else ''}, "
          f"{sum(n.num_parameters for n in (mapping, motion, synthesis)) / 1e6:.1f} M parameters")

    def report(name: str, fn) -> float:
        seconds = statistics.median(time_fn(fn, args.iters, args.warmup, device))
        mem = peak_memory(fn, device)
        print(f"{name:9s} {seconds * 1e3:8.1f} ms/video  {args.num_frames / seconds:7.1f} frames/s (median of "
              f"{args.iters})" + (f", peak {mem:.0f} MiB" if mem is not None else ""))
        return seconds

    s_ours = report("vgz:", run_ours)
    if official is None:
        print("official: not timed (pass --official PATH)")
        return
    s_off = report("official:", run_official)
    ours, theirs = run_ours().float(), run_official().float()
    diff = (ours - theirs).abs().max().item()
    print(f"speed ratio official/vgz: {s_off / s_ours:.2f}x   max |vgz - official|: {diff:.3g} "
          f"(outputs span +-{theirs.abs().max().item():.3g}; {diff / theirs.abs().max().item():.2g} relative)")


if __name__ == "__main__":
    main()
