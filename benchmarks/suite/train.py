"""Training parts: the StyleGAN-V training step at a batch that fills the GPU, and fp16 loss scaling.

``train``: vgz's trainer (``vgz train --recipe styleganv``) on the released architecture at 256x256
with the official hyper-parameters (the set ``bench_train_styleganv.py`` uses: ADA bgc from p 0.2,
R1 every 16 steps, fp16 in the 4 highest resolutions of G and D), ``--mixed-precision fp16`` and
``bf16`` on top. The batch fills the GPU: a probe at 8 clips (a step with every phase, R1 too,
after a warm-up step) gives the memory per clip, and the batch is the multiple of 8 that keeps the
peak under 80% of the GPU. Clips come from ``synthetic:shapes`` fetched beforehand (the ``vgz-batch`` side: data
loading is off the timed path). Per precision: clips/s over up to 16 steps (one with R1, as the
official schedule averages it), peak memory, memory per clip (peak / batch, the measure of the
StyleInV supplement's 1.20 GB per video for StyleGAN-V), and each phase's peak (Gmain, Dmain, Dreg).

``fp16``: a few hundred real ``--mixed-precision fp16`` steps with R1 at 64x64 (the release's
widths; its 4 fp16 resolutions are then all but the lowest), checking that the
losses stay finite, that the loss scaler works (skipped steps counted, the scale neither lost nor
collapsed) and that R1 sees unscaled gradients (the trainer's penalty against plain autograd on the
same batch). On a CPU (the smoke run) Accelerate has no fp16 loss scaling; there the run is float32
with a real ``torch.amp.GradScaler('cpu')`` put in Accelerate's place, which checks the same code
paths (scaled backward, unscaling, skipped steps, R1 unscaled by ``Trainer._grad``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from typing import Any

import torch

from suite.part import Part, free_memory, is_oom

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench_train_styleganv import MemoryMeter, make_vgz, official_settings, vgz_overrides  # noqa: E402


def bench_args(part: Part, *, batch: int, mixed_precision: str, resolution: int | None = None) -> argparse.Namespace:
    """The settings ``bench_train_styleganv.make_vgz`` takes: the release (tiny when smoke)."""
    smoke = part.smoke
    return argparse.Namespace(
        device=part.device, dtype="fp16", resolution=resolution or (32 if smoke else 256), batch=batch,
        batch_gpu=None, num_frames=3, channel_base=512 if smoke else 16384, channel_max=32 if smoke else 512,
        z_dim=32 if smoke else 512, augment_p=0.2, video_len=64 if smoke else 256, seed=0, breakdown=False,
        vgz_mixed_precision=mixed_precision)


def train_precisions(part: Part) -> list[str]:
    # Accelerate scales fp16 losses on GPUs only; a CPU (the smoke run) trains in float32 instead.
    return ["fp16", "bf16"] if part.device == "cuda" else ["no", "bf16"]


def steps_under_meter(side: Any, steps: int, part: Part, reserve_s: float) -> tuple[list[float], MemoryMeter]:
    """Run up to ``steps`` steps of ``side`` under its memory meter while the part has ``reserve_s``
    beyond the next step; returns each step's seconds and the stopped meter."""
    meter = side.probe.meter
    meter.start()
    seconds: list[float] = []
    for _ in range(steps):
        if seconds and part.time_left() < reserve_s + 1.5 * max(seconds):
            break
        start = time.perf_counter()
        side.step()
        if part.device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    meter.stop()
    return seconds, meter


