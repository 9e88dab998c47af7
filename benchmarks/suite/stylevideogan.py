"""StyleVideoGAN part: the training steps in W+ (no frame rendered) and generation with rendering.

``stylevideogan``: (1) one critic step (WGAN-GP) and one generator step (adversarial + the gradient
angle penalty, 32 double-backward passes) of the ``stylevideogan`` recipe at the paper's sizes (W+ of
18 x 512, windows of 25, batch 64), called as the trainer calls the losses: seconds per step,
sequences/s of a trainer step (1 critic step, and a generator step every 5th) and the paper's whole
schedule (350 epochs of a 10-minute 25 fps footage, 81,900 steps) against its ~6 h on one Quadro RTX
8000; (2) :class:`~vgz.pipelines.StyleVideoGANPipeline` at 256x256 (``paper256``, random weights),
25-frame videos, 1 and 8 per call: frames/s including rendering, and the motion generator's W+ steps
per second alone.
"""

from __future__ import annotations

import math

import torch

from suite.part import Part, free_memory, is_oom, measure

PAPER_STEPS = 350 * math.ceil((15000 - 25 + 1) / 64)  # 350 epochs of 10 min at 25 fps, windows of 25, batch 64


def _train(part: Part) -> None:
    import vgz
    from vgz.discriminators.stylevideogan import Critic, CriticConfig
    from vgz.generators.stylevideogan import MotionGenerator, MotionGeneratorConfig
    from vgz.training.losses import PhaseContext
    from vgz.training.recipes.stylevideogan import StyleVideoGANGenerator

    preset = "tiny" if part.smoke else "paper"
    recipe = vgz.create("recipe", "stylevideogan", preset=preset)
    cfg = recipe.config
    torch.manual_seed(0)
    motion = MotionGenerator(MotionGeneratorConfig.from_preset(preset))
    m = motion.config
    nets = {"G": StyleVideoGANGenerator(motion, cfg.gap_momentum).train().to(part.device),
            "D": Critic(CriticConfig.from_preset(preset, window=cfg.num_frames, num_ws=m.num_ws, w_dim=m.w_dim))
            .train().to(part.device)}
    opts = {name: recipe.optimizer(name, net.parameters()) for name, net in nets.items()}
    batch = cfg.batch_size
    g = torch.Generator().manual_seed(0)
    real = {"ws": torch.randn([batch, cfg.num_frames, m.num_ws, m.w_dim], generator=g).to(part.device)}
    gen = {"i": torch.randn([batch, m.z_dim], generator=g).to(part.device),
           "s": torch.randn([batch, cfg.num_frames - 1, m.z_dim], generator=g).to(part.device)}

    def grad(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(output, inputs, create_graph=True)[0]

    times = {}
    for phase in recipe.phases():
        def step(phase=phase) -> None:
            for name, net in nets.items():
                net.requires_grad_(name == phase.network)
            opts[phase.network].zero_grad(set_to_none=True)
            phase.loss(PhaseContext(nets=nets, real=real, gen=gen, grad=grad)).backward()
            opts[phase.network].step()

        try:
            timing = measure(part, step)
        except RuntimeError as exc:
            if not is_oom(exc):
                raise
            part.skipped(f"stylevideogan {phase.name}", "out of memory")
            free_memory(part.device)
            return
        times[phase.name] = timing.median_s
        part.add(what="stylevideogan-train", phase=phase.name, batch=batch, window=cfg.num_frames,
                 num_ws=m.num_ws, **timing.fields())
    step_s = times["Dmain"] + times["Gmain"] / cfg.n_critic  # a trainer step, on average
    part.add(what="stylevideogan-schedule", batch=batch, s_per_trainer_step=round(step_s, 4),
             sequences_per_s=round(batch / step_s, 1), paper_steps=PAPER_STEPS,
             paper_schedule_h=round(PAPER_STEPS * step_s / 3600, 2))


def _generate(part: Part) -> None:
    from vgz.pipelines import StyleVideoGANPipeline

    torch.manual_seed(0)
    pipe = StyleVideoGANPipeline.from_preset("tiny" if part.smoke else "paper256").to(part.device).eval()
    frames = 5 if part.smoke else 25
    for batch in (1, 2) if part.smoke else (1, 8):
        if part.time_left() < 8:
            part.skipped(f"stylevideogan generate x{batch}", "budget spent")
            continue
        try:
            timing = measure(part, lambda: pipe(batch, frames, generator=0, chunk_size=frames).frames)
            latents = measure(part, lambda: pipe.latents(batch, frames, generator=0))
        except RuntimeError as exc:
            if not is_oom(exc):
                raise
            part.skipped(f"stylevideogan generate x{batch}", "out of memory")
            free_memory(part.device)
            continue
        part.add(what="stylevideogan-generate", frames=frames, batch=batch,
                 resolution=pipe.synthesis.config.img_resolution, **timing.fields(),
                 frames_per_s=round(batch * frames / timing.median_s, 2),
                 latent_steps_per_s=round(batch * frames / latents.median_s, 1))
        free_memory(part.device)


def stylevideogan(part: Part) -> None:
    _train(part)
    _generate(part)
