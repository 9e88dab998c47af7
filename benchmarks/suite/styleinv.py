"""StyleInV part: video generation through the pipeline, and the training step's memory per video.

``generate``: :class:`~vgz.pipelines.StyleInVPipeline` at the official ffs architecture (a 256x256
StyleGAN2, an IR-SE50 modulated encoder; random weights), 16 frames per video, 1 and 8 videos per
call, ``fp32`` (every synthesis block in float32) and ``mixed`` (the release's fp16 in the 4 highest
resolutions on a GPU): frames/s, peak memory, the largest difference from fp32.

``train``: one step of ``vgz train --recipe styleinv`` (the ffs preset: SI main, D main and D's R1
on 4-frame clips) at batches of 4 and 8 clips, called as the trainer calls the losses, each network
trained in its phase only: seconds per step, peak memory and memory per video (peak / batch), the
measure of the StyleInV paper's Table 1 (2.85 GB per video for StyleInV).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from suite.part import Part, free_memory, is_oom, max_diff, measure


def _pipeline(part: Part):
    from vgz.pipelines import StyleInVPipeline

    torch.manual_seed(0)
    return StyleInVPipeline.from_preset("tiny" if part.smoke else "ffs").to(part.device).eval()


def generate(part: Part) -> None:
    pipe = _pipeline(part)
    frames = 4 if part.smoke else 16
    for batch in (1, 2) if part.smoke else (1, 8):
        z, motion_z = pipe.sample_latents([torch.Generator().manual_seed(i) for i in range(batch)], frames - 1)
        reference = None
        for variant in ("fp32", "mixed"):
            if part.time_left() < 8:
                part.skipped(f"styleinv generate {variant} x{batch}", "budget spent")
                continue
            pipe.synthesis.force_fp32 = variant == "fp32"
            try:
                timing = measure(part, lambda: pipe(batch, frames, z=z, motion_z=motion_z, chunk_size=frames).frames)
            except RuntimeError as exc:
                if not is_oom(exc):
                    raise
                part.skipped(f"styleinv generate {variant} x{batch}", "out of memory")
                free_memory(part.device)
                continue
            if reference is None:
                reference = timing.output
            part.add(what="styleinv-generate", variant=variant, frames=frames, batch=batch, **timing.fields(),
                     frames_per_s=round(batch * frames / timing.median_s, 2),
                     max_diff_vs_fp32=max_diff(timing.output, reference))
            free_memory(part.device)
        pipe.synthesis.force_fp32 = False


def _recipe(part: Part, batch: int, workdir: Path):
    """The styleinv recipe built as ``vgz train`` builds it, from a saved (random) pSp stage."""
    import vgz
    from vgz.encoders.psp import WEncoder, WEncoderConfig
    from vgz.pipelines.psp import PSPPipeline

    folder = workdir / "psp"
    if not folder.exists():
        pipe = _pipeline(part)
        encoder = WEncoder(WEncoderConfig.from_preset("tiny" if part.smoke else "ir-se50", start_from_latent_avg=True,
                                                      input_size=pipe.synthesis.config.img_resolution))
        PSPPipeline(encoder=encoder, synthesis=pipe.synthesis, mapping=pipe.mapping).save_pretrained(folder)
    if part.smoke:
        recipe = vgz.create("recipe", "styleinv", preset="tiny", encoder=str(folder), batch_size=batch)
    else:
        recipe = vgz.create("recipe", "styleinv", preset="ffs", encoder=str(folder), batch_size=batch)
    nets = recipe.build(img_channels=3, c_dim=0)
    nets = {k: v.to(part.device) for k, v in nets.items()}

    class _Trainer:  # what the recipe's setup reads
        device = torch.device(part.device)

    recipe.setup(_Trainer())
    return recipe, nets


def train(part: Part) -> None:
    from vgz.training.losses import PhaseContext

    with tempfile.TemporaryDirectory() as tmp:
        for batch in (2,) if part.smoke else (4, 8):
            if part.time_left() < 20:
                part.skipped(f"styleinv train x{batch}", "budget spent")
                continue
            recipe, nets = _recipe(part, batch, Path(tmp))
            cfg = recipe.config
            opts = {name: recipe.optimizer(name, net.parameters()) for name, net in nets.items()}
            phases = recipe.phases()
            g = torch.Generator().manual_seed(0)
            size = cfg.resolution
            real = {"frames": torch.rand([batch, cfg.num_frames, 3, size, size], generator=g).to(part.device) * 2 - 1,
                    "c": torch.zeros([batch, 0], device=part.device),
                    "t": torch.tensor([[0, 3, 9, 20]] * batch, device=part.device)[:, :cfg.num_frames]}
            gen = {"z": torch.randn([batch, recipe.z_dim], generator=g).to(part.device), "c": real["c"],
                   "t": real["t"].float() + 0.5 * (real["t"] > 0)}

            def grad(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
                return torch.autograd.grad(output, inputs, create_graph=True)[0]

            def step() -> None:
                for phase in phases:
                    for name, net in nets.items():
                        net.requires_grad_(name == phase.network)
                    opts[phase.network].zero_grad(set_to_none=True)
                    ctx = PhaseContext(nets=nets, real=real, gen=gen, grad=grad)
                    phase.loss(ctx).backward()
                    opts[phase.network].step()

            try:
                step()  # warm-up: Adam states, cuDNN plans
                if part.device == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                step()
                if part.device == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - start
            except RuntimeError as exc:
                if not is_oom(exc):
                    raise
                part.skipped(f"styleinv train x{batch}", "out of memory")
                free_memory(part.device)
                continue
            peak = torch.cuda.max_memory_allocated() / 2**20 if part.device == "cuda" else None
            part.add(what="styleinv-train", batch=batch, frames_per_clip=cfg.num_frames, resolution=size,
                     s_per_step=round(seconds, 3), peak_mib=None if peak is None else round(peak, 1),
                     mib_per_video=None if peak is None else round(peak / batch, 1),
                     phases=[p.name for p in phases])
            nets = opts = recipe = None  # freed before the next batch builds its own
            free_memory(part.device)
