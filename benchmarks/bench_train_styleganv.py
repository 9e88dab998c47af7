"""Time one StyleGAN-V training iteration: vgz's trainer against the official universome/stylegan-v loop.

One iteration is what the official ``training_loop`` does per batch: ``Gmain`` (G through D with ADA,
non-saturating loss), ``Dmain`` (fake and real clips through ADA and D), every ``d_reg_interval`` = 16
iterations ``Dreg`` (R1 on real clips), every 4 iterations ``Greg`` (nothing for StyleGAN-V: path-length
regularization is off; vgz leaves the phase out), the G_ema update and every 4 iterations the ADA
heuristic. Both sides run the same settings: the official ``cfg=auto`` hyper-parameters (lr 0.0025, betas
(0, 0.99) scaled for lazy regularization, r1_gamma = 0.0002 * res^2 / batch, ema_kimg = batch * 10 / 32,
ADA 'bgc' with target 0.6) and the released architecture (2-layer mapping, motion codes every 16 frames
with a kernel-11 conv, 256 time frequencies, D joining 3 frames at 16x16, minibatch-std groups of 4),
made narrow for a CPU: ``--channel-base`` 4096 and ``--channel-max`` 128 (the release: 16384 and 512).
Both sides then have the same parameter counts. ADA starts at ``--augment-p`` 0.2 on both sides so that
the augmentations run from the first step (with the official ``ada_kimg`` 100 p moves by < 0.002 over
the run). On a CPU every layer runs in fp32 (num_fp16_res 0); on a GPU ``--dtype fp16`` gives both
sides the release's fp16 in the 4 highest resolutions and conv_clamp 256 (vgz's run-wide autocast,
``--vgz-mixed-precision``, stays off unless asked for).

Sides: ``official`` draws random uint8 clips with dataset-style frame times in memory (no data loader);
``vgz`` trains on ``synthetic:shapes`` clips (``--video-len`` frames per video) through its own data
loader with ``num_workers`` 0, so rendering and loading the clips is on the timed path; ``vgz-batch``
feeds vgz a few batches fetched beforehand (the trainer has no ``train_step(batch=...)``: the benchmark
replaces its ``_real_batch`` on the instance), the like-for-like comparison with ``official``.
On a CPU the official code runs its custom ops (bias_act, upfirdn2d) through their reference PyTorch
fallbacks; on a GPU it builds its CUDA plugins during the warm-up (needs ninja and nvcc, else the same
fallbacks with a warning), and its steps run under what ``training_loop`` sets (cuDNN autotuning, no
TF32), vgz's under PyTorch's defaults, also when the sides are interleaved in one process.

Timing: seconds per iteration are the mean over ``--iters`` consecutive iterations (16 by default:
exactly one Dreg, so its cost is averaged as the official schedule averages it) after ``--warmup``
ones; clips/s = batch / (seconds per iteration). By default the sides are timed in one process, one
iteration of each in turn (``interleaved``), so that load from other processes on the machine falls on
all sides alike and the ratios stay meaningful on a shared machine; the process CPU time per iteration
is printed beside the wall time. Memory is measured with each side alone in a fresh process: on CUDA
the peak of torch.cuda.max_memory_allocated over the timed iterations (per clip = peak / batch); on a
CPU the peak resident set (VmHWM, reset through /proc/self/clear_refs before the timed iterations)
minus the resident set before them (per clip = that growth / batch). Those CPU runs set glibc's
``MALLOC_MMAP_THRESHOLD_`` (fixed, not adaptive) so that freed tensors go back to the OS at once and
the resident set follows the live tensors: the growth is then the iteration's working set, the same
from run to run (with the adaptive threshold it depends on what the heap kept from the warm-up); this
slows those runs, so their times are not used. ``--mode alone`` times each side alone instead (with the
normal allocator; ``--repeats N`` keeps each side's fastest of N runs), ``--mode interleaved`` skips the
memory runs. The per-part lines give the mean milliseconds per iteration of data, each phase (up to its
optimizer step) and EMA + ADA, a phase due every k-th iteration averaged over all of them ("(1/16)"),
and in brackets each part's peak memory growth over the same base.

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
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from common import describe

RESULT_TAG = "BENCH_RESULT "
SIDES = ("official", "vgz", "vgz-batch")


# ---------------------------------------------------------------------------------------------- memory

def _status_kib(key: str) -> int | None:
    """A /proc/self/status entry in KiB (VmRSS, VmHWM), None without /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
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
    """vgz recipe overrides (vgz/training/recipes/ names) equal to the official settings."""
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


