"""Modulated convolution with weight demodulation (StyleGAN2).

Each sample's style scales the conv's input channels; demodulation then rescales each output
channel to unit expected variance. The fused path folds both into per-sample weights and runs
one grouped convolution; the unfused path scales activations before and after a shared conv
(cheaper for large batches, and the path used when training).
"""

from __future__ import annotations

import math

import torch

from vgz.layers.conv import conv2d_resample

__all__ = ["modulated_conv2d"]


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """Modulated (and demodulated) convolution.

    Args:
        x: ``[N, C_in, H, W]``.
        weight: ``[C_out, C_in, kh, kw]``.
        styles: ``[N, C_in]`` modulation coefficients.
        noise: added to the output (broadcastable to ``[N, C_out, H', W']``), or None.
        up, down, padding, resample_filter, flip_weight: as :func:`conv2d_resample`.
        demodulate: normalise each output channel (off for toRGB).
        fused_modconv: one grouped conv with per-sample weights, or scale-conv-scale.

    Returns:
        ``[N, C_out, H', W']``.
    """
    batch_size = x.shape[0]
    c_out, c_in, kh, kw = weight.shape
    if x.shape[1] != c_in or styles.shape != (batch_size, c_in):
        raise ValueError(f"modulated_conv2d: x {tuple(x.shape)} / styles {tuple(styles.shape)} "
                         f"do not fit weight {tuple(weight.shape)}")

    # Pre-normalize to avoid fp16 overflow; demodulation undoes the scale.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(c_in * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, C_out, C_in, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, C_out]
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down,
                            padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    # Fused: fold the batch into conv groups.
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, c_in, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                        groups=batch_size, flip_weight=flip_weight)
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise
    return x
