"""StyleVideoGAN's losses: WGAN with gradient penalty, and the gradient angle penalty.

* :func:`gradient_penalty` (Gulrajani et al. 2017, as StyleVideoGAN uses it with lambda 50):
  ``mean_b (|| dC(x_b) / dx_b || - 1)^2`` at ``x = eps * real + (1 - eps) * fake``, one ``eps ~ U[0, 1]``
  per sample, the norm over a whole sample (every step of its W+ sequence).
* :class:`GradientAnglePenalty` (StyleVideoGAN's own, lambda 100): the generator's last output
  ``l_{t-1}`` moves away from its first ``l_0``; ``d = (l_{t-1} - l_0 - mu) / sigma`` with per-component
  running statistics (buffers, so checkpoints keep them; treated as constants in the gradient), and
  ``phi = arctan(||dd/ds|| / ||dd/di||)``, the norms those of the Jacobians of ``d`` with respect to
  all step noises ``s`` and to the content code ``i`` (Frobenius norms, per sample). ``phi`` near 0
  means the motion is decided by ``i`` alone, so the trajectory loops; the penalty
  ``mean_b max(0, pi/4 - phi_b)^2`` pushes the step noise's influence up to at least ``i``'s.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

__all__ = ["gradient_penalty", "GradientAnglePenalty", "jacobian_norm"]


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None,
                     grad: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """WGAN-GP: ``mean_b (||grad_x C(x_b)|| - 1)^2`` at random interpolates of ``real`` and ``fake``
    (same shape ``[B, ...]``), the norm over each whole sample; differentiable (``create_graph``).
    ``grad(output, inputs)``: how the gradient is taken (the trainer's ``ctx.grad`` undoes fp16 loss
    scaling); default ``torch.autograd.grad`` with ``create_graph=True``."""
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} must have the same shape")
    eps = torch.rand([real.shape[0]] + [1] * (real.ndim - 1), generator=generator,
                     device=generator.device if generator is not None else real.device).to(real)
    x = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x).sum()
    grads = grad(scores, x) if grad is not None else torch.autograd.grad(scores, x, create_graph=True)[0]
    return (grads.flatten(1).norm(dim=1) - 1).square().mean()


def jacobian_norm(y: torch.Tensor, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-sample Frobenius norms of ``dy_b / dx_b`` for ``y [B, D]`` computed from each ``x [B, ...]``
    sample by sample (no mixing across the batch): one ``[B]`` per ``x``, differentiable.

    All ``D`` rows of the Jacobians come from one vectorised backward pass (``is_grads_batched``),
    several times faster than ``D`` passes of small operations (StyleVideoGAN's generator step is
    mostly this)."""
    d = y.shape[1]
    basis = torch.eye(d, device=y.device, dtype=y.dtype).unsqueeze(1).expand(d, *y.shape)  # [D, B, D]
    grads = torch.autograd.grad(y, xs, grad_outputs=basis, is_grads_batched=True, create_graph=True)
    return tuple(g.transpose(0, 1).flatten(1).square().sum(dim=1).sqrt() for g in grads)


class GradientAnglePenalty(nn.Module):
    """StyleVideoGAN's gradient angle penalty with its running normalisation of ``l_{t-1} - l_0``.

    Args:
        dim: size of the generator's ``l`` (paper: 32).
        momentum: weight of each batch in the running mean and variance.
    """

    def __init__(self, dim: int, momentum: float = 0.01, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def normalized_distance(self, l_first: torch.Tensor, l_last: torch.Tensor) -> torch.Tensor:
        """``d [B, dim]``: ``l_last - l_first`` standardised with the running statistics, which it updates
        first when the module is training (the statistics are constants in the gradient)."""
        diff = l_last - l_first
        if self.training:
            with torch.no_grad():
                self.running_mean.lerp_(diff.mean(dim=0), self.momentum)
                var = diff.var(dim=0, unbiased=False) if diff.shape[0] > 1 else torch.zeros_like(self.running_var)
                self.running_var.lerp_(var, self.momentum)
        return (diff - self.running_mean) / (self.running_var + self.eps).sqrt()

    def angle(self, d: torch.Tensor, i: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``phi [B]`` in ``[0, pi/2]``: ``arctan(||dd/ds|| / ||dd/di||)`` per sample."""
        norm_s, norm_i = jacobian_norm(d, s, i)
        return torch.atan2(norm_s, norm_i)

    def forward(self, l_first: torch.Tensor, l_last: torch.Tensor, i: torch.Tensor, s: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(penalty, phi)``: ``mean_b max(0, pi/4 - phi_b)^2`` and the angles ``[B]``. ``i`` and ``s``
        must require grad and be what ``l_first``/``l_last`` were computed from."""
        phi = self.angle(self.normalized_distance(l_first, l_last), i, s)
        return (math.pi / 4 - phi).clamp(min=0).square().mean(), phi
