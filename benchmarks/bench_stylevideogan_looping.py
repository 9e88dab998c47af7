"""Does StyleVideoGAN's gradient angle penalty (GAP) keep long rollouts from looping? Trained with and without.

The paper (Fox et al., BMVC 2021, Sec. 4) trains its GRU motion generator on windows of 25 steps and
finds that without the GAP 19 of 20 models loop on long rollouts; it judges looping by eye. This script
measures it with :func:`vgz.metrics.looping.loop_score` (per trajectory the highest normalised
autocorrelation at lags from the window to half its length, averaged; near 1: the motion repeats, near 0:
it keeps changing) on the W+ trajectories, nothing rendered. There is no official code to compare with.

Data (made here, seeded by ``--data-seed``): ``--videos`` (4) "videos" of ``--video-len`` (500) steps of
smooth, non-periodic motion: ``--dims`` (4) independent AR(2) processes ``x_t = 2 r cos(theta) x_{t-1} -
r^2 x_{t-2} + e_t`` (damped oscillations of random quasi-periods of 12-32 steps, ``r`` 0.90-0.95: they
decorrelate within a few windows and never repeat), each smoothed by a 5-step moving average and scaled
to unit variance, mapped linearly into W+ of 6 x 32 (a fixed random map plus a fixed "subject" offset),
so that the ``tiny`` StyleGAN2 (16x16, ``SynthesisConfig.from_preset("tiny")``, random weights, saved
as the latents' generator) fits them; it is never run here. Its loop score (the videos cut into
trajectories of 10 windows, as many as fit) is the reference row: what motion that does not loop scores.

Training: the ``stylevideogan`` recipe's ``tiny`` preset (z_dim 8, hidden 16, critic E 3 x 32, convs
16/32, batch 8, n_critic 2, lr 1e-3, WGAN-GP lambda 50) with a window (``num_frames``) of ``--window``
(16) steps, ``--steps`` trainer steps (a step is one critic update; every 2nd also a generator update),
once with ``lambda_gap`` 100 (the paper's) and once with 0, for each of ``--seeds`` (the run seed: the
networks' initialisation, the noise and the windows drawn; the data stay the same). Evaluation: the EMA
pipeline's ``latents(64, 10 x window, generator=1000 + seed)``; printed per run: the loop score (mean over
the 64), the angle ``phi`` of the final EMA generator (degrees, mean over the 64: ``arctan(||dd/ds|| /
||dd/di||)`` with ``d`` the last-minus-first ``l`` standardised over this batch; the GAP pushes it to at
least 45), the motion's size (rms distance of a step from its trajectory's mean, over the real data's)
and the training seconds. Then per setting the mean and spread over seeds.

Defaults: 1200 steps per run (with this data the generator without the GAP starts to loop after about
1000 steps of the tiny preset: loop scores of about 0.1, 0.3, 0.4 and 0.5 after 800, 1000, 1200 and 1500;
before that its motion is small, which scores low too, so do not cut ``--steps`` much below 1000), one
thread (see ``--threads``). A run with the GAP costs about 8x one without it (the penalty's 2 x z_dim
backward passes through the GRU with ``create_graph``, per generator step).

    python benchmarks/bench_stylevideogan_looping.py                      # one seed, ~7-9 minutes on this CPU
    python benchmarks/bench_stylevideogan_looping.py --seeds 0 1 2        # three seeds, ~20-25 minutes
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench_stylevideogan import make_generator_folder, write_latent_folder
from common import describe

EVAL_TRAJECTORIES = 64


# ---------------------------------------------------------------------------------------------- data

def smooth_motion(num_videos: int, length: int, dims: int, num_ws: int, w_dim: int, seed: int) -> list[torch.Tensor]:
    """``num_videos`` W+ sequences ``[length, num_ws, w_dim]``: ``dims`` smoothed AR(2) processes (random
    quasi-periods of 12-32 steps, radii 0.90-0.95, unit variance) mapped linearly into W+ around a fixed
    offset. Non-periodic: every process decorrelates within a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    period = 12 + 20 * torch.rand([dims], generator=g, dtype=torch.float64)
    radius = 0.90 + 0.05 * torch.rand([dims], generator=g, dtype=torch.float64)
    a1, a2 = 2 * radius * torch.cos(2 * math.pi / period), -radius ** 2
    mix = torch.randn([dims, num_ws * w_dim], generator=g, dtype=torch.float64) / math.sqrt(dims)
    offset = torch.randn([num_ws * w_dim], generator=g, dtype=torch.float64)
    burn, k = 200, 5
    videos = []
    for _ in range(num_videos):
        e = torch.randn([burn + length + k - 1, dims], generator=g, dtype=torch.float64)
        x = torch.zeros_like(e)
        for t in range(2, len(e)):
            x[t] = a1 * x[t - 1] + a2 * x[t - 2] + e[t]
        x = x[burn:].T.unsqueeze(1)  # [dims, 1, length + k - 1]
        x = torch.nn.functional.avg_pool1d(x, k, stride=1).squeeze(1).T  # [length, dims], a k-step moving average
        x = (x - x.mean(0)) / x.std(0)
        videos.append((x @ mix + offset).view(length, num_ws, w_dim).float())
    return videos


def motion_rms(ws: torch.Tensor) -> float:
    """Root mean square distance of a step from its trajectory's mean (``ws [B, T, ...]``)."""
    x = ws.flatten(2).double()
    return float((x - x.mean(dim=1, keepdim=True)).square().sum(dim=2).mean().sqrt())