def fill_batch(part: Part, probe_batch: int) -> int:
    """The batch (a multiple of 8) whose peak stays under 80% of the GPU, from a probe: a warm-up
    step (it also creates the Adam states), then one metered step with every phase, R1 included (the
    trainer's step counter set to the next R1 step, 16)."""
    fresh_accelerate()
    side = make_vgz(bench_args(part, batch=probe_batch, mixed_precision=train_precisions(part)[0]), with_batches=True)
    try:
        side.step()
        side.trainer.step = 16
        seconds, meter = steps_under_meter(side, 1, part, 0)
    finally:
        side.trainer.close()
        side.cleanup()
        del side
        free_memory(part.device)
    per_clip = (meter.peak - meter.base) / probe_batch
    total = torch.cuda.mem_get_info()[1] / 2**20
    batch = max(8, min(512, int((0.8 * total - meter.base) / per_clip) // 8 * 8))
    part.add(what="train-probe", batch=probe_batch, step_s=[round(s, 3) for s in seconds], peak_mib=round(meter.peak, 1),
             base_mib=round(meter.base, 1), mib_per_clip=round(per_clip, 1), gpu_mib=round(total), fill_batch=batch)
    return batch


def train(part: Part) -> None:
    batch = 8 if part.smoke else fill_batch(part, 8)
    precisions = train_precisions(part)
    for i, precision in enumerate(precisions):
        share = part.time_left() / (len(precisions) - i)  # what is left, shared by the precisions left
        reserve = part.time_left() - share
        while True:
            try:
                measure_training(part, batch, precision, reserve)
                break
            except RuntimeError as exc:
                if not is_oom(exc) or batch <= 8:
                    raise
            free_memory(part.device)  # here, where the exception's frames (holding tensors) are gone
            part.add(what="train", precision=precision, batch=batch, error="out of memory; halving the batch")
            batch = max(8, batch // 2 // 8 * 8)


def fresh_accelerate() -> None:
    """Accelerate keeps one state per process, mixed precision included; each run here sets its own."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def measure_training(part: Part, batch: int, precision: str, reserve_s: float) -> None:
    fresh_accelerate()
    args = bench_args(part, batch=batch, mixed_precision=precision)
    side = make_vgz(args, with_batches=True)
    try:
        side.step()  # step 0: every phase (R1 too), cuDNN's algorithm choice
        if part.device == "cuda":
            torch.cuda.synchronize()
        seconds, meter = steps_under_meter(side, 1 if part.smoke else 16, part, reserve_s)
        info = side.info()
    finally:
        side.trainer.close()
        side.cleanup()
    s_per_step = sum(seconds) / len(seconds)
    part.add(what="train", precision=precision, resolution=args.resolution, batch=batch,
             steps=len(seconds), r1_steps=sum(1 for s in range(1, len(seconds) + 1) if s % 16 == 0),
             s_per_step=round(s_per_step, 4), clips_per_s=round(batch / s_per_step, 2),
             peak_mib=round(meter.peak, 1) if part.device == "cuda" else None,
             mib_per_clip=round(meter.per_clip(batch), 1) if part.device == "cuda" else None,
             phase_peak_mib={k: round(v, 1) for k, v in side.probe.mem.items()} if part.device == "cuda" else None,
             params=info["params"])
    del side
    free_memory(part.device)


# ---------------------------------------------------------------------------------------------- fp16 scaling

def emulate_loss_scaling(trainer: Any, init_scale: float = 2.0**16) -> None:
    """CPU only: a real ``torch.amp.GradScaler('cpu')`` where Accelerate would keep its CUDA one.

    Accelerate creates no scaler on a CPU; the trainer reads ``accelerator.scaler`` and Accelerate's
    optimizer wrapper steps through its ``scaler`` (set up again by its ``__setstate__``)."""
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    trainer.accelerator.scaler = scaler
    for opt in (trainer.opt_G, trainer.opt_D):
        opt.__setstate__(dict(opt.__dict__, scaler=scaler))


def count_skipped_steps(trainer: Any) -> dict[str, int]:
    """Count the optimizer steps the loss scaler skips, per network (the dict fills as training runs)."""
    skipped = {"G": 0, "D": 0, "G_steps": 0, "D_steps": 0}
    for name, opt in (("G", trainer.opt_G), ("D", trainer.opt_D)):
        def step(*args: Any, _inner: Any = opt.step, _name: str = name, _opt: Any = opt, **kwargs: Any) -> Any:
            out = _inner(*args, **kwargs)
            skipped[f"{_name}_steps"] += 1
            skipped[_name] += int(bool(_opt.step_was_skipped))
            return out
        opt.step = step
    return skipped


def r1_unscaled(trainer: Any) -> dict[str, float]:
    """The R1 penalty through ``Trainer._grad`` (scaled by the loss scale, then unscaled) and through
    plain autograd on the same clips, same D and same precision; they agree when R1 sees true gradients
    (a penalty on scaled gradients would be scale^2 times too large)."""
    acc = trainer.accelerator
    D = acc.unwrap_model(trainer.D)
    real = trainer._real_batch()
    run_D = trainer.recipe.loss.run_D

    def penalty(grad_fn: Any) -> float:
        frames = real["frames"].detach().requires_grad_(True)
        with acc.autocast():
            logits = run_D(D, frames, real["c"], real["t"]).reshape(-1)
        grads = grad_fn(logits.sum(), frames)
        return float(grads.detach().float().square().sum([2, 3, 4]).mean(1).mean())

    D.requires_grad_(True)
    try:
        through_trainer = penalty(trainer._grad)
        plain = penalty(lambda out, x: torch.autograd.grad(out, x, create_graph=True)[0])
    finally:
        D.requires_grad_(False)
    return dict(scale=float(acc.scaler.get_scale()), r1_trainer=through_trainer, r1_plain=plain,
                rel_diff=abs(through_trainer - plain) / max(abs(plain), 1e-30))


def fp16(part: Part) -> None:
    from vgz.training import build_trainer

    cuda = part.device == "cuda"
    batch = 4 if part.smoke else 16
    args = bench_args(part, batch=batch, mixed_precision="fp16" if cuda else "no",
                      resolution=32 if part.smoke else 64)
    tmp = tempfile.TemporaryDirectory(prefix="vgz-suite-fp16-")
    trainer = build_trainer(recipe="styleganv", preset="tiny", data=f"synthetic:shapes?num_frames={args.video_len}",
                            outdir=tmp.name, overrides=vgz_overrides(args, official_settings(args)),
                            run_overrides=dict(mixed_precision=args.vgz_mixed_precision, num_workers=0, seed=0,
                                               cpu=not cuda, progress=False))
    if not cuda:
        emulate_loss_scaling(trainer)
    skipped = count_skipped_steps(trainer)
    max_steps, min_steps = (10, 10) if part.smoke else (400, 200)
    scales: list[float] = []
    nonfinite, last = 0, {}
    start = step_start = time.perf_counter()
    step_s = 0.0
    try:
        # Until max_steps, keeping time for a step more and the R1 check.
        while trainer.step < max_steps and part.time_left() > 15 + 2 * step_s:
            last = trainer.train_step()
            step_s, step_start = time.perf_counter() - step_start, time.perf_counter()
            nonfinite += int(not all(math.isfinite(v) for v in last.values()))
            scales.append(float(trainer.accelerator.scaler.get_scale()))
        seconds = time.perf_counter() - start
        r1 = r1_unscaled(trainer)
        params_finite = all(torch.isfinite(p).all() for net in (trainer.G, trainer.D) for p in net.parameters())
    finally:
        trainer.close()
        tmp.cleanup()
    steps = len(scales)
    optimizer_steps = skipped["G_steps"] + skipped["D_steps"]
    checks = {
        "steps": steps >= min_steps,
        "final_losses_finite": bool(last) and all(math.isfinite(v) for v in last.values()),
        "few_nonfinite_losses": nonfinite <= 0.05 * max(steps, 1),
        "scaler_working": bool(scales) and math.isfinite(scales[-1]) and scales[-1] >= 1.0
        and skipped["G"] + skipped["D"] <= 0.2 * max(optimizer_steps, 1),
        "parameters_finite": bool(params_finite),
        "r1_unscaled": r1["scale"] > 1 and r1["rel_diff"] < (0.05 if cuda else 1e-4),
    }
    part.add(what="fp16", loss_scaling="accelerate fp16 (CUDA)" if cuda else "GradScaler('cpu') in float32 (emulated)",
             resolution=args.resolution, batch=batch, steps=steps, s_per_step=round(seconds / max(steps, 1), 4),
             skipped_G=skipped["G"], skipped_D=skipped["D"], optimizer_steps=optimizer_steps,
             nonfinite_loss_steps=nonfinite, scale_first=scales[0] if scales else None,
             scale_final=scales[-1] if scales else None, scale_min=min(scales) if scales else None,
             scale_drops=sum(1 for a, b in zip(scales, scales[1:]) if b < a), final_losses=last,
             r1=r1, checks=checks, ok=all(checks.values()))
