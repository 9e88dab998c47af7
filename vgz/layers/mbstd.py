"""Minibatch standard deviation (Karras et al.): a discriminator sees the spread of its batch."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MinibatchStdLayer"]


class MinibatchStdLayer(nn.Module):
    """Append ``num_channels`` feature maps holding the std over groups of ``group_size`` samples.

    ``[N, C, H, W] -> [N, C + num_channels, H, W]``. ``group_size=None`` uses the whole batch;
    the batch size must be divisible by the group size actually used (``min(group_size, N)``).
    """

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = n if self.group_size is None else min(self.group_size, n)
        if n % g != 0:
            raise ValueError(f"minibatch-std: batch size {n} is not divisible by group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, n, F, c, H, W]: group samples, split channels
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # std over the group: [n, F, c, H, W]
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # [n, F, 1, 1]
        y = y.repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
