"""Equalized-learning-rate layers and convolution with FIR up/downsampling.

Equalized learning rate (Karras et al.): weights are stored with unit variance and scaled by
``1/sqrt(fan_in)`` at run time, so Adam's per-parameter step sizes act alike on every layer.
Parameter names (``weight``, ``bias``, ``resample_filter``) follow NVlabs' StyleGAN2-ADA, so
its checkpoints load by name.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vgz.layers.bias_act import activation_spec, bias_act
from vgz.layers.upfirdn2d import Padding, filter_size, parse_padding, setup_filter, upfirdn2d

__all__ = ["conv2d_resample", "block_dtype", "FullyConnectedLayer", "Conv2dLayer", "Conv1dLayer"]


def block_dtype(use_fp16: bool, force_fp32: bool, device: torch.device,
                param_dtype: torch.dtype = torch.float32) -> torch.dtype:
    """The dtype a StyleGAN block runs in.

    ``force_fp32``: float32. A block whose parameters were cast to half precision (``param_dtype``
    bfloat16 or float16, e.g. after ``pipe.to(dtype=torch.bfloat16)``) runs in that dtype: a user
    who casts the model asks for its arithmetic. Otherwise a block with ``use_fp16`` (the
    ``num_fp16_res`` highest resolutions) runs in float16 on GPUs, where it pays; on CPUs half
    precision is slow and inexact, so those blocks run in float32 there."""
    if force_fp32:
        return torch.float32
    if param_dtype in (torch.float16, torch.bfloat16):
        return param_dtype
    return torch.float16 if use_fp16 and device.type == "cuda" else torch.float32


def _conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: Sequence[int] | int = 0,
          groups: int = 1, transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    if not flip_weight:  # F.conv2d correlates; flipping the kernel makes it a true convolution
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """2-D convolution with optional FIR up/downsampling, padding applied once up front.

    Args:
        x: ``[N, C_in, H, W]``.
        w: ``[C_out, C_in // groups, kh, kw]``, same dtype as ``x``.
        f: low-pass filter from :func:`setup_filter` (None = identity).
        up, down: integer resampling factors.
        padding: with respect to the upsampled image.
        groups: grouped convolution (the fused modulated conv uses one group per sample).
        flip_weight: False = convolution, True = correlation (as ``F.conv2d``).
        flip_filter: False = convolution, True = correlation, for ``f``.

    Returns:
        ``[N, C_out, H * up / down, W * up / down]`` (for "same" padding).
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d_resample expects 4-D x and w, got {tuple(x.shape)} and {tuple(w.shape)}")
    if w.dtype != x.dtype:
        raise TypeError(f"weight dtype {w.dtype} differs from input dtype {x.dtype}")
    c_out, c_in_g, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)

    # Grow the padding by what the resampling filter needs.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    # 1x1 kernel, downsampling: filter and decimate first, then the cheap 1x1 conv.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)

    # 1x1 kernel, upsampling: conv at low resolution, then upsample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)

    # Downsampling: filter, then strided conv.
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling: transposed strided conv, then filter (and downsample if asked).
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, c_out // groups, c_in_g, kh, kw).transpose(1, 2)
            w = w.reshape(groups * c_in_g, c_out // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling and symmetric padding: a plain conv.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # General case.
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def _scaled(layer: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An equalized-lr layer's weight and bias at run-time scale, in ``dtype``."""
    w = layer.weight.to(dtype) * layer.weight_gain
    b = layer.bias
    if b is not None:
        b = b.to(dtype)
        if layer.bias_gain != 1:
            b = b * layer.bias_gain
    return w, b


class FullyConnectedLayer(nn.Module):
    """Equalized-lr linear layer with fused bias and activation: ``[N, in] -> [N, out]``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        activation_spec(activation)  # fail early on a typo
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = _scaled(self, x.dtype)
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Equalized-lr conv with optional FIR up/downsampling, bias, activation and clamp.

    ``[N, C_in, H, W] -> [N, C_out, H * up / down, W * up / down]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 channels_last: bool = False, trainable: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.activation = activation
        self.up, self.down = up, down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = activation_spec(activation).def_gain
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=fmt))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        if not trainable:  # Freeze-D: frozen layers keep their names but get no gradient
            self.requires_grad_(False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp,
                        inplace=not torch.is_grad_enabled())  # x is the conv's fresh output

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"activation={self.activation}, up={self.up}, down={self.down}")


class Conv1dLayer(nn.Module):
    """Equalized-lr 1-D conv over time: ``[N, C_in, L] -> [N, C_out, L']``.

    As in StyleGAN-V's motion network, ``"lrelu"`` here is a plain leaky ReLU (slope 0.2) with no
    sqrt(2) gain, unlike :class:`Conv2dLayer`.

    ``causal=True`` (StyleInV's ``mask_right``): output ``i`` sees inputs ``i - kernel_size // 2 .. i``
    only, zero-padded on the left, and ``L' = L``. The stored kernel keeps all ``kernel_size`` taps,
    as StyleInV stores it (its right half is zeroed at run time), so its checkpoints load by name;
    the right taps are simply never read.
    """

    def __init__(self, in_features: int, out_features: int, kernel_size: int, padding: int = 0, stride: int = 1,
                 activation: str = "linear", lr_multiplier: float = 1.0, bias: bool = True, bias_init: float = 0.0,
                 causal: bool = False):
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"Conv1dLayer activation must be 'linear' or 'lrelu', got {activation!r}")
        if causal and (kernel_size % 2 == 0 or padding or stride != 1):
            raise ValueError("a causal Conv1dLayer takes an odd kernel_size, no padding and stride 1 "
                             f"(got kernel_size={kernel_size}, padding={padding}, stride={stride})")
        self.activation, self.padding, self.stride, self.causal = activation, padding, stride, causal
        self.weight = nn.Parameter(torch.randn([out_features, in_features, kernel_size]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features * kernel_size)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = _scaled(self, x.dtype)
        if self.causal:
            reach = w.shape[2] // 2
            x, w = F.pad(x, (reach, 0)), w[:, :, :reach + 1]
        y = F.conv1d(x, w, b, stride=self.stride, padding=self.padding)
        return F.leaky_relu(y, 0.2) if self.activation == "lrelu" else y