def angles(motion: Any, num: int, steps: int, seed: int) -> torch.Tensor:
    """The GAP's angle ``phi`` (degrees) of ``motion`` for ``num`` fresh ``(i, s)`` of ``steps`` steps, with
    ``d = l_last - l_0`` standardised over this batch (momentum 1: the running statistics are the batch's)."""
    from vgz.training.wgan import GradientAnglePenalty

    z = motion.config.z_dim
    g = torch.Generator().manual_seed(seed)
    i = torch.randn([num, z], generator=g).requires_grad_(True)
    s = torch.randn([num, steps - 1, z], generator=g).requires_grad_(True)
    gap = GradientAnglePenalty(z, momentum=1.0).train()
    with torch.enable_grad():
        l, _ = motion.codes(i, s)
        phi = gap.angle(gap.normalized_distance(l[:, 0], l[:, -1]), i, s)
    return torch.rad2deg(phi.detach())


# ---------------------------------------------------------------------------------------------- runs

def train_one(args: argparse.Namespace, latents: Path, outdir: Path, lambda_gap: float, seed: int) -> dict[str, Any]:
    from vgz.metrics.looping import loop_score
    from vgz.training import build_trainer

    overrides = {"num_frames": args.window, "lambda_gap": lambda_gap}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    trainer = build_trainer("stylevideogan", preset="tiny", data=str(latents), outdir=str(outdir),
                            overrides=overrides,
                            run_overrides={"steps": args.steps, "num_workers": 0, "progress": False, "seed": seed,
                                           "checkpoint_every": 10**9, "sample_every": 10**9, "sample_seeds": [],
                                           "log_every": max(args.steps // 10, 1), "cpu": True})
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    pipe = trainer.pipeline()
    ws = pipe.latents(EVAL_TRAJECTORIES, 10 * args.window, generator=1000 + seed)
    phi = angles(pipe.motion, EVAL_TRAJECTORIES, args.window, seed=2000 + seed)
    return {"loop": loop_score(ws, args.window), "phi": float(phi.mean()), "rms": motion_rms(ws), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (1: the tiny networks' small ops gain nothing from more, and on a "
                             "busy machine intra-op threads make them many times slower)")
    parser.add_argument("--steps", type=int, default=1200, help="trainer steps per run (critic updates; every "
                                                               "n_critic-th also a generator update)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="run seeds (each trains both settings)")
    parser.add_argument("--window", type=int, default=16, help="the training window (num_frames); rollouts are 10x")
    parser.add_argument("--batch-size", type=int, default=None, help="override the tiny preset's 8")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--video-len", type=int, default=500)
    parser.add_argument("--dims", type=int, default=4, help="independent motion processes")
    parser.add_argument("--data-seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe("cpu") + (f", load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
                             if hasattr(os, "getloadavg") else ""))
    from vgz.metrics.looping import loop_score

    with tempfile.TemporaryDirectory(prefix="vgz-bench-svg-loop-") as tmp:
        root = Path(tmp)
        generator, synthesis = make_generator_folder(root, "tiny")
        videos = smooth_motion(args.videos, args.video_len, args.dims, synthesis.num_ws, synthesis.w_dim,
                               args.data_seed)
        latents = write_latent_folder(root / "latents", videos, generator, synthesis)
        span = 10 * args.window
        pieces = [v[k:k + span] for v in videos for k in range(0, len(v) - span + 1, span)]
        real = torch.stack(pieces) if pieces else None
        real_rms = motion_rms(real) if real is not None else motion_rms(torch.stack(videos))
        print(f"data: {args.videos} videos x {args.video_len} steps of {args.dims} smoothed AR(2) processes in W+ "
              f"[{synthesis.num_ws}, {synthesis.w_dim}]; window {args.window}, rollouts of {span} steps, "
              f"{args.steps} steps per run, seeds {args.seeds}")

        results: dict[str, list[dict[str, Any]]] = {"GAP on (lambda_gap 100)": [], "GAP off (lambda_gap 0)": []}
        rows = ["| setting | seed | loop score (mean over trajectories) | phi (deg) | motion rms / real | seconds |",
                "| --- | --- | --- | --- | --- | --- |"]
        if real is not None:
            rows.append(f"| real training latents ({len(pieces)} trajectories of {span}) | - | "
                        f"{loop_score(real, args.window):.3f} | - | 1.00 | - |")
        else:
            rows.append(f"| real training latents | - | (videos shorter than {span} steps) | - | 1.00 | - |")
        print("\n".join(rows), flush=True)
        for seed in args.seeds:
            for name, lam in (("GAP on (lambda_gap 100)", 100.0), ("GAP off (lambda_gap 0)", 0.0)):
                r = train_one(args, latents, root / f"run-{lam:g}-{seed}", lam, seed)
                results[name].append(r)
                row = (f"| {name} | {seed} | {r['loop']:.3f} | {r['phi']:.1f} | {r['rms'] / real_rms:.2f} | "
                       f"{r['seconds']:.0f} |")
                rows.append(row)
                print(row, flush=True)
        if len(args.seeds) > 1:
            print(f"\nover {len(args.seeds)} seeds (mean +- standard deviation):")
            print("| setting | loop score | phi (deg) | motion rms / real | seconds per run |\n"
                  "| --- | --- | --- | --- | --- |")
            for name, rs in results.items():
                def ms(key: str, scale: float = 1.0, fmt: str = ".3f") -> str:
                    xs = [r[key] / scale for r in rs]
                    return f"{statistics.mean(xs):{fmt}} +- {statistics.stdev(xs):{fmt}}"
                print(f"| {name} | {ms('loop')} | {ms('phi', fmt='.1f')} | {ms('rms', real_rms, '.2f')} | "
                      f"{ms('seconds', fmt='.0f')} |")


if __name__ == "__main__":
    main()
