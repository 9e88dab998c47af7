"""Upsample, pad, FIR-filter and downsample images, in plain PyTorch (no compiled kernels).

The semantics are those of ``scipy.signal.upfirdn`` in 2-D and of StyleGAN2's ``upfirdn2d``:
insert ``up - 1`` zeros after each pixel, pad (negative padding crops), convolve with the FIR
filter ``f`` keeping only outputs whose footprint lies inside the padded image, keep every
``down``-th pixel. Filters come from :func:`setup_filter`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["setup_filter", "upfirdn2d", "filter2d", "upsample2d", "downsample2d", "filter_size"]

Padding = int | Sequence[int]


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    vx, vy = v
    return int(vx), int(vy)


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """``p``, ``[px, py]`` or ``[px0, px1, py0, py1]`` -> ``(px0, px1, py0, py1)``."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) == 4:
        return tuple(padding)  # type: ignore[return-value]
    raise ValueError(f"padding must have 1, 2 or 4 values, got {padding}")


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """``(width, height)`` of a filter made by :func:`setup_filter` (1x1 for None)."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[-1], f.shape[-2]


def setup_filter(
    f: Sequence[float] | Sequence[Sequence[float]] | torch.Tensor | None,
    device: torch.device | str | None = None,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: bool | None = None,
) -> torch.Tensor:
    """Turn filter taps into a float32 FIR filter.

    A 1-D list of taps becomes the outer product (a 2-D filter) unless ``separable`` is True
    (default: separable from 8 taps up). ``normalize`` makes the taps sum to 1 (unit DC gain).

    Returns:
        ``[taps]`` (separable) or ``[height, width]``.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"filter must be a non-empty scalar, 1-D or 2-D, got shape {tuple(f.shape)}")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f if device is None else f.to(device=device)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Pad, upsample, filter and downsample a batch of images.

    Args:
        x: ``[N, C, H, W]``.
        f: filter from :func:`setup_filter`, or None for identity.
        up, down: integer factors, or ``[x, y]``.
        padding: with respect to the upsampled image; negative values crop.
        flip_filter: False = convolution, True = correlation.
        gain: overall signal gain.

    Returns:
        ``[N, C, H', W']``.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got shape {tuple(x.shape)}")
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = parse_padding(padding)
    n, c, h, w = x.shape

    if upx > 1 or upy > 1:  # zero insertion
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)

    # Symmetric zero padding is left to the convolution (no padded copy of x); the rest pads or crops.
    conv_pad = (max(min(py0, py1), 0), max(min(px0, px1), 0))
    px0, px1, py0, py1 = px0 - conv_pad[1], px1 - conv_pad[1], py0 - conv_pad[0], py1 - conv_pad[0]
    if px0 or px1 or py0 or py1:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    f = f * (gain ** (f.ndim / 2))
    f = f.to(x.dtype)
    if not flip_filter:  # conv2d computes correlation
        f = f.flip(list(range(f.ndim)))

    # Striding the convolution equals filtering everything and keeping every `down`-th pixel.
    if f.ndim == 2:
        weight = f[None, None].expand(c, 1, *f.shape)
        return F.conv2d(x, weight, stride=(downy, downx), padding=conv_pad, groups=c)
    x = F.conv2d(x, f[None, None, None, :].expand(c, 1, 1, -1), stride=(1, downx), padding=(0, conv_pad[1]), groups=c)
    return F.conv2d(x, f[None, None, :, None].expand(c, 1, -1, 1), stride=(downy, 1), padding=(conv_pad[0], 0), groups=c)


def filter2d(x: torch.Tensor, f: torch.Tensor | None, padding: Padding = 0,
             flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Filter keeping the size (plus ``padding``)."""
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)


def upsample2d(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 2,
               padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Upsample by ``up`` with the anti-aliasing filter ``f``: ``[N,C,H,W] -> [N,C,H*up,W*up]``."""
    upx, upy = _pair(up)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: torch.Tensor, f: torch.Tensor | None, down: int | Sequence[int] = 2,
                 padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Downsample by ``down`` with the anti-aliasing filter ``f``: ``[N,C,H,W] -> [N,C,H/d,W/d]``."""
    downx, downy = _pair(down)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)
