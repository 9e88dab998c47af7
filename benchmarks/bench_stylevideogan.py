"""Time StyleVideoGAN (Fox et al., BMVC 2021): training steps at the paper's sizes, and generation at 256x256.

There is no official StyleVideoGAN code to compare against (the authors released none), so this script
times vgz alone and sets the training time against the one figure the paper gives: about 6 hours for a
talking-head model on one Quadro RTX 8000.

1. **Training** (``--skip-train`` leaves it out). The ``stylevideogan`` recipe, preset ``paper``: W+ of 18 x
   512 (a 1024x1024 StyleGAN2), windows of 25 steps, batch 64, WGAN-GP (lambda 50) for the critic every
   step, the generator with the gradient angle penalty (lambda 100, z_dim 32: the Jacobians of its 32-d
   distance by one vectorised backward pass with ``create_graph``, and the backward through it) every ``n_critic`` = 5 steps, Adam, the EMA of G. The
   data: a latent folder of one "video" of ``--frames`` (600) random float32 W+ latents (only the speed
   matters) with a ``latents.json`` that names a freshly initialised StyleGAN2 (``mapping/`` and
   ``synthesis/`` saved with ``save_pretrained``; ``--generator-preset paper256`` for the 256x256 one, 14
   ws) as the frozen generator; it is loaded, not run, during the steps. Steps run through the trainer
   (``Trainer.train_step``, data loader with ``num_workers`` 0, so reading the windows is on the timed
   path): ``--warmup`` (1) steps and the critic steps up to the next generator step untimed, then
   ``--steps`` (10) timed ones (whole cycles of ``n_critic``). A step where only the critic trains is a
   critic step; the generator step's time is that of a step where both train minus the mean critic
   step. sequences/s = batch / (mean seconds per trainer step over whole cycles). The paper's schedule:
   350 epochs over 10 minutes of 25 fps footage (15000 frames, 14976 windows of 25, ceil(14976 / 64) =
   234 steps per epoch: 81,900 steps, from the recipe's own ``default_steps``), estimated as steps x mean
   seconds per step. Then one more step with ``lambda_gap`` 0 (the generator step without the angle
   penalty, to show the penalty's share; ``--no-gap-row`` leaves it out).

2. **Generation** (``--skip-generate``). ``StyleVideoGANPipeline.from_preset("paper256")`` with random
   weights (a 256x256 StyleGAN2, 14 ws): ``--videos`` (1) video of ``--gen-frames`` (50) frames with
   ``batch_size`` 1 after a warm-up call, ``--iters`` calls, median: frames/s including rendering. Then
   the motion generator alone (``pipe.latents``, the same seeds and steps, no rendering): latents/s and
   the rendering's share of the time; and the motion generator on 64 trajectories of 250 steps at once
   (ten of the paper's windows, as a loop score needs them).

Each measurement is one Markdown table row. Wall times, and the process CPU time beside the training
rows. The machine description line gives the load average: other processes lengthen the times, and on a
small shared machine they can do so grossly (the recurrent steps are many small ops, each of which waits
for every intra-op thread: with 2 threads on 2 busy cores a generator step was 10-50x slower than on an
idle machine). Run it on an idle machine, or with ``--threads 1`` when others compute.

    python benchmarks/bench_stylevideogan.py --threads 2                 # CPU, about 2.5 minutes on 2 idle cores
    python benchmarks/bench_stylevideogan.py --device cuda --steps 50    # a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from common import describe

PAPER_HOURS = 6.0  # the paper: about 6 h on one Quadro RTX 8000
PAPER_FOOTAGE_FRAMES = 15000  # 10 minutes at 25 fps
PAPER_STEPS = 350 * math.ceil((PAPER_FOOTAGE_FRAMES - 25 + 1) / 64)  # 81,900


# ---------------------------------------------------------------------------------------------- data

def make_generator_folder(root: Path, preset: str) -> tuple[Path, Any]:
    """A fresh StyleGAN2 (``SynthesisConfig`` / ``MappingConfig`` preset) saved as ``root/generator/{mapping,
    synthesis}`` (a folder ``load_generator`` reads); returns the folder and the synthesis network."""
    from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork

    synthesis = SynthesisNetwork(SynthesisConfig.from_preset(preset))
    mapping = MappingNetwork(MappingConfig.from_preset(preset, num_ws=synthesis.num_ws))
    folder = root / "generator"
    mapping.save_pretrained(folder / "mapping")
    synthesis.save_pretrained(folder / "synthesis")
    return folder, synthesis


def write_latent_folder(folder: Path, videos: list[torch.Tensor], generator: Path, synthesis: Any,
                        fps: float = 25.0, dataset: str = "random") -> Path:
    """A latent folder as ``vgz invert`` writes it (``latents.json`` first, then one file per video) holding
    ``videos`` (each ``[T, num_ws, w_dim]``), with ``generator`` as the pipeline that made them."""
    import vgz
    from vgz.data.latents import LATENTS_FORMAT, LATENTS_FORMAT_VERSION, LATENTS_MARKER, latent_file_name, \
        write_latent_file
    from vgz.inversion import module_sha256

    folder.mkdir(parents=True, exist_ok=True)
    num_ws, w_dim = int(videos[0].shape[1]), int(videos[0].shape[2])
    common = {"num_ws": num_ws, "w_dim": w_dim, "encoder_sha256": "0" * 64,  # no encoder: the latents are made up
              "synthesis_sha256": module_sha256(synthesis), "input_resolution": 256, "pipeline": str(generator),
              "vgz_version": vgz.__version__}
    marker = {"format": LATENTS_FORMAT, "format_version": LATENTS_FORMAT_VERSION, **common,
              "generator_resolution": int(synthesis.config.img_resolution), "pipeline_name": None,
              "dataset": dataset}
    (folder / LATENTS_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    for k, ws in enumerate(videos):
        name = f"video{k:03d}.mp4"
        write_latent_file(folder / latent_file_name(name), ws, {
            "name": name, "source": f"{dataset}/{name}", "dataset": dataset, "num_frames": len(ws), "fps": fps,
            **common, "source_sha256": f"{k:064x}"})
    return folder


# ---------------------------------------------------------------------------------------------- training

def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench_train(args: argparse.Namespace, root: Path) -> list[str]:
    from vgz.training import build_trainer

    start = time.perf_counter()
    generator, synthesis = make_generator_folder(root, args.generator_preset)
    made = time.perf_counter() - start
    num_ws, w_dim = synthesis.num_ws, synthesis.w_dim
    g = torch.Generator().manual_seed(args.seed)
    latents = write_latent_folder(root / "latents", [torch.randn([args.frames, num_ws, w_dim], generator=g)],
                                  generator, synthesis)
    del synthesis
    overrides: dict[str, Any] = {}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    trainer = build_trainer("stylevideogan", preset="paper", data=str(latents), outdir=str(root / "run"),
                            overrides=overrides,
                            run_overrides={"steps": 10**9, "num_workers": 0, "progress": False, "seed": args.seed,
                                           "checkpoint_every": 10**9, "sample_every": 10**9, "log_every": 10**9,
                                           "sample_seeds": [], "cpu": args.device == "cpu"})
    built = time.perf_counter() - start
    if trainer.device.type != args.device:
        raise SystemExit(f"the trainer runs on {trainer.device}, not {args.device}")
    cfg = trainer.recipe.config
    n = cfg.n_critic
    params = {name: sum(p.numel() for p in trainer.accelerator.unwrap_model(net).parameters())
              for name, net in (("G", trainer.G), ("D", trainer.D))}
    print(f"\n1. training: recipe stylevideogan, preset paper: W+ [{num_ws}, {w_dim}] (generator preset "
          f"{args.generator_preset}, made and saved in {made:.1f} s), window {cfg.num_frames}, batch {cfg.batch_size}, "
          f"n_critic {n}, lambda_gp {cfg.lambda_gp:g}, lambda_gap {cfg.lambda_gap:g}, z_dim {cfg.z_dim}; "
          f"G {params['G'] / 1e6:.2f} M parameters, D {params['D'] / 1e6:.2f} M; data: 1 video of {args.frames} "
          f"random latents; trainer built in {built:.1f} s")

    data_time = [0.0]
    fetch = trainer._real_batch

    def timed_fetch() -> dict[str, torch.Tensor]:  # observes only: the same batch
        t0 = time.perf_counter()
        out = fetch()
        _sync(args.device)
        data_time[0] += time.perf_counter() - t0
        return out

    trainer._real_batch = timed_fetch

    def step() -> tuple[bool, float, float, float]:
        """(generator trained, wall s, CPU s, data s) of one trainer step."""
        with_g = trainer.step % n == 0
        data_time[0] = 0.0
        _sync(args.device)
        cpu, t0 = time.process_time(), time.perf_counter()
        trainer.train_step()
        _sync(args.device)
        return with_g, time.perf_counter() - t0, time.process_time() - cpu, data_time[0]

    def cycles(steps: int) -> list[tuple[bool, float, float, float]]:
        while trainer.step % n:  # start on a generator step, so whole cycles are timed (more warm-up)
            step()
        return [step() for _ in range(math.ceil(steps / n) * n if steps > 1 else steps)]

    for _ in range(args.warmup):
        step()
    runs = cycles(max(args.steps, n))
    trainer.stats.clear()
    d_runs = [r for r in runs if not r[0]]
    g_runs = [r for r in runs if r[0]]
    if not d_runs:  # n_critic 1: every step trains both
        raise SystemExit("n_critic is 1: critic and generator steps cannot be told apart")
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    t_d, t_dg = mean([r[1] for r in d_runs]), mean([r[1] for r in g_runs])
    c_d, c_dg = mean([r[2] for r in d_runs]), mean([r[2] for r in g_runs])
    t_g, c_g = t_dg - t_d, c_dg - c_d
    t_data = mean([r[3] for r in runs])
    t_step = mean([r[1] for r in runs])
    paper_steps = trainer.recipe.default_steps(SimpleNamespace(video_lengths=[PAPER_FOOTAGE_FRAMES]))
    if cfg.batch_size == 64 and cfg.num_frames == 25 and paper_steps != PAPER_STEPS:
        print(f"  note: the recipe's default_steps gives {paper_steps} steps for the paper's footage, not "
              f"{PAPER_STEPS}")
    hours = paper_steps * t_step / 3600

    gap_row = None
    if args.gap_row and cfg.lambda_gap > 0:
        saved = cfg.lambda_gap
        cfg.lambda_gap = 0.0  # read by g_main at every call
        try:
            no_gap = cycles(1)[0]  # the timed cycles end on a cycle's end: this step trains both
        finally:
            cfg.lambda_gap = saved
        trainer.stats.clear()
        assert no_gap[0]
        gap_row = no_gap[1] - t_d
    trainer.close()

    dev = f"{args.device} ({describe(args.device).split('(', 1)[1].split(')')[0]}, {torch.get_num_threads()} threads)"
    rows = ["| measurement | device | value | detail |", "| --- | --- | --- | --- |"]
    rows.append(f"| critic step (batch {cfg.batch_size} x {cfg.num_frames} x {num_ws} x {w_dim}, WGAN-GP) | {dev} | "
                f"{t_d:.3f} s | mean of {len(d_runs)}; CPU {c_d:.2f} s; data {t_data * 1000:.0f} ms of it |")
    rows.append(f"| generator step (adversarial + GAP, z_dim {cfg.z_dim}) | {dev} | {t_g:.3f} s | mean of "
                f"{len(g_runs)} (step with both {t_dg:.3f} s minus a critic step); CPU {c_g:.2f} s |")
    if gap_row is not None:
        rows.append(f"| generator step without the GAP (lambda_gap 0) | {dev} | {gap_row:.3f} s | one step (with both, "
                    f"minus the mean critic step); the GAP's share of a generator step: {1 - gap_row / t_g:.0%} |")
    rows.append(f"| trainer step (mean over {len(runs) // n} cycles of {n}) | {dev} | {t_step:.3f} s | "
                f"{cfg.batch_size / t_step:.1f} sequences/s, {cfg.batch_size * cfg.num_frames / t_step:.0f} "
                f"latent frames/s |")
    rows.append(f"| paper schedule: {paper_steps:,} steps (350 epochs of {PAPER_FOOTAGE_FRAMES} frames) | {dev} | "
                f"{hours:.1f} h | paper: ~{PAPER_HOURS:g} h on one Quadro RTX 8000 ({hours / PAPER_HOURS:.1f}x) |")
    print("\n".join(rows))
    return rows


# ---------------------------------------------------------------------------------------------- generation

def bench_generate(args: argparse.Namespace) -> list[str]:
    from vgz.pipelines.stylevideogan import StyleVideoGANPipeline

    torch.manual_seed(args.seed)
    pipe = StyleVideoGANPipeline.from_preset("paper256").to(args.device)
    s = pipe.synthesis.config
    B, T = args.videos, args.gen_frames
    print(f"\n2. generation: StyleVideoGANPipeline.from_preset('paper256') (random weights): {B} video(s) x {T} frames "
          f"at {s.img_resolution}x{s.img_resolution}, {s.num_ws} ws of {s.w_dim}, batch_size 1, chunk_size "
          f"{args.chunk_size}; median of {args.iters} calls after a warm-up")

    def video() -> torch.Tensor:
        return pipe(B, T, generator=args.seed, batch_size=1, chunk_size=args.chunk_size).frames

    def latents() -> torch.Tensor:
        return pipe.latents(B, T, generator=args.seed)

    def timed(fn: Any, iters: int) -> float:
        times = []
        for _ in range(iters):
            _sync(args.device)
            t0 = time.perf_counter()
            fn()
            _sync(args.device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    with torch.no_grad():
        pipe(1, 2, generator=args.seed, batch_size=1)  # warm-up
        frames = video()
        assert frames.shape == (B, T, 3, s.img_resolution, s.img_resolution), frames.shape
        t_video = timed(video, args.iters)
        latents()
        t_lat = timed(latents, max(args.iters, 5))
        big_b, big_t = 64, 250
        pipe.latents(2, 2, generator=0)
        t_big = timed(lambda: pipe.latents(big_b, big_t, generator=args.seed), 3)

    dev = f"{args.device} ({describe(args.device).split('(', 1)[1].split(')')[0]}, {torch.get_num_threads()} threads)"
    rows = ["| measurement | device | value | detail |", "| --- | --- | --- | --- |"]
    rows.append(f"| generation incl. rendering, {B} x {T} frames at {s.img_resolution}^2 | {dev} | "
                f"{B * T / t_video:.2f} frames/s | {t_video:.2f} s per call |")
    rows.append(f"| motion generator alone (pipe.latents, same {B} x {T}) | {dev} | {B * T / t_lat:.0f} latents/s | "
                f"{t_lat * 1000:.1f} ms per call: rendering is {1 - t_lat / t_video:.1%} of generation |")
    rows.append(f"| motion generator alone ({big_b} x {big_t} steps at once) | {dev} | {big_b * big_t / t_big:.0f} "
                f"latents/s | {t_big:.2f} s per call |")
    print("\n".join(rows))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=10, help="timed trainer steps (rounded up to whole cycles of "
                                                             "n_critic)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed trainer steps first (the first one trains G); then untimed critic steps up to "
                             "the next generator step")
    parser.add_argument("--frames", type=int, default=600, help="random latent frames of the training 'video'")
    parser.add_argument("--generator-preset", default="stylegan2", choices=("stylegan2", "paper256"),
                        help="the frozen StyleGAN2: stylegan2 (1024x1024, 18 ws: the paper's faces) or paper256 "
                             "(14 ws)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the paper's 64 (e.g. for a smoke run)")
    parser.add_argument("--no-gap-row", dest="gap_row", action="store_false",
                        help="skip the extra step (critic + generator) timed without the gradient angle penalty")
    parser.add_argument("--videos", type=int, default=1, help="videos per generation call")
    parser.add_argument("--gen-frames", type=int, default=50, help="frames per generated video")
    parser.add_argument("--chunk-size", type=int, default=16, help="frames synthesised at once")
    parser.add_argument("--iters", type=int, default=1, help="timed generation calls (median)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-generate", action="store_true")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no GPU")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe(args.device) + (f", load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
                                   if hasattr(os, "getloadavg") else ""))
    print("(no official StyleVideoGAN code exists to compare against; the paper reports ~6 h of training on one "
          "Quadro RTX 8000)")
    if not args.skip_train:
        with tempfile.TemporaryDirectory(prefix="vgz-bench-svg-") as tmp:
            bench_train(args, Path(tmp))
    if not args.skip_generate:
        bench_generate(args)


if __name__ == "__main__":
    main()
