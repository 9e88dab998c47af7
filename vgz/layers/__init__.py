"""Shared building blocks of vgz's networks, in plain PyTorch (no compiled extensions).

Layout convention: images ``[N, C, H, W]``; videos ``[B, T, C, H, W]``.
"""

from vgz.layers.bias_act import ACTIVATIONS, bias_act
from vgz.layers.conv import Conv1dLayer, Conv2dLayer, FullyConnectedLayer, block_dtype, conv2d_resample
from vgz.layers.fourier import FourierFeatures, log_spaced_frequencies
from vgz.layers.mbstd import MinibatchStdLayer
from vgz.layers.modulated import modulated_conv2d
from vgz.layers.norm import normalize_2nd_moment
from vgz.layers.noise import NOISE_MODES, NoiseMode, noise_input
from vgz.layers.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = [
    "block_dtype",
    "ACTIVATIONS",
    "bias_act",
    "Conv1dLayer",
    "Conv2dLayer",
    "FullyConnectedLayer",
    "conv2d_resample",
    "FourierFeatures",
    "log_spaced_frequencies",
    "MinibatchStdLayer",
    "modulated_conv2d",
    "NOISE_MODES",
    "NoiseMode",
    "noise_input",
    "downsample2d",
    "filter2d",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
    "normalize_2nd_moment",
]

