"""Modulated convolution with weight demodulation (StyleGAN2).

Each sample's style scales the conv's input channels; demodulation then rescales each output
channel to unit expected variance. The fused path folds both into per-sample weights and runs
one grouped convolution; the unfused path scales activations before and after a shared conv
(cheaper for large batches, and the path used when training).

Video generators give every frame of a video the same style. ``x`` may then hold ``T`` frames
per style row (``x [N*T, ...]``, frames of a video adjacent): the modulated weights are computed
once per video and the fused conv runs the ``T`` frames as its batch, with one group per video,
instead of ``N*T`` groups with ``T`` identical copies of each weight.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange

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
        x: ``[N*T, C_in, H, W]``: ``T >= 1`` consecutive rows share one style row.
        weight: ``[C_out, C_in, kh, kw]``.
        styles: ``[N, C_in]`` modulation coefficients.
        noise: added to the output (broadcastable to ``[N*T, C_out, H', W']``), or None.
        up, down, padding, resample_filter, flip_weight: as :func:`conv2d_resample`.
        demodulate: normalise each output channel (off for toRGB).
        fused_modconv: one grouped conv with per-sample weights, or scale-conv-scale.

    Returns:
        ``[N*T, C_out, H', W']``.
    """
    batch_size = styles.shape[0]
    c_out, c_in, kh, kw = weight.shape
    if x.shape[1] != c_in or styles.shape != (batch_size, c_in) or x.shape[0] % max(batch_size, 1):
        raise ValueError(f"modulated_conv2d: x {tuple(x.shape)} / styles {tuple(styles.shape)} "
                         f"do not fit weight {tuple(weight.shape)}")
    frames = x.shape[0] // batch_size

    # Pre-normalize to avoid fp16 overflow; demodulation undoes the scale.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(c_in * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    dcoefs = None
    if demodulate:
        # sum over (i, k) of (w_oik s_i)^2 = sum_i s_i^2 sum_k w_oik^2: one [N, C_in] x [C_in, C_out] product
        # instead of squaring the [N, C_out, C_in, kh, kw] modulated weights (the same value up to rounding).
        dcoefs = (styles.float().square() @ weight.float().square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, C_out]

    if not fused_modconv:
        per_row = lambda v: v.to(x.dtype).repeat_interleave(frames, dim=0)[:, :, None, None]  # noqa: E731
        x = x * per_row(styles)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down,
                            padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, per_row(dcoefs))
        if demodulate:
            return x * per_row(dcoefs)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    # Fused: fold the videos into conv groups; their frames are the conv's batch.
    w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, C_out, C_in, kh, kw]
    if demodulate:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)
    x = rearrange(x, "(n t) c h w -> t (n c) h w", n=batch_size)
    w = w.reshape(-1, c_in, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                        groups=batch_size, flip_weight=flip_weight)
    x = rearrange(x, "t (n c) h w -> (n t) c h w", n=batch_size)
    if noise is not None:
        x = x + noise
    return x