@dataclass
class Side:
    """A built side: ``step()`` runs one training iteration and returns its parts' seconds."""

    name: str
    step: Callable[[], dict[str, float]]
    probe: "Probe"
    info: Callable[[], dict[str, Any]]
    cleanup: Callable[[], None] = field(default=lambda: None)
    trainer: Any = None  # vgz's Trainer, on the vgz sides


def _backend_flags() -> dict[str, bool]:
    return dict(benchmark=torch.backends.cudnn.benchmark, cudnn_tf32=torch.backends.cudnn.allow_tf32,
                matmul_tf32=torch.backends.cuda.matmul.allow_tf32)


def _set_backend_flags(flags: dict[str, bool]) -> None:
    """Each side runs under its own cuDNN / TF32 settings (they are process-wide; interleaved sides share it)."""
    torch.backends.cudnn.benchmark = flags["benchmark"]
    torch.backends.cudnn.allow_tf32 = flags["cudnn_tf32"]
    torch.backends.cuda.matmul.allow_tf32 = flags["matmul_tf32"]


def make_official(args: argparse.Namespace) -> Side:
    from official_styleganv_train import OfficialTrainer, import_official_training

    mods = import_official_training(args.official)
    before = _backend_flags()
    trainer = OfficialTrainer(mods, **official_settings(args), video_len=args.video_len, device=args.device,
                              seed=args.seed)
    flags = _backend_flags()  # what training_loop() sets: cuDNN autotuning, no TF32
    _set_backend_flags(before)
    probe = Probe(args.device, args.breakdown)

    def step() -> dict[str, float]:
        saved = _backend_flags()
        _set_backend_flags(flags)
        try:
            probe.begin()
            trainer.step(on_part=probe.part)
        finally:
            _set_backend_flags(saved)
        return probe.times

    def info() -> dict[str, Any]:
        g, d = trainer.num_parameters
        return dict(params=dict(G=g, D=d), augment_p=trainer.augment_p, settings=trainer.describe())

    return Side("official", step, probe, info)


def make_vgz(args: argparse.Namespace, with_batches: bool) -> Side:
    from vgz.training import build_trainer

    tmp = tempfile.TemporaryDirectory(prefix="vgz-bench-train-")
    trainer = build_trainer(recipe="styleganv", preset="tiny", data=f"synthetic:shapes?num_frames={args.video_len}",
                            outdir=tmp.name, overrides=vgz_overrides(args, official_settings(args)),
                            run_overrides=dict(mixed_precision=args.vgz_mixed_precision, num_workers=0,
                                               seed=args.seed, cpu=args.device == "cpu"))
    if trainer.device.type != args.device:
        raise SystemExit(f"vgz trains on {trainer.device}, not {args.device}")
    probe = Probe(args.device, args.breakdown)
    step = instrument_vgz(trainer, probe, with_batches)

    def info() -> dict[str, Any]:
        params = {name: sum(p.numel() for p in trainer.accelerator.unwrap_model(net).parameters())
                  for name, net in (("G", trainer.G), ("D", trainer.D))}
        p = float(trainer.augment_pipe.p) if trainer.augment_pipe is not None else 0.0
        return dict(params=params, augment_p=p, steps=int(trainer.step))

    return Side("vgz-batch" if with_batches else "vgz", step, probe, info, tmp.cleanup, trainer)


def make_side(args: argparse.Namespace, name: str) -> Side:
    torch.manual_seed(args.seed)
    return make_official(args) if name == "official" else make_vgz(args, with_batches=name == "vgz-batch")


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


def _sync(args: argparse.Namespace) -> None:
    if args.device == "cuda":
        torch.cuda.synchronize()


def _timed(args: argparse.Namespace, side: Side) -> tuple[float, float, dict[str, float]]:
    """(wall seconds, process CPU seconds, parts) of one iteration."""
    cpu, start = time.process_time(), time.perf_counter()
    parts = dict(side.step())
    _sync(args)
    return time.perf_counter() - start, time.process_time() - cpu, parts


def _summary(args: argparse.Namespace, wall: list[float], cpu: list[float], parts: list[dict[str, float]],
             side: Side) -> dict[str, Any]:
    timed_parts = args.device == "cpu" or args.breakdown  # CUDA parts are launch times unless synchronized
    return dict(s_per_iter=sum(wall) / len(wall), median=statistics.median(wall), per_iter=wall,
                cpu_s_per_iter=sum(cpu) / len(cpu), parts=parts if timed_parts else [], **side.info())


