"""Optimizers the papers' code trains with that PyTorch lacks.

:class:`Ranger` is the optimizer of pSp's ``training/ranger.py`` (lessw2020's Ranger, 2019-2020):
RAdam (Liu et al. 2020) with gradient centralization (Yong et al. 2020) and Lookahead (Zhang et
al. 2019). Written for vgz from that description; the defaults are pSp's.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch

__all__ = ["Ranger"]


class Ranger(torch.optim.Optimizer):
    """RAdam + gradient centralization + Lookahead.

    Per step and parameter (RAdam): centralize the gradient of every weight with more than one
    dimension (subtract its mean over all but the first axis), update the moments, and take an
    adaptive step when the variance of the adaptive learning rate is tractable (the approximated
    SMA length ``rho_t`` above ``n_sma_threshold``) or a momentum step before. Every ``k`` steps
    (Lookahead) the slow weights move ``alpha`` of the way to the fast ones, which restart there.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, alpha: float = 0.5, k: int = 6,
                 n_sma_threshold: float = 5, betas: tuple[float, float] = (0.95, 0.999), eps: float = 1e-5,
                 weight_decay: float = 0.0, use_gc: bool = True):
        if not 0.0 <= alpha <= 1.0 or k < 1 or lr <= 0 or eps <= 0:
            raise ValueError(f"Ranger: invalid alpha={alpha}, k={k}, lr={lr} or eps={eps}")
        defaults = dict(lr=lr, alpha=alpha, k=k, n_sma_threshold=n_sma_threshold, betas=tuple(betas), eps=eps,
                        weight_decay=weight_decay, use_gc=use_gc)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            n_sma_max = 2 / (1 - beta2) - 1
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Ranger does not support sparse gradients")
                grad = p.grad.float()
                if group["use_gc"] and grad.ndim > 1:
                    grad = grad - grad.mean(dim=tuple(range(1, grad.ndim)), keepdim=True)
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                    state["slow_buffer"] = p.detach().clone()
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)

                beta2_t = beta2 ** t
                n_sma = n_sma_max - 2 * t * beta2_t / (1 - beta2_t)
                fp32 = p.detach().float()
                if group["weight_decay"]:
                    fp32.mul_(1 - group["weight_decay"] * group["lr"])
                if n_sma > group["n_sma_threshold"]:
                    rect = math.sqrt((1 - beta2_t) * (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma
                                     * n_sma_max / (n_sma_max - 2))
                    step_size = rect / (1 - beta1 ** t)
                    fp32.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]), value=-step_size * group["lr"])
                else:
                    fp32.add_(exp_avg, alpha=-group["lr"] / (1 - beta1 ** t))
                p.copy_(fp32)
                if t % group["k"] == 0:
                    slow = state["slow_buffer"]
                    slow.add_(p.detach() - slow, alpha=group["alpha"])
                    p.copy_(slow)
        return loss
