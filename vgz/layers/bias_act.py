"""Fused bias + activation + gain + clamp, in plain PyTorch.

``bias_act(x, b, act="lrelu")`` adds a per-channel bias, applies the activation, multiplies by the
activation's default gain (sqrt(2) for ReLU-like activations, so that the signal keeps unit
variance) and optionally clamps, as StyleGAN2 does after every convolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["ActivationSpec", "ACTIVATIONS", "bias_act"]


@dataclass(frozen=True)
class ActivationSpec:
    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float
    inplace: Callable[[torch.Tensor, float], torch.Tensor] | None = None  # same, overwriting its input


ACTIVATIONS: dict[str, ActivationSpec] = {
    "linear": ActivationSpec(lambda x, a: x, 0.0, 1.0, lambda x, a: x),
    "relu": ActivationSpec(lambda x, a: F.relu(x), 0.0, math.sqrt(2), lambda x, a: F.relu_(x)),
    "lrelu": ActivationSpec(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2), lambda x, a: F.leaky_relu_(x, a)),
    "tanh": ActivationSpec(lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": ActivationSpec(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": ActivationSpec(lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": ActivationSpec(lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": ActivationSpec(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": ActivationSpec(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def activation_spec(act: str) -> ActivationSpec:
    try:
        return ACTIVATIONS[act]
    except KeyError:
        raise ValueError(f"unknown activation {act!r}; expected one of {', '.join(ACTIVATIONS)}") from None


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    inplace: bool = False,
) -> torch.Tensor:
    """``clamp(act(x + b) * gain)``.

    Args:
        x: any tensor, e.g. ``[N, C, H, W]``.
        b: bias of shape ``[x.shape[dim]]`` or None.
        dim: the channel dimension that ``b`` runs along.
        act: a key of :data:`ACTIVATIONS`.
        alpha: the activation's shape parameter (leaky slope); its default when None.
        gain: output scale; the activation's default gain when None.
        clamp: clamp the output to ``[-clamp, clamp]``; no clamping when None.
        inplace: overwrite ``x`` (a fresh conv output at inference): each step then reuses its
            memory instead of allocating a new activation-sized tensor, several times faster on CPU.
    """
    spec = activation_spec(act)
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        b = b.reshape(shape)
    if inplace and spec.inplace is not None:
        if b is not None:
            x.add_(b)
        x = spec.inplace(x, alpha)
        if gain != 1:
            x.mul_(gain)
        if clamp is not None and clamp >= 0:
            x.clamp_(-clamp, clamp)
        return x
    if b is not None:
        x = x + b
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x
