"""Fourier features of scalar coordinates (time stamps, time gaps).

StyleGAN-V embeds times with sines and cosines at log-spaced frequencies, the highest period
covering the longest clip; :func:`log_spaced_frequencies` builds those frequencies and
:class:`FourierFeatures` applies them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["log_spaced_frequencies", "FourierFeatures"]


def log_spaced_frequencies(max_num_frames: int, skip_small_t_freqs: int = 0) -> torch.Tensor:
    """Angular frequencies ``pi * 2^k / T`` for ``k = 0 .. log2(T) - 1 - skip``: ``[1, F]``.

    ``T`` is ``max_num_frames`` rounded up to a power of two; ``skip_small_t_freqs`` drops that
    many of the highest frequencies (those that resolve the smallest time differences).
    """
    if max_num_frames < 1:
        raise ValueError(f"max_num_frames must be >= 1, got {max_num_frames}")
    time_resolution = 2 ** math.ceil(math.log2(max_num_frames))
    num_feats = math.ceil(math.log2(time_resolution))
    if skip_small_t_freqs < 0 or skip_small_t_freqs > num_feats:
        raise ValueError(f"skip_small_t_freqs must be in [0, {num_feats}], got {skip_small_t_freqs}")
    powers = 2.0 ** torch.arange(num_feats - skip_small_t_freqs, dtype=torch.float32)
    return (powers * math.pi / time_resolution).unsqueeze(0)


class FourierFeatures(nn.Module):
    """``t -> [sin(t * f), cos(t * f)]`` for fixed frequencies ``f``.

    Input: any shape ``[...]``; output ``[..., 2F]`` (all sines, then all cosines).
    """

    def __init__(self, max_num_frames: int, skip_small_t_freqs: int = 0):
        super().__init__()
        self.register_buffer("fourier_coefs", log_spaced_frequencies(max_num_frames, skip_small_t_freqs))

    @property
    def dim(self) -> int:
        return self.fourier_coefs.shape[1] * 2

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        raw = t.float().unsqueeze(-1) * self.fourier_coefs[0]  # [..., F]
        return torch.cat([raw.sin(), raw.cos()], dim=-1)