def measure_alone(args: argparse.Namespace, side: Side) -> dict[str, Any]:
    """Warm up, then ``--iters`` iterations under the side's memory meter."""
    for _ in range(args.warmup):
        side.step()
    _sync(args)
    mem = side.probe.meter
    mem.start()
    runs = [_timed(args, side) for _ in range(args.iters)]
    mem.stop()
    result = _summary(args, [r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs], side)
    result.update(peak_mib=mem.peak, base_mib=mem.base, growth_mib=mem.growth, per_clip_mib=mem.per_clip(args.batch),
                  mem_parts=side.probe.mem)
    return result


def measure_interleaved(args: argparse.Namespace, sides: list[Side]) -> dict[str, dict[str, Any]]:
    """Warm every side up, then run ``--iters`` rounds of one iteration per side (in turn, order rotating)."""
    for side in sides:
        for _ in range(args.warmup):
            side.step()
    _sync(args)
    runs: dict[str, list[tuple[float, float, dict[str, float]]]] = {side.name: [] for side in sides}
    for i in range(args.iters):
        for k in range(len(sides)):
            side = sides[(i + k) % len(sides)]
            runs[side.name].append(_timed(args, side))
    return {side.name: _summary(args, [r[0] for r in runs[side.name]], [r[1] for r in runs[side.name]],
                                [r[2] for r in runs[side.name]], side) for side in sides}


