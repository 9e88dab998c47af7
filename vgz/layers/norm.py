"""Normalisation of latent vectors."""

from __future__ import annotations

import torch

__all__ = ["normalize_2nd_moment"]


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit mean square along ``dim`` (the pixel norm applied to z)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()
