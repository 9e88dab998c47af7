"""Time one StyleGAN-V training iteration: vgz's trainer against the official universome/stylegan-v loop.

One iteration is what the official ``training_loop`` does per batch: ``Gmain`` (G through D with ADA,
non-saturating loss), ``Dmain`` (fake and real clips through ADA and D), every ``d_reg_interval`` = 16
iterations ``Dreg`` (R1 on real clips), every 4 iterations ``Greg`` (nothing for StyleGAN-V: path-length
regularization is off), the G_ema update and every 4 iterations the ADA heuristic. Both sides run the
same settings: the official ``cfg=auto`` hyper-parameters (lr 0.0025, betas (0, 0.99) scaled for lazy
regularization, r1_gamma = 0.0002 * res^2 / batch, ema_kimg = batch * 10 / 32, ADA 'bgc' with target 0.6)
and the released architecture (2-layer mapping, motion codes every 16 frames with a kernel-11 conv,
256 time frequencies, D joining 3 frames at 16x16, minibatch-std groups of 4), made narrow for a CPU:
``--channel-base`` 4096 and ``--channel-max`` 128 (the release: 16384 and 512). ADA starts at
``--augment-p`` 0.2 on both sides so that the augmentations run from the first step (at ``ada_kimg``
100 p moves by < 1e-3 over the timed iterations). On a CPU every layer runs in fp32 (num_fp16_res 0);
on a GPU ``--dtype fp16`` gives both sides the release's fp16 in the 4 highest resolutions and conv_clamp 256
(vgz's run-wide autocast, ``--vgz-mixed-precision``, stays off unless asked for).

The time per iteration is the mean over ``--iters`` consecutive iterations (16 by default: exactly one
Dreg, so its cost is averaged as the official schedule averages it) after ``--warmup`` iterations; the
CPU time of the process over the same iterations is printed beside it (less sensitive to other load on
the machine). clips/s = batch / (seconds per iteration). Memory: on CUDA the peak of
torch.cuda.max_memory_allocated over the timed iterations (per clip = peak / batch); on a CPU the
growth of the peak resident set (VmHWM, reset through /proc/self/clear_refs before the timed
iterations) over the resident set before them (per clip = growth / batch). Each side runs in its own
fresh process; ``--repeats N`` runs the sides round-robin N times and keeps each side's fastest run.
The seconds per part (data, each phase up to its optimizer step, EMA, ADA) are averaged over all timed
iterations, so 'Dreg ... (1x)' is already divided by 16.

Sides: ``official`` draws random uint8 clips with dataset-style frame times in memory (no data loader);
``vgz`` trains on ``synthetic:shapes`` clips (``--video-len`` frames per video) through its own data
loader with ``num_workers`` 0, so rendering and loading the clips is on the timed path; ``vgz-batch``
feeds vgz a few batches fetched beforehand (the trainer has no ``train_step(batch=...)``: the benchmark
replaces its ``_real_batch`` on the instance), the like-for-like comparison with ``official``.
On a CPU the official code runs its custom ops (bias_act, upfirdn2d) through their reference PyTorch
fallbacks, as it does on any machine without its compiled CUDA plugins.

    python benchmarks/bench_train_styleganv.py --official /path/to/stylegan-v   # needs omegaconf, scipy

The official code is not part of vgz; without ``--official`` only vgz is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any, Callable

import torch

from common import describe

RESULT_TAG = "BENCH_RESULT "


# ---------------------------------------------------------------------------------------------- memory

def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    """Reset the peak resident set (VmHWM) to the current one; False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class MemoryMeter:
    """Peak memory over a region, in MiB: the CUDA allocator's peak, or on a CPU the peak resident set.

    :meth:`checkpoint` returns the peak since the last checkpoint (and keeps the region's maximum), so
    parts of an iteration can be measured inside the region."""

    def __init__(self, device: str):
        self.device = device
        self.running = False

    def _reset(self) -> bool:
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            return True
        return _reset_hwm()

    def _peak(self) -> float:
        if self.device == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        hwm = _status_kib("VmHWM")
        if hwm is None:  # no /proc: the process peak (ru_maxrss is KiB on Linux)
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return hwm / 1024 if self.can_reset else max(hwm / 1024, self.peak_before)

    def start(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated() / 2**20
            self.peak_before = 0.0
        else:
            self.peak_before = (_status_kib("VmHWM") or 0) / 1024  # used where the peak cannot be reset
            self.base = (_status_kib("VmRSS") or 0) / 1024
        self.can_reset = self._reset()
        self.peak = 0.0
        self.running = True

    def checkpoint(self) -> float:
        peak = self._peak()
        self.peak = max(self.peak, peak)
        self._reset()
        return peak

    def stop(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
        self.checkpoint()
        self.running = False
        self.growth = self.peak - self.base

    def per_clip(self, batch: int) -> float:
        return (self.peak if self.device == "cuda" else self.growth) / batch


class Probe:
    """Seconds and peak memory (growth over the region's start) of each part of an iteration.

    A side's step calls :meth:`begin` at the start of an iteration and :meth:`part` at the end of each
    part (data, each phase after its optimizer step, EMA and ADA). On CUDA the parts are synchronized
    (timed) only with ``--breakdown``; the memory per part needs no synchronization."""

    def __init__(self, device: str, sync_parts: bool):
        self.meter = MemoryMeter(device)
        self.sync = torch.cuda.synchronize if device == "cuda" and sync_parts else (lambda: None)
        self.times: dict[str, float] = {}
        self.mem: dict[str, float] = {}

    def begin(self) -> None:
        self.sync()
        self.times = {}
        self.t = time.perf_counter()

    def part(self, name: str) -> None:
        self.sync()
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self.t
        self.t = now
        if self.meter.running:
            self.mem[name] = max(self.mem.get(name, 0.0), self.meter.checkpoint() - self.meter.base)


# ---------------------------------------------------------------------------------------------- sides

def official_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The hyper-parameters both sides run with (official names)."""
    fp16 = args.device == "cuda" and args.dtype == "fp16"
    res, batch = args.resolution, args.batch
    return dict(
        resolution=res, batch_size=batch, batch_gpu=args.batch_gpu or batch, num_frames=args.num_frames,
        z_dim=args.z_dim, w_dim=args.z_dim, motion_z_dim=args.z_dim, motion_v_dim=args.z_dim, time_enc_dim=256,
        mapping_layers=2, channel_base=args.channel_base, channel_max=args.channel_max,
        num_fp16_res=4 if fp16 else 0, conv_clamp=256, mbstd_group_size=4,
        r1_gamma=0.0002 * res ** 2 / batch, lr=0.0025, betas=(0.0, 0.99), g_reg_interval=4, d_reg_interval=16,
        # src/train.py: with `resume: ~` its `not c.resume in {'noresume', 'latest'}` is true, so the released
        # runs have ada_kimg 100 and no EMA ramp-up.
        ema_kimg=batch * 10 / 32, ema_rampup=None, augpipe="bgc", augment_p=args.augment_p, ada_target=0.6,
        ada_interval=4, ada_kimg=100,
    )


def vgz_overrides(args: argparse.Namespace, s: dict[str, Any]) -> dict[str, Any]:
    """vgz recipe overrides (vgz/training/recipes.py names) equal to the official settings."""
    keep = ("resolution", "batch_size", "batch_gpu", "num_frames", "z_dim", "w_dim", "motion_z_dim", "motion_v_dim",
            "time_enc_dim", "mapping_layers", "channel_base", "channel_max", "num_fp16_res", "conv_clamp",
            "mbstd_group_size", "r1_gamma", "lr", "betas", "g_reg_interval", "d_reg_interval", "ema_kimg",
            "ema_rampup", "augpipe", "augment_p", "ada_target", "ada_interval", "ada_kimg")
    ov = {k: s[k] for k in keep}
    ov.update(augment="ada", pl_weight=0.0, style_mixing_prob=0.0, max_dist=32, max_num_frames=1024,
              motion_z_distance=16.0, motion_kernel_size=11, min_period_len=16.0, max_period_len=1024.0,
              concat_res=16, num_frames_div_factor=2, time_embed_dim=256, discriminator="styleganv",
              xflip=True, conv_clamp=float(s["conv_clamp"]), betas=tuple(s["betas"]))
    return ov


def run_official(args: argparse.Namespace) -> dict[str, Any]:
    from official_styleganv_train import OfficialTrainer, import_official_training

    mods = import_official_training(args.official)
    s = official_settings(args)
    trainer = OfficialTrainer(mods, **s, video_len=args.video_len, device=args.device, seed=args.seed,
                              phase_sync=args.breakdown)
    g_params, d_params = trainer.num_parameters
    probe = Probe(args.device, args.breakdown)

    def step() -> dict[str, float]:
        probe.begin()
        trainer.step(on_part=probe.part)
        return probe.times

    result = time_side(args, step, probe)
    result.update(params=dict(G=g_params, D=d_params), augment_p=trainer.augment_p,
                  settings=trainer.describe())
    return result


def run_vgz(args: argparse.Namespace, with_batches: bool) -> dict[str, Any]:
    from vgz.training import build_trainer

    s = official_settings(args)
    tmp = tempfile.TemporaryDirectory(prefix="vgz-bench-train-")
    mixed = args.vgz_mixed_precision
    trainer = build_trainer(recipe="styleganv", preset="tiny", data=f"synthetic:shapes?num_frames={args.video_len}",
                            outdir=tmp.name, overrides=vgz_overrides(args, s),
                            run_overrides=dict(mixed_precision=mixed, num_workers=0, seed=args.seed,
                                               cpu=args.device == "cpu"))
    if str(trainer.device).split(":")[0] != args.device:
        raise SystemExit(f"vgz trains on {trainer.device}, not {args.device}")
    params = {name: sum(p.numel() for p in trainer.accelerator.unwrap_model(net).parameters())
              for name, net in (("G", trainer.G), ("D", trainer.D))}
    probe = Probe(args.device, args.breakdown)
    step = instrument_vgz(trainer, probe, with_batches)
    result = time_side(args, step, probe)
    result.update(params=params, steps=int(trainer.step))
    if trainer.augment_pipe is not None:
        result["augment_p"] = float(trainer.augment_pipe.p)
    tmp.cleanup()
    return result


def instrument_vgz(trainer: Any, probe: Probe, with_batches: bool) -> Callable[[], dict[str, float]]:
    """``train_step`` reporting its parts to ``probe``: 'data' (the real clips from the loader), each phase
    (up to its optimizer step) and 'ema+ada'. With ``with_batches`` the real clips come from a few
    batches fetched beforehand (data loading left out, as on the official side).

    The trainer has no ``train_step(batch=...)``; this wraps its ``_real_batch`` and the optimizers'
    ``step`` on the instance (the benchmark only observes: the step itself is unchanged)."""
    fetch = trainer._real_batch
    if with_batches:
        batches = [fetch() for _ in range(4 * trainer.rounds)]
        cursor = iter(range(10**12))

        def real_batch() -> dict[str, torch.Tensor]:
            out = batches[next(cursor) % len(batches)]
            probe.part("data")
            return out
    else:
        def real_batch() -> dict[str, torch.Tensor]:
            out = fetch()
            probe.part("data")
            return out

    trainer._real_batch = real_batch
    due: list[str] = []
    for opt in (trainer.opt_G, trainer.opt_D):
        def timed_step(*a: Any, _inner: Callable[..., Any] = opt.step, **kw: Any) -> Any:
            out = _inner(*a, **kw)
            probe.part(due.pop(0) if due else "phase?")
            return out
        opt.step = timed_step

    def step() -> dict[str, float]:
        due[:] = [p.name for p in trainer.phases if trainer.step % p.interval == 0]
        probe.begin()
        trainer.train_step()
        probe.part("ema+ada")
        return probe.times

    return step


def time_side(args: argparse.Namespace, step: Callable[[], dict[str, float]], probe: Probe) -> dict[str, Any]:
    """Warm up, then time ``--iters`` consecutive iterations under the probe's memory meter."""
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - start
    per_iter, parts = [], []
    mem = probe.meter
    mem.start()
    cpu_start = time.process_time()
    for _ in range(args.iters):
        start = time.perf_counter()
        parts.append(dict(step()))
        sync()
        per_iter.append(time.perf_counter() - start)
    cpu_s = time.process_time() - cpu_start
    mem.stop()
    timed_parts = args.device == "cpu" or args.breakdown
    return dict(s_per_iter=sum(per_iter) / len(per_iter), per_iter=per_iter, median=statistics.median(per_iter),
                cpu_s_per_iter=cpu_s / args.iters, warmup_s=warmup_s, peak_mib=mem.peak, base_mib=mem.base,
                growth_mib=mem.growth, per_clip_mib=mem.per_clip(args.batch), parts=parts if timed_parts else [],
                mem_parts=probe.mem)


def run_side(args: argparse.Namespace) -> None:
    warnings.filterwarnings("ignore", message=".*gradfix not supported.*")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.side == "official":
        result = run_official(args)
    else:
        result = run_vgz(args, with_batches=args.side == "vgz-batch")
    result["describe"] = describe(args.device)
    print(RESULT_TAG + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------- driver

def spawn(side: str, argv: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--side", side]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
    return dict(failed=f"exit {proc.returncode}: " + "\n    ".join(tail))


def summarize_parts(parts: list[dict[str, float]], mem: dict[str, float]) -> str:
    """Mean milliseconds per iteration of each part (a phase due every k-th iteration averaged over all of
    them, with how many iterations ran it) and each part's peak memory growth (MiB)."""
    names: list[str] = []
    for p in parts:
        names += [k for k in p if k not in names]
    names += [k for k in mem if k not in names]
    cells = []
    for k in names:
        vals = [p[k] for p in parts if k in p]
        cell = f"{k}"
        if vals:
            cell += f" {sum(vals) / len(parts) * 1e3:.0f} ms" + (f" ({len(vals)}/{len(parts)})" if len(vals) < len(parts)
                                                                 else "")
        if k in mem:
            cell += f" [{mem[k]:.0f} MiB]"
        cells.append(cell)
    return ", ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", help="checkout of universome/stylegan-v (reference)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8, help="clips per iteration")
    parser.add_argument("--batch-gpu", type=int, default=None, help="clips per round (default: --batch)")
    parser.add_argument("--num-frames", type=int, default=3, help="frames per clip")
    parser.add_argument("--channel-base", type=int, default=4096)
    parser.add_argument("--channel-max", type=int, default=128)
    parser.add_argument("--z-dim", type=int, default=512, help="z, w, motion z and motion v dimensions")
    parser.add_argument("--augment-p", type=float, default=0.2, help="initial ADA probability (both sides)")
    parser.add_argument("--video-len", type=int, default=256,
                        help="frames per training video (vgz: synthetic:shapes?num_frames=N; official: the length "
                             "its real and generated frame times are drawn from)")
    parser.add_argument("--iters", type=int, default=16, help="timed iterations (16: one Dreg)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "fp16"], default="fp16",
                        help="GPU only: fp16 in the 4 highest resolutions (official num_fp16_res=4) or all fp32")
    parser.add_argument("--vgz-mixed-precision", choices=["no", "fp16", "bf16"], default="no",
                        help="vgz RunConfig.mixed_precision (Accelerate autocast) on top of the fp16 blocks; 'no' "
                             "matches the official precision (fp16 only in the num_fp16_res blocks)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--breakdown", action="store_true", help="CUDA: synchronize after each official phase")
    parser.add_argument("--sides", default="official,vgz,vgz-batch", help="comma-separated sides to run")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every side this many times, round-robin, and keep each side's fastest run")
    parser.add_argument("--side", choices=["official", "vgz", "vgz-batch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_side(args)
        return

    argv = sys.argv[1:]
    sides = [s for s in args.sides.split(",") if s]
    if not args.official:
        sides = [s for s in sides if s != "official"]
    dtype = args.dtype if args.device == "cuda" else "fp32"
    s = official_settings(args)
    print(f"StyleGAN-V training step {args.resolution}x{args.resolution}, batch {args.batch} clips of "
          f"{args.num_frames} frames, channel_base {args.channel_base}, channel_max {args.channel_max}, "
          f"z/w/motion {args.z_dim}, {dtype} (num_fp16_res {s['num_fp16_res']}"
          f"{', vgz autocast ' + args.vgz_mixed_precision if args.vgz_mixed_precision != 'no' else ''}), r1_gamma {s['r1_gamma']:.4g}, "
          f"ADA bgc p0 {args.augment_p}, Dreg every 16, mean of {args.iters} iterations after {args.warmup}")
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for _ in range(args.repeats):  # round-robin, so that load from other processes hits every side alike
        for side in sides:
            runs[side].append(spawn(side, argv))
    # each side's fastest run (the least disturbed one); failures only where every run failed
    results = {side: min((r for r in rs if "s_per_iter" in r), key=lambda r: r["s_per_iter"], default=rs[-1])
               for side, rs in runs.items()}
    print(next((r["describe"] for r in results.values() if "describe" in r), describe(args.device)))
    print(f"{'side':10s} {'s/iter':>8s} {'median':>8s} {'CPU s':>7s} {'clips/s':>8s} {'peak MiB':>9s} "
          f"{'growth':>7s} {'MiB/clip':>9s}  params G/D")
    for side in sides:
        r = results[side]
        if "s_per_iter" not in r:
            print(f"{side:10s} {r.get('failed') or 'skipped: ' + str(r.get('skipped'))}")
            continue
        params = r.get("params", {})
        ps = "/".join(f"{v / 1e6:.2f}M" if v else "?" for v in (params.get("G"), params.get("D")))
        print(f"{side:10s} {r['s_per_iter']:8.3f} {r['median']:8.3f} {r['cpu_s_per_iter']:7.2f} "
              f"{args.batch / r['s_per_iter']:8.2f} {r['peak_mib']:9.0f} {r['growth_mib']:7.0f} "
              f"{r['per_clip_mib']:9.1f}  {ps}")
    for side in sides:
        r = results[side]
        if r.get("parts") or r.get("mem_parts"):
            print(f"  {side}: {summarize_parts(r.get('parts', []), r.get('mem_parts', {}))}" +
                  (f"; ADA p after {r['augment_p']:.4f}" if "augment_p" in r else ""))
        if args.repeats > 1:
            print(f"  {side} s/iter of every run: " +
                  ", ".join(f"{x['s_per_iter']:.3f}" if "s_per_iter" in x else "failed" for x in runs[side]))
    off = results.get("official")
    for side in ("vgz", "vgz-batch"):
        r = results.get(side)
        if off and r and "s_per_iter" in off and "s_per_iter" in r:
            key = "peak_mib" if args.device == "cuda" else "growth_mib"
            print(f"official/{side}: speed {off['s_per_iter'] / r['s_per_iter']:.2f}x (> 1: vgz faster; CPU time "
                  f"{off['cpu_s_per_iter'] / r['cpu_s_per_iter']:.2f}x), memory "
                  f"{'peak' if args.device == 'cuda' else 'RSS growth'} "
                  f"{off[key] / max(r[key], 1e-9):.2f}x (> 1: vgz smaller)")


if __name__ == "__main__":
    main()