def run_internal(args: argparse.Namespace) -> None:
    """``--side NAME`` (alone) or ``--side interleaved`` (all of ``--sides``): print one JSON result line."""
    warnings.filterwarnings("ignore", message=".*gradfix not supported.*")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.side == "interleaved":
        sides = [make_side(args, name) for name in requested_sides(args)]
        result: dict[str, Any] = {"sides": measure_interleaved(args, sides)}
    else:
        sides = [make_side(args, args.side)]
        result = measure_alone(args, sides[0])
    for side in sides:
        side.cleanup()
    result["describe"] = describe(args.device)
    print(RESULT_TAG + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------- driver

def requested_sides(args: argparse.Namespace) -> list[str]:
    sides = [s for s in args.sides.split(",") if s]
    unknown = [s for s in sides if s not in SIDES]
    if unknown:
        raise SystemExit(f"--sides: unknown {', '.join(unknown)} (choose from {', '.join(SIDES)})")
    return [s for s in sides if s != "official" or args.official]


def spawn(side: str, argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--side", side]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **env} if env else None)
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
        cell = k
        if vals:
            cell += f" {sum(vals) / len(parts) * 1e3:.0f} ms"
            if len(vals) < len(parts):
                cell += f" ({len(vals)}/{len(parts)})"
        if k in mem:
            cell += f" [{mem[k]:.0f} MiB]"
        cells.append(cell)
    return ", ".join(cells)


def _fastest(runs: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> dict[str, Any]:
    ok = [r for r in runs if "failed" not in r]
    return min(ok, key=key) if ok else runs[-1]


def _total(run: dict[str, Any]) -> float:
    return sum(r["s_per_iter"] for r in run["sides"].values())


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
    parser.add_argument("--breakdown", action="store_true", help="CUDA: synchronize after each part to time it")
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated sides to run")
    parser.add_argument("--mode", choices=["both", "interleaved", "alone"], default="both",
                        help="interleaved: time the sides in one process, in turn; alone: each side in its own "
                             "process (timing and memory); both (default): the first for timing, the second for memory")
    parser.add_argument("--repeats", type=int, default=1, help="run each measurement N times, keep the fastest")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_internal(args)
        return

    argv = sys.argv[1:]
    sides = requested_sides(args)
    dtype = args.dtype if args.device == "cuda" else "fp32"
    s = official_settings(args)
    print(f"StyleGAN-V training step {args.resolution}x{args.resolution}, batch {args.batch} clips of "
          f"{args.num_frames} frames, channel_base {args.channel_base}, channel_max {args.channel_max}, "
          f"z/w/motion {args.z_dim}, {dtype} (num_fp16_res {s['num_fp16_res']}"
          f"{', vgz autocast ' + args.vgz_mixed_precision if args.vgz_mixed_precision != 'no' else ''}), "
          f"r1_gamma {s['r1_gamma']:.4g}, ADA bgc p0 {args.augment_p}, Dreg every 16, "
          f"{args.iters} iterations after {args.warmup}")
    inter: dict[str, Any] = {}
    alone: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    # Memory runs beside interleaved timing: on a CPU with a fixed mmap threshold, so that glibc hands every
    # large freed block back at once and the resident set follows the live tensors (the peak of the
    # iteration's working set, the same from run to run); this slows those runs down, their times are not used.
    mem_env = {"MALLOC_MMAP_THRESHOLD_": "131072"} if args.mode == "both" and args.device == "cpu" else None
    for repeat in range(args.repeats):
        if args.mode in ("both", "interleaved"):
            run = spawn("interleaved", argv)
            if not inter or "failed" in inter or ("failed" not in run and _total(run) < _total(inter)):
                inter = run
        if args.mode == "alone" or (args.mode == "both" and repeat == 0):
            for side in sides:
                alone[side].append(spawn(side, argv, mem_env))
    best_alone = {side: _fastest(runs, lambda r: r["s_per_iter"]) for side, runs in alone.items() if runs}
    print(next((r["describe"] for r in [inter, *best_alone.values()] if "describe" in r), describe(args.device)))
    if "failed" in inter:
        print(f"interleaved run failed: {inter['failed']}")
    timing = inter.get("sides") or best_alone  # seconds: interleaved where run, else each side alone
    source = "interleaved in one process" if inter.get("sides") else "each side alone"
    memory = ("CUDA max_memory_allocated" if args.device == "cuda" else
              "resident set" + (", fixed malloc mmap threshold" if mem_env else ""))
    print(f"time: {source}" + (f"; memory: each side alone in a fresh process ({memory})" if best_alone else ""))
    print(f"{'side':10s} {'s/iter':>7s} {'median':>7s} {'CPU s':>6s} {'clips/s':>7s} | {'peak MiB':>8s} "
          f"{'growth':>6s} {'MiB/clip':>8s} | params G/D")
    for side in sides:
        t, a = timing.get(side, {}), best_alone.get(side, {})
        row = f"{side:10s} "
        row += (f"{t['s_per_iter']:7.3f} {t['median']:7.3f} {t['cpu_s_per_iter']:6.2f} "
                f"{args.batch / t['s_per_iter']:7.2f}" if "s_per_iter" in t else f"{'-':>30s}")
        row += (f" | {a['peak_mib']:8.0f} {a['growth_mib']:6.0f} {a['per_clip_mib']:8.1f}" if "peak_mib" in a
                else f" | {'-':>24s}")
        params = (t if "params" in t else a).get("params", {})
        row += " | " + "/".join(f"{v / 1e6:.2f}M" if v else "?" for v in (params.get("G"), params.get("D")))
        print(row)
        if "failed" in a:
            print(f"  {side} memory run failed: {a['failed']}")
    for side in sides:
        t, a = timing.get(side, {}), best_alone.get(side, {})
        line = summarize_parts(t.get("parts", []), a.get("mem_parts", {}))
        if line:
            print(f"  {side}: {line}" + (f"; ADA p after {t['augment_p']:.4f}" if "augment_p" in t else ""))
        if args.mode == "alone" and args.repeats > 1:
            print(f"  {side} s/iter of every run: " + ", ".join(
                f"{x['s_per_iter']:.3f}" if "s_per_iter" in x else "failed" for x in alone[side]))
    for side in ("vgz", "vgz-batch"):
        line = []
        t_off, t_side = timing.get("official", {}), timing.get(side, {})
        if "s_per_iter" in t_off and "s_per_iter" in t_side:
            line.append(f"speed {t_off['s_per_iter'] / t_side['s_per_iter']:.2f}x (CPU time "
                        f"{t_off['cpu_s_per_iter'] / t_side['cpu_s_per_iter']:.2f}x)")
        a_off, a_side = best_alone.get("official", {}), best_alone.get(side, {})
        if "peak_mib" in a_off and "peak_mib" in a_side:
            key = "peak_mib" if args.device == "cuda" else "growth_mib"
            line.append(f"memory {'peak' if args.device == 'cuda' else 'RSS growth'} "
                        f"{a_off[key] / max(a_side[key], 1e-9):.2f}x")
        if line:
            print(f"official/{side} (> 1: vgz faster / smaller): " + ", ".join(line))


if __name__ == "__main__":
    main()
