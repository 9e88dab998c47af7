"""GAN losses of the StyleGAN family, written once for every recipe.

The non-saturating logistic loss with lazy regularization (Karras et al. 2020): G maximises
``log D(G(z))`` and, every ``g_reg_interval`` steps, pays a path-length penalty; D minimises
``softplus(D(fake)) + softplus(-D(real))`` and, every ``d_reg_interval`` steps, an R1 penalty
``gamma / 2 * |grad_x D(x)|^2`` on real data. For clips the R1 penalty of a clip is the mean over
its frames of each frame's squared gradient norm (as StyleGAN-V), or their sum (as StyleInV:
``r1_frames="sum"``). D always sees data through the
augmentation pipe (ADA), which is differentiable, so R1 goes through it too.

A recipe supplies ``run_G(G, inputs) -> (frames [B, T, C, H, W], ws)`` and
``run_D(D, frames, c, t) -> logits [B]``; the loss knows nothing else of the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

__all__ = ["PhaseContext", "StyleGAN2Loss"]


@dataclass
class PhaseContext:
    """What a loss function sees in one round (micro-batch) of a phase.

    Attributes:
        nets: the recipe's networks by name; the one being trained may be DDP-wrapped (call it
            through this dict so that its gradients are synchronised). ``ctx.G``/``ctx.D`` are
            ``nets["G"]``/``nets["D"]``.
        augment: the recipe's augmentation, ``[B, T, C, H, W] -> same`` (identity when off).
        real: what the recipe makes of a loader batch; for video GANs ``frames`` float
            ``[B, T, C, H, W]`` in [-1, 1], ``c [B, c_dim]``, ``t [B, T]``.
        gen: the recipe's inputs of this round (GANs: ``z``, ``c``, ``t``).
        grad: ``grad(output, inputs) -> grads`` with ``create_graph=True``, unscaled when the
            trainer uses fp16 loss scaling (penalties on gradients must not see the scale).
        stats: ``name -> list of detached tensors``; the trainer averages them over ranks.
        step: the trainer's step (0-based) this phase runs in, for schedules inside a loss (0 when a
            caller builds the context itself).
    """

    nets: dict[str, Any]
    real: dict[str, torch.Tensor]
    gen: dict[str, torch.Tensor]
    grad: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    augment: Callable[[torch.Tensor], torch.Tensor] = lambda frames: frames
    stats: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    step: int = 0

    @property
    def G(self) -> Any:
        return self.nets["G"]

    @property
    def D(self) -> Any:
        return self.nets["D"]

    def log(self, name: str, value: torch.Tensor) -> None:
        self.stats.setdefault(name, []).append(value.detach().float().reshape(-1))


class StyleGAN2Loss:
    """Non-saturating logistic GAN loss with lazy R1 and path-length regularization.

    Args:
        run_G: ``(G, gen_inputs) -> (frames [B, T, C, H, W], ws [B, num_ws, w_dim])``.
        run_D: ``(D, frames, c, t) -> logits [B]``.
        r1_gamma: R1 weight (0 = off).
        pl_weight: path-length weight (0 = off), with the official batch shrink and decay.
        r1_frames: a clip's R1 penalty is the ``"mean"`` (StyleGAN-V) or the ``"sum"`` (StyleInV)
            of its frames' squared gradient norms.
    """

    def __init__(self, run_G: Callable, run_D: Callable, *, r1_gamma: float, pl_weight: float = 0.0,
                 pl_batch_shrink: int = 2, pl_decay: float = 0.01, r1_frames: str = "mean"):
        if r1_frames not in ("mean", "sum"):
            raise ValueError(f"r1_frames must be 'mean' or 'sum', got {r1_frames!r}")
        self.r1_frames = r1_frames
        self.run_G, self.run_D = run_G, run_D
        self.r1_gamma, self.pl_weight = r1_gamma, pl_weight
        self.pl_batch_shrink, self.pl_decay = pl_batch_shrink, pl_decay
        self.pl_mean = torch.zeros([])  # running mean path length (checkpointed by the trainer)

    def _D(self, ctx: PhaseContext, frames: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.run_D(ctx.D, ctx.augment(frames), c, t).reshape(-1)

    def g_main(self, ctx: PhaseContext) -> torch.Tensor:
        """G: maximise D's logits for generated clips."""
        fake, _ = self.run_G(ctx.G, ctx.gen)
        logits = self._D(ctx, fake, ctx.gen["c"], ctx.gen["t"])
        ctx.log("scores/fake", logits)
        loss = F.softplus(-logits)  # -log(sigmoid(logits))
        ctx.log("loss/G", loss)
        return loss.mean()

    def g_pl(self, ctx: PhaseContext) -> torch.Tensor:
        """G reg: path-length penalty on a shrunk batch."""
        n = max(ctx.gen["z"].shape[0] // self.pl_batch_shrink, 1)
        gen = {k: v[:n] if torch.is_tensor(v) and v.ndim > 0 else v for k, v in ctx.gen.items()}
        fake, ws = self.run_G(ctx.G, gen)
        height, width = fake.shape[-2:]
        noise = torch.randn_like(fake) / math.sqrt(height * width)
        grads = ctx.grad((fake * noise).sum(), ws)
        lengths = grads.float().square().sum(2).mean(1).sqrt()
        self.pl_mean = self.pl_mean.to(lengths.device)
        pl_mean = self.pl_mean.lerp(lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(pl_mean.detach())
        penalty = (lengths - pl_mean).square()
        ctx.log("pl_penalty", penalty)
        # `fake * 0` keeps every synthesis parameter in the graph (DDP expects gradients for all).
        return (penalty * self.pl_weight).mean() + fake.flatten()[0] * 0

    def d_main(self, ctx: PhaseContext) -> torch.Tensor:
        """D: minimise logits for generated clips, maximise them for real ones."""
        with torch.no_grad():
            fake, _ = self.run_G(ctx.G, ctx.gen)
        fake_logits = self._D(ctx, fake, ctx.gen["c"], ctx.gen["t"])
        real = ctx.real
        real_logits = self._D(ctx, real["frames"], real["c"], real["t"])
        ctx.log("scores/fake", fake_logits)
        ctx.log("scores/real", real_logits)
        ctx.log("signs/real", real_logits.sign())
        loss = F.softplus(fake_logits) + F.softplus(-real_logits)
        ctx.log("loss/D", loss)
        return loss.mean()

    def d_r1(self, ctx: PhaseContext) -> torch.Tensor:
        """D reg: R1 penalty on real clips (through the augmentation)."""
        frames = ctx.real["frames"].detach().requires_grad_(True)
        logits = self._D(ctx, frames, ctx.real["c"], ctx.real["t"])
        ctx.log("signs/real", logits.sign())
        grads = ctx.grad(logits.sum(), frames)
        per_frame = grads.float().square().sum([2, 3, 4])  # [B, T]
        penalty = per_frame.sum(1) if self.r1_frames == "sum" else per_frame.mean(1)
        ctx.log("r1_penalty", penalty)
        # `logits * 0` keeps every D parameter in the graph (DDP expects gradients for all).
        return (penalty * (self.r1_gamma / 2)).mean() + logits.sum() * 0

    def state_dict(self) -> dict[str, float]:
        return {"pl_mean": float(self.pl_mean)}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.pl_mean = torch.tensor(float(state.get("pl_mean", 0.0)))
