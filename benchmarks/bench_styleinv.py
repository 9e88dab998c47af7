"""Time StyleInV: vgz's pipeline and training losses against johannwyh/StyleInV (@30f3802).

Two measurements, both sides on the same machine with the same weights and inputs:

1. **Generation**: one video of ``--frames`` (16) frames at 256x256 with the paper's networks (configs/ffs.yaml:
   an NVlabs StyleGAN2 256x256 generator, z/w 512, 8 mapping layers, channel_base 16384, channel_max 512,
   conv_clamp 256, fp32 layers on a CPU; the IR-SE50 modulated encoder; motion z/v 512, a code every 16
   frames, 256 time frequencies with periods 16..128, 128-frame windows). The official path is what
   ``training/logging.py::generate_videos`` does for one video, plus the mapping of z it is given:
   ``wc = G.mapping(z)``, ``x = G.synthesis(wc, noise_mode='const')``, ``codes = SI(x, wc[:, 0],
   motion_z, ts, run_parallel=True)`` with ``ts = arange(T) / 127`` ``[1, T, 1]``, then
   ``G.synthesis(codes broadcast over num_ws, noise_mode='const')`` mapped to [0, 1]. vgz's path is
   ``StyleInVPipeline(1, T, z=z, motion_z=motion_z, noise_mode='const')`` (x0 and the encoder's layers
   before the first AdaIN block once per video). Both under ``no_grad``, eval mode. Printed: seconds per
   video (median of ``--iters`` calls after one warm-up, the sides interleaved so that load from other
   processes falls on both alike), official / vgz time (> 1: vgz is faster), the largest difference of
   the frames in [0, 1], and a breakdown of each side's time (one call, parts timed separately).

2. **Training step**: ``--train-batch`` (2) clips of 4 frames at ``--train-resolution`` (128: the same
   networks with a 128x128 generator and discriminator, so that a step fits in about a minute of a small
   CPU). The official side is ``training/loss_styleinv.py::StyleInVLoss.accumulate_gradients`` with
   ffs.yaml's loss settings (first-frame MSE 10, w regularisation 0.05, adversarial 1, r1_gamma 1, no
   augmentation, frame 0 replaced by x0); vgz's is :class:`vgz.training.recipes.styleinv.StyleInVRecipe`'s
   ``g_main`` and the ``StyleGAN2Loss.d_main``/``d_r1`` it schedules, called with a
   :class:`~vgz.training.losses.PhaseContext` as the trainer calls them. The networks: the trained ``SI``
   (temporal style + modulated encoder, train mode: batch-statistics BatchNorm) over the frozen generator
   of (1), and StyleGAN-V's discriminator as ``train_styleinv.py`` builds it (``training.networks_sgv``,
   ffs.yaml's ``discriminator.cfg``, channel_base 16384, channel_max 512, minibatch-std groups of 8,
   conv_clamp 256). Each phase is forward + backward with the trained network's ``requires_grad`` on, as
   both training loops do it (no optimizer step: the weights stay the same); a step is SImain + Dmain,
   Dreg (R1, every 16 steps, gain 16) is timed alone. Phases are interleaved (each phase of each side in
   turn), medians of ``--train-iters`` (``--dreg-iters`` for Dreg) after one warm-up of each. Each side
   draws its own frame times and noise, so the losses are compared for size, not equality; D's logits
   of the same real clips are compared exactly.

Every time is printed as wall time and as this process's CPU time: on a shared machine other processes
lengthen the first, much less the second.

Weights: every parameter, BatchNorm statistic and ``G.mapping.w_avg`` is
``tests/fixtures/seeded_weights.seeded_tensor`` of its official name (prefixes ``SI.``, ``G.``, ``D.``; the
StyleInV parity fixture's rule), the other buffers as the official constructors make them; vgz's modules
take the official state dicts by name (the names are the same). The official code is imported and shimmed
as ``tests/fixtures/make_styleinv_fixture.py`` does (its missing ``motion_fuse`` module, the pSp pickle
loading, the CUDA plugins); its loss additionally needs ``sys.modules['sampling']`` and ``random`` in
``training/sampling.py`` (docs/notes/styleinv-official-code.md, section 5). On a CPU the official custom
ops run their reference PyTorch fallbacks.

    python benchmarks/bench_styleinv.py --styleinv /path/to/StyleInV \\
        --torch-utils /path/to/stylegan2-ada-pytorch [--extra-path /tmp/offsite] --threads 2

(``--torch-utils``: the folder holding NVlabs' ``torch_utils/``; ``--extra-path``: where ``omegaconf`` is,
when the environment lacks it.) Without ``--styleinv`` only vgz is timed. ``--skip-generate`` /
``--skip-train`` leave a measurement out.
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import describe, peak_memory, time_fn  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES))
from seeded_weights import seeded_tensor  # noqa: E402

MAX_NUM_FRAMES = 128
BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


# ----------------------------------------------------------------------------- configurations (ffs.yaml)

def official_kwargs(resolution: int, num_fp16_res: int) -> dict[str, Any]:
    """Constructor arguments of the official SI, G and D (plain data) at ``resolution``."""
    import make_styleinv_fixture as fx

    mapping_opts = copy.deepcopy(fx.MAPPING_OPTS)  # the fixture's, with ffs.yaml's motion sizes back
    mapping_opts["motion"].update(z_dim=512, v_dim=512, motion_z_distance=16, kernel_size=11)
    mapping_opts["motion"]["time_enc"].update(dim=256, min_period_len=16, max_period_len=MAX_NUM_FRAMES)
    si = dict(mapping_opts=mapping_opts, encoder_opts=copy.deepcopy(fx.ENCODER_OPTS), **fx.SI_KWARGS)
    g = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
             mapping_kwargs=dict(num_layers=8),
             synthesis_kwargs=dict(channel_base=16384, channel_max=512, num_fp16_res=num_fp16_res, conv_clamp=256))
    d = dict(c_dim=0, img_resolution=resolution, img_channels=3, block_kwargs={}, mapping_kwargs=dict(num_layers=2),
             epilogue_kwargs=dict(mbstd_group_size=8), channel_base=16384, channel_max=512,
             num_fp16_res=num_fp16_res, conv_clamp=256)
    return {"si": si, "g": g, "d": d, "d_cfg": copy.deepcopy(fx.D_CFG), "g_sampling": copy.deepcopy(fx.G_SAMPLING),
            "real_sampling": copy.deepcopy(fx.REAL_SAMPLING)}


class Official:
    """The official modules, imported once (shimmed as the parity fixture's script does)."""

    def __init__(self, styleinv: Path, torch_utils: Path, extra_paths: list[Path]):
        import make_styleinv_fixture as fx

        self.fx = fx
        self.OmegaConf, self.networks, self.networks_sgv, self.networks_styleinv = fx.import_official(
            styleinv, torch_utils, extra_paths)

    def loss_module(self):
        """``training.loss_styleinv`` (it imports ``sampling`` as a top-level module; ``training/sampling.py``
        uses ``random`` without importing it)."""
        import training.sampling

        training.sampling.random = random
        sys.modules["sampling"] = training.sampling
        from training import loss_styleinv

        return loss_styleinv

    def build(self, kw: dict[str, Any], with_d: bool) -> dict[str, torch.nn.Module]:
        """SI, G (and D), seeded as the parity fixture seeds them."""
        C = self.OmegaConf.create
        torch.manual_seed(0)
        si = self.networks_styleinv.StyleInV(mapping_opts=C(copy.deepcopy(kw["si"]["mapping_opts"])),
                                             encoder_opts=C(copy.deepcopy(kw["si"]["encoder_opts"])),
                                             **{k: v for k, v in kw["si"].items() if not k.endswith("_opts")})
        torch.manual_seed(0)
        G = self.networks.Generator(**copy.deepcopy(kw["g"]))
        nets = {"SI": si, "G": G}
        if with_d:
            torch.manual_seed(0)
            nets["D"] = self.networks_sgv.Discriminator(cfg=C(copy.deepcopy(kw["d_cfg"])), **copy.deepcopy(kw["d"]))
        for name, net in nets.items():
            self.fx.seed(net, f"{name}.", ("mapping.w_avg",) if name == "G" else ())
        return nets


def seed_vgz(module: torch.nn.Module, prefix: str, extra: tuple[str, ...] = ()) -> None:
    """Without the official code: the fixture's seeding rule on vgz's (identical) names."""
    params = {k for k, _ in module.named_parameters()}
    state = module.state_dict()
    for key, value in state.items():
        if key in params or key.rsplit(".", 1)[-1] in BN_STATS or key in extra:
            state[key] = seeded_tensor(prefix + key, tuple(value.shape)).to(value.dtype)
    module.load_state_dict(state)


def vgz_networks(kw: dict[str, Any], official: dict[str, torch.nn.Module] | None, with_d: bool):
    """vgz's mapping, synthesis, temporal style, encoder (and D), configured by vgz's converters from the
    official constructor arguments and loaded with the official state dicts (or seeded alike)."""
    from vgz.conversion.stylegan2_ada import generator_configs, split_state
    from vgz.conversion.styleinv import split_si_state, styleinv_configs, styleinv_discriminator_config
    from vgz.discriminators.styleganv import StyleGANVDiscriminator
    from vgz.encoders.styleinv import ModulatedEncoder
    from vgz.generators.stylegan2 import MappingNetwork, SynthesisNetwork
    from vgz.generators.styleinv import TemporalStyle

    mapping_cfg, synthesis_cfg = generator_configs(kw["g"])
    motion_cfg, encoder_cfg, pipe_cfg = styleinv_configs(kw["si"], synthesis_cfg.img_resolution)
    nets = {"mapping": MappingNetwork(mapping_cfg), "synthesis": SynthesisNetwork(synthesis_cfg),
            "motion": TemporalStyle(motion_cfg), "encoder": ModulatedEncoder(encoder_cfg)}
    if with_d:
        nets["D"] = StyleGANVDiscriminator(styleinv_discriminator_config({**kw["d"], "cfg": kw["d_cfg"]}))
    if official is not None:
        g_state, si_state = official["G"].state_dict(), official["SI"].state_dict()
        motion_state, encoder_state = split_si_state(si_state)
        states = {"mapping": split_state(g_state, "mapping"), "synthesis": split_state(g_state, "synthesis"),
                  "motion": motion_state, "encoder": encoder_state}
        if with_d:
            states["D"] = official["D"].state_dict()
        for name, state in states.items():
            nets[name].load_weights(state, source=f"official {name}")
    else:
        for name, prefix in (("mapping", "G.mapping."), ("synthesis", "G.synthesis."), ("motion", "SI.mapping."),
                             ("encoder", "SI.encoder."), ("D", "D.")):
            if name in nets:
                seed_vgz(nets[name], prefix, ("w_avg",) if name == "mapping" else ())
    return nets, pipe_cfg


def median(times: list[float]) -> float:
    return statistics.median(times)


def timed(fn: Callable[[], Any], device: str) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call. On a shared CPU the CPU time is the steadier
    figure: other processes lengthen the wall time, not (much) this process's CPU time."""
    cpu = time.process_time()
    wall = time_fn(fn, 1, 0, device)[0]
    return wall, time.process_time() - cpu


def timed_parts(parts: list[tuple[str, Callable[[], Any]]], device: str) -> dict[str, float]:
    """Run the steps in order (each may use the previous ones' results through closures), timing each."""
    out = {}
    for name, fn in parts:
        out[name] = time_fn(fn, 1, 0, device)[0]
    return out


# ----------------------------------------------------------------------------- 1. generation

def bench_generate(args, official: Official | None) -> None:
    from vgz.pipelines.styleinv import StyleInVPipeline

    kw = official_kwargs(256, args.num_fp16_res)
    off = official.build(kw, with_d=False) if official else None
    nets, pipe_cfg = vgz_networks(kw, off, with_d=False)
    pipe = StyleInVPipeline(pipe_cfg, **nets).eval().to(args.device)
    T = args.frames
    g = torch.Generator().manual_seed(1)
    z = torch.randn([1, 512], generator=g)
    t = torch.arange(T, dtype=torch.float32)
    L = pipe.motion.num_codes(float(t.max()))
    motion_z = torch.randn([1, L, pipe.motion.config.z_dim], generator=g)
    z, motion_z, t = z.to(args.device), motion_z.to(args.device), t.to(args.device)
    sizes = ", ".join(f"{name} {getattr(pipe, name).num_parameters / 1e6:.1f} M"
                      for name in ("mapping", "synthesis", "motion", "encoder"))
    print(f"\n1. generation: one video of {T} frames at 256x256 (num_ws {pipe.synthesis.num_ws}, motion codes {L}); "
          f"parameters: {sizes}")

    def run_vgz():
        return pipe(1, T, z=z, motion_z=motion_z, noise_mode="const").frames[0]

    runs: dict[str, Callable[[], torch.Tensor]] = {"vgz": run_vgz}
    if off is not None:
        SI, G = off["SI"].eval().to(args.device), off["G"].eval().to(args.device)
        ts = (t / (MAX_NUM_FRAMES - 1)).view(1, T, 1)

        def run_official():  # training/logging.py::generate_videos for one video (+ the mapping of z)
            wc = G.mapping(z, None)
            x = G.synthesis(wc, noise_mode="const")
            codes = SI(x, wc[:, 0], motion_z, ts, run_parallel=True, return_temporal_style=False)
            out = G.synthesis(codes.unsqueeze(1).repeat([1, wc.shape[1], 1]), noise_mode="const")
            return (out * 0.5 + 0.5).clamp(0, 1)

        runs["official"] = run_official
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    with torch.no_grad():
        outputs = {name: fn() for name, fn in runs.items()}  # also the warm-up
        for _ in range(args.iters):  # interleaved, one call of each in turn
            for name, fn in runs.items():
                times[name].append(timed(fn, args.device))
        wall = {name: median([w for w, _ in v]) for name, v in times.items()}
        cpu = {name: median([c for _, c in v]) for name, v in times.items()}
        for name, fn in runs.items():
            mem = peak_memory(fn, args.device)
            print(f"  {name:9s} {wall[name]:8.2f} s/video  {T / wall[name]:6.2f} frames/s  (median of {args.iters}: "
                  f"{', '.join(f'{w:.2f}' for w, _ in times[name])}; process CPU time {cpu[name]:.2f} s)"
                  + (f", peak {mem:.0f} MiB" if mem else ""))
        if off is not None:
            diff = (outputs["vgz"] - outputs["official"]).abs().max().item()
            moves = (outputs["official"][1:] - outputs["official"][:1]).abs().max().item()
            print(f"  official / vgz time: {wall['official'] / wall['vgz']:.2f}x (CPU time "
                  f"{cpu['official'] / cpu['vgz']:.2f}x)   max |vgz - official| (frames in [0, 1]): {diff:.3g}  "
                  f"(frames move from frame 0 by up to {moves:.3g})")

        # Where the time goes: the same computations, part by part (one call each).
        state: dict[str, Any] = {}
        n = pipe.synthesis.num_ws
        vparts = [
            ("mapping", lambda: state.__setitem__("ws", pipe.mapping(z, None, skip_w_avg_update=True))),
            ("x0 synthesis", lambda: state.__setitem__("x0", pipe.synthesis(state["ws"], noise_mode="const"))),
            ("encoder prefix (once)", lambda: state.__setitem__("prefix", pipe.encoder.encode_prefix(state["x0"]))),
            ("temporal style", lambda: state.__setitem__(
                "s", pipe.motion(t[None], state["ws"][:, 0], motion_z=motion_z))),
            (f"encoder rest ({T} frames)", lambda: state.__setitem__(
                "codes", pipe.encoder.forward_prefix(state["prefix"], state["s"]) + state["ws"][:, :1])),
            (f"frame synthesis ({T})", lambda: state.__setitem__(
                "frames", pipe.synthesis(repeat(state["codes"][0], "t d -> t n d", n=n), noise_mode="const"))),
        ]
        parts = {"vgz": timed_parts(vparts, args.device)}
        if off is not None:
            ost: dict[str, Any] = {}
            oparts = [
                ("mapping", lambda: ost.__setitem__("wc", G.mapping(z, None))),
                ("x0 synthesis", lambda: ost.__setitem__("x", G.synthesis(ost["wc"], noise_mode="const"))),
                ("temporal style", lambda: ost.__setitem__("s", SI.mapping(ost["wc"][:, 0], motion_z, ts,
                                                                           run_parallel=True))),
                (f"encoder, all ({T} frames)", lambda: ost.__setitem__(
                    "codes", SI.encoder(ost["x"].repeat(T, 1, 1, 1), ost["s"]) + ost["wc"][:, 0])),
                (f"frame synthesis ({T})", lambda: ost.__setitem__(
                    "frames", G.synthesis(ost["codes"].unsqueeze(1).repeat([1, n, 1]), noise_mode="const"))),
            ]
            parts["official"] = timed_parts(oparts, args.device)
        for name, p in parts.items():
            total = sum(p.values())
            print(f"  {name} breakdown (one call, {total:.2f} s): " +
                  ", ".join(f"{k} {v:.2f} s ({100 * v / total:.0f}%)" for k, v in p.items()))


# ----------------------------------------------------------------------------- 2. training step

def smooth_clips(batch: int, frames: int, resolution: int, seed: int) -> torch.Tensor:
    """Real-like clips in [-1, 1], ``[B, T, 3, R, R]`` (bicubic upsampling of 8x8 noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand([batch * frames, 3, 8, 8], generator=g) * 2 - 1
    hi = F.interpolate(low, size=(resolution, resolution), mode="bicubic", align_corners=False).clamp(-1, 1)
    return hi.view(batch, frames, 3, resolution, resolution)


def bench_train(args, official: Official | None) -> None:
    import numpy as np

    from vgz.data.sampling import sample_frame_indices
    from vgz.training.losses import PhaseContext
    from vgz.training.recipes.styleinv import StyleInVGenerator, StyleInVRecipe, StyleInVRecipeConfig

    R, B, T, dev = args.train_resolution, args.train_batch, 4, args.device
    kw = official_kwargs(R, args.num_fp16_res)
    off = official.build(kw, with_d=True) if official else None
    nets, _ = vgz_networks(kw, off, with_d=True)
    mapping = nets["mapping"].eval().requires_grad_(False).to(dev)
    synthesis = nets["synthesis"].eval().requires_grad_(False).to(dev)
    G = StyleInVGenerator(nets["motion"], nets["encoder"]).train().requires_grad_(False).to(dev)
    D = nets["D"].train().requires_grad_(False).to(dev)
    recipe = StyleInVRecipe(StyleInVRecipeConfig(
        resolution=R, batch_size=B, num_frames=T, max_dist=32, max_num_frames=MAX_NUM_FRAMES, r1_gamma=1.0,
        num_fp16_res=args.num_fp16_res, conv_clamp=256, mbstd_group_size=8, augment="noaug", noise_mode="const"))
    recipe.mapping, recipe.synthesis, recipe.augment_pipe = mapping, synthesis, None
    phases = {p.name: p for p in recipe.phases()}  # Gmain (g_main), Dmain, Dreg of StyleGAN2Loss
    sampling = recipe.sampling()
    rng = np.random.default_rng(0)
    zgen = torch.Generator().manual_seed(3)

    real_frames = smooth_clips(B, T, R, 2).to(dev)
    real_t = torch.tensor(np.stack([sample_frame_indices(MAX_NUM_FRAMES, sampling, rng) for _ in range(B)]),
                          dtype=torch.float32, device=dev)  # frames, frame 0 first
    real = {"frames": real_frames, "c": torch.zeros([B, 0], device=dev), "t": real_t}

    def grad(output, inputs):
        return torch.autograd.grad(output, inputs, create_graph=True)[0]

    vgz_stats: dict[str, list[torch.Tensor]] = {}

    def vgz_phase(name: str) -> Callable[[], None]:
        phase = phases[{"SImain": "Gmain"}.get(name, name)]
        net = {"G": G, "D": D}[phase.network]

        def run():
            gen = {"z": torch.randn([B, 512], generator=zgen).to(dev), "c": torch.zeros([B, 0], device=dev),
                   "t": torch.tensor(np.stack([sample_frame_indices(MAX_NUM_FRAMES, sampling, rng, fractional=True)
                                               for _ in range(B)]), dtype=torch.float32, device=dev)}
            for p in net.parameters():
                p.grad = None
            net.requires_grad_(True)
            ctx = PhaseContext(nets={"G": G, "D": D}, real=real, gen=gen, grad=grad, stats=vgz_stats)
            (phase.loss(ctx) * phase.interval).backward()
            net.requires_grad_(False)
        return run

    runs: dict[str, dict[str, Callable[[], None]]] = {"vgz": {p: vgz_phase(p) for p in ("SImain", "Dmain", "Dreg")}}
    off_stats: dict[str, list[torch.Tensor]] = {}
    if off is not None:
        loss_mod = official.loss_module()

        class Recorder:  # stands in for torch_utils.training_stats inside loss_styleinv (values kept, not synced)
            @staticmethod
            def report(name, value):
                off_stats.setdefault(name, []).append(torch.as_tensor(value).detach().float().reshape(-1))
                return value

        loss_mod.training_stats = Recorder
        C = official.OmegaConf.create
        SI = off["SI"].train().requires_grad_(False).to(dev)
        Goff = off["G"].eval().requires_grad_(False).to(dev)
        Doff = off["D"].train().requires_grad_(False).to(dev)
        loss = loss_mod.StyleInVLoss(
            dev, G_mapping=Goff.mapping, G_synthesis=Goff.synthesis, SI=SI, D=Doff, augment_pipe=None,
            D_type="stylegan-v", g_sampling_cfg=C(kw["g_sampling"]), real_sampling_cfg=C(kw["real_sampling"]),
            num_ws=Goff.synthesis.num_ws, mutual_recon=False, first_frame_recon=True, first_frame_in_D=True,
            first_frame_use_gen=False, run_g_parallel=True, r1_gamma=1.0, lambda_adv=1, lambda_mutual=0,
            lambda_recon=10, lambda_w_reg=0.05, noise_mode="const")
        # training_loop_styleinv.py's inputs: real clips [b, (t c), h, w] in [-1, 1], times [b, t, 1] / 127.
        off_real = rearrange(real_frames, "b t c h w -> b (t c) h w")
        off_real_ts = (real_t / (MAX_NUM_FRAMES - 1)).unsqueeze(-1)
        random.seed(0)

        def official_phase(name: str) -> Callable[[], None]:
            module = SI if name == "SImain" else Doff
            gain = 16 if name == "Dreg" else 1  # D_reg_interval 16

            def run():
                zc = torch.randn([B, 512], generator=zgen).to(dev)
                for p in module.parameters():
                    p.grad = None
                module.requires_grad_(True)  # as training_loop_styleinv.py around each phase
                loss.accumulate_gradients(phase=name, real_imgs=off_real, real_ts=off_real_ts, gen_zc=zc, gen_zm=None,
                                          sync=True, gain=gain)
                module.requires_grad_(False)
            return run

        runs["official"] = {p: official_phase(p) for p in ("SImain", "Dmain", "Dreg")}

    print(f"\n2. training: {B} clips x {T} frames at {R}x{R} (generator, encoder input and D at {R}x{R}; "
          f"SI {sum(p.numel() for p in G.parameters()) / 1e6:.1f} M, D {D.num_parameters / 1e6:.1f} M parameters)")
    if off is not None:  # the same D: the same logits for the same real clips
        with torch.no_grad():
            lv = D(real_frames, None, real_t).reshape(-1)
            lo = Doff(rearrange(real_frames, "b t c h w -> (b t) c h w"), off_real_ts.squeeze(-1)).reshape(-1)
        print(f"  D(real clips): max |vgz - official| {(lv - lo).abs().max().item():.3g} (logits {lo.tolist()})")
    phase_iters = {"SImain": args.train_iters, "Dmain": args.train_iters, "Dreg": args.dreg_iters}
    phase_iters = {p: n for p, n in phase_iters.items() if n > 0}
    if not phase_iters:
        return
    for r in runs.values():  # warm-up
        for phase in phase_iters:
            r[phase]()
    vgz_stats.clear()
    off_stats.clear()
    times = {side: {p: [] for p in phase_iters} for side in runs}
    for i in range(max(phase_iters.values())):  # interleaved: each phase of each side in turn
        for phase, n in phase_iters.items():
            for side, r in runs.items():
                if i < n:
                    times[side][phase].append(timed(r[phase], dev))
    wall = {side: {p: median([w for w, _ in v]) for p, v in ph.items()} for side, ph in times.items()}
    cpu = {side: {p: median([c for _, c in v]) for p, v in ph.items()} for side, ph in times.items()}
    for side in runs:
        w, c = wall[side], cpu[side]
        line = []
        if "SImain" in w:
            step, step_cpu = w["SImain"] + w["Dmain"], c["SImain"] + c["Dmain"]
            line.append(f"{step:7.2f} s/step = SImain {w['SImain']:.2f} + Dmain {w['Dmain']:.2f} (medians of "
                        f"{args.train_iters}; process CPU time {step_cpu:.2f} s), {B / step:.3f} clips/s")
        if "Dreg" in w:
            line.append(f"Dreg alone {w['Dreg']:.2f} s (CPU {c['Dreg']:.2f} s, median of {args.dreg_iters})")
        print(f"  {side:9s} " + "; ".join(line))
    if "official" in runs:
        o, v, oc, vc = wall["official"], wall["vgz"], cpu["official"], cpu["vgz"]
        ratios = [f"{p} {o[p] / v[p]:.2f}x (CPU {oc[p] / vc[p]:.2f}x)" for p in phase_iters]
        if "SImain" in o:
            ratio = (o["SImain"] + o["Dmain"]) / (v["SImain"] + v["Dmain"])
            ratio_cpu = (oc["SImain"] + oc["Dmain"]) / (vc["SImain"] + vc["Dmain"])
            ratios.insert(0, f"step {ratio:.2f}x (CPU time {ratio_cpu:.2f}x)")
        print("  official / vgz time: " + ", ".join(ratios))

    def mean(stats, key, scale=1.0):
        v = stats.get(key)
        return float(torch.cat(v).mean()) * scale if v else float("nan")

    cfg = recipe.config
    rows = {"vgz": [mean(vgz_stats, "loss/G/adv", cfg.lambda_adv), mean(vgz_stats, "loss/G/recon", cfg.lambda_recon),
                    mean(vgz_stats, "loss/G/wreg", cfg.lambda_wreg), mean(vgz_stats, "loss/D"),
                    mean(vgz_stats, "r1_penalty", cfg.r1_gamma_value() / 2)]}
    if off_stats:
        rows["official"] = [mean(off_stats, key) for key in ("Loss/G/adv", "Loss/G/recon", "Loss/G/wreg", "Loss/D/loss",
                                                             "Loss/D/reg")]
    for side, r in rows.items():
        timed_terms = [i for i, p in enumerate(("SImain",) * 3 + ("Dmain", "Dreg")) if p in phase_iters]
        assert all(math.isfinite(r[i]) for i in timed_terms), f"{side}: non-finite losses {r}"
        print(f"  {side:9s} losses (weighted, means over the timed phases): G adv {r[0]:.4g}, recon {r[1]:.4g}, "
              f"wreg {r[2]:.4g}; D {r[3]:.4g}; R1 gamma/2 * penalty {r[4]:.4g}")
    if len(rows) == 2 and "Dreg" in phase_iters:
        print(f"  (R1 on the same real clips: official / vgz {rows['official'][4] / rows['vgz'][4]:.3g}: both sum the {T} "
              "frames' squared gradient norms, the recipe's r1_frames='sum')")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styleinv", type=Path, help="a checkout of johannwyh/StyleInV @30f3802 (reference)")
    parser.add_argument("--torch-utils", type=Path, default=None,
                        help="the folder holding NVlabs/stylegan2-ada-pytorch's torch_utils/ (with --styleinv)")
    parser.add_argument("--extra-path", type=Path, action="append", default=None,
                        help="folders appended to sys.path for omegaconf (default /tmp/offsite when it exists)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--frames", type=int, default=16, help="frames of the generated video")
    parser.add_argument("--iters", type=int, default=3, help="timed videos per side")
    parser.add_argument("--train-resolution", type=int, default=128)
    parser.add_argument("--train-batch", type=int, default=2, help="clips per training step")
    parser.add_argument("--train-iters", type=int, default=3, help="timed SImain and Dmain phases per side (0: none)")
    parser.add_argument("--dreg-iters", type=int, default=1, help="timed Dreg (R1) phases per side (0: none)")
    parser.add_argument("--num-fp16-res", type=int, default=None,
                        help="fp16 resolutions of G and D (default: 0 on a CPU, the release's 4 on a GPU)")
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.num_fp16_res is None:
        args.num_fp16_res = 0 if args.device == "cpu" else 4
    official = None
    if args.styleinv:
        if args.torch_utils is None:
            parser.error("--styleinv needs --torch-utils (the folder holding NVlabs' torch_utils/)")
        official = Official(args.styleinv, args.torch_utils, args.extra_path or [Path("/tmp/offsite")])
    print(describe(args.device))
    if not args.skip_generate:
        bench_generate(args, official)
    if not args.skip_train:
        bench_train(args, official)


if __name__ == "__main__":
    main()
