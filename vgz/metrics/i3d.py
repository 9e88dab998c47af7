"""I3D (Inception-3D, Kinetics-400): the feature detector of the Frechet Video Distance.

This is vgz's own implementation of the network that the FVD code of VideoGPT
(``videogpt/fvd/pytorch_i3d.py``) and TATS (``tats/fvd/pytorch_i3d.py``) run, a port of
piergiaj/pytorch-i3d whose weights, ``i3d_pretrained_400.pt``, were converted from DeepMind's
TF-Hub ``i3d-kinetics-400/1``. Its ``state_dict`` has the same names and shapes as that port's, so
the file loads as is (:func:`load_i3d`), and it computes what the port computes:

* every convolution and max-pool pads "same" the TensorFlow way, from the size of its input: a
  total of ``max(k - s, 0)`` when the stride divides the size, else ``max(k - size % s, 0)``, the
  smaller half in front;
* batch norm uses the port's ``eps=1e-5`` (TF-Hub's original uses 1e-3: :class:`I3DConfig`);
* the head averages the ``[2, 7, 7]`` windows of the last ``[t, 7, 7]`` map (stride 1), applies
  the ``1x1x1`` logits convolution to each of the ``t - 1`` windows and averages the logits over
  time. The FVD features are these 400 logits (no softmax).

FVD preprocessing (:class:`I3DDetector`): uint8 frames are resized to 224x224 (bilinear,
``align_corners=False``, aspect ratio not kept) and scaled by ``2 x / 255 - 1`` to [-1, 1], as
TATS's ``fvd.preprocess`` does (and StyleGAN-V's ``i3d_torchscript.pt`` with ``rescale`` and
``resize``). VideoGPT's preprocessing instead resizes the shorter side and crops the centre: the
same for square clips, different for others.

:func:`export_torchscript` writes a self-contained TorchScript file called like StyleGAN-V's
``i3d_torchscript.pt``.
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vgz.configs import ComponentConfig, config_field
from vgz.metrics.features import (FeatureDetector, check_state_dict, file_sha256, read_state_dict,
                                  save_torchscript)
from vgz.registry import register, register_kind

register_kind("detector", "frozen networks that turn clips or images into features for the Frechet metrics")

__all__ = ["I3DConfig", "InceptionI3d", "I3DDetector", "load_i3d", "export_torchscript", "MIN_FRAMES"]

#: Fewest frames the network takes: time is divided by 8 (rounded up) and the head pools 2 steps.
MIN_FRAMES = 9
#: Spatial sizes the network takes: divided by 32 (rounded up) they must be the head's 7.
MIN_SIZE, MAX_SIZE = 193, 224

# Inception blocks: (name, input channels, output channels of b0, b1a, b1b, b2a, b2b, b3b).
# Branch 0: 1x1x1; branch 1: 1x1x1 then 3x3x3; branch 2: 1x1x1 then 3x3x3; branch 3: max-pool
# 3x3x3 then 1x1x1. The output concatenates b0, b1b, b2b and b3b.
_BLOCKS: tuple[tuple[str, int, tuple[int, int, int, int, int, int]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)
_HEAD_CHANNELS = 1024  # Mixed_5c: 384 + 384 + 128 + 128


@dataclass
class I3DConfig(ComponentConfig):
    """Settings of the I3D detector.

    Presets: ``port`` (batch-norm epsilon 1e-5, the VideoGPT/TATS port whose FVD numbers papers
    report), ``tf`` (1e-3, the TF-Hub original's; only the epsilon changes, not TF's resize).
    """

    num_classes: int = config_field(400, min=1, help="logits (= FVD features): 400 for Kinetics-400")
    in_channels: int = config_field(3, min=1, help="input channels (RGB)")
    bn_eps: float = config_field(1e-5, min=0.0, help="batch-norm epsilon: 1e-5 as in the VideoGPT/TATS port, "
                                                    "whose numbers it reproduces; 1e-3 as in the TF-Hub original")
    resolution: int = config_field(224, min=MIN_SIZE, max=MAX_SIZE,
                                   help="frames are resized to resolution x resolution (224 in all FVD code; "
                                        "the head's 7x7 pool needs 193..224)")
    channels_last: bool = config_field(True, help="run the convolutions channels-last: 1.5x faster on CPU, logits "
                                                  "within ~1e-6 relative of the port's; False: its exact arithmetic")

    presets = {"port": {"bn_eps": 1e-5}, "tf": {"bn_eps": 1e-3}}


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (front, back) of one axis: the output has ceil(size / stride) steps."""
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    """Zero-pad ``[B, C, T, H, W]`` so that a (kernel, stride) window gives ceil(size / stride) steps."""
    t0, t1 = _same_padding(x.shape[2], kernel[0], stride[0])
    h0, h1 = _same_padding(x.shape[3], kernel[1], stride[1])
    w0, w1 = _same_padding(x.shape[4], kernel[2], stride[2])
    if t0 + t1 + h0 + h1 + w0 + w1 == 0:
        return x
    return F.pad(x, [w0, w1, h0, h1, t0, t1])  # F.pad lists the last axis first


class Unit3D(nn.Module):
    """Convolution with "same" padding, batch norm (no learned scale in the TF original: the
    converted file stores ones) and ReLU. ``[B, C_in, T, H, W] -> [B, C_out, ceil(T/s), ...]``.

    Sub-modules are named ``conv3d`` and ``bn`` as in the port, for its state dict.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), *, bn_eps: float = 1e-5,
                 head: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        # The head (logits) has a bias and neither batch norm nor ReLU; the others the reverse.
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=head)
        # momentum 0.001 is TF's decay 0.999, as in the port; it only matters in training mode.
        self.bn: nn.Module = nn.Identity() if head else nn.BatchNorm3d(out_channels, eps=bn_eps, momentum=0.001)
        self.relu = not head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv3d(_pad_same(x, self.kernel, self.stride)))
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max-pool with "same" padding: ``[B, C, T, H, W] -> [B, C, ceil(T/s), ceil(H/s), ceil(W/s)]``.

    Pads with zeros, as the port does; TF pads max-pools with -inf, which gives the same result
    here because every pool follows a ReLU (its inputs are >= 0).
    """

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated along channels: ``[B, C_in, T, H, W] -> [B, C_out, T, H, W]``.

    Branch names (``b0``, ``b1a``, ``b1b``, ``b2a``, ``b2b``, ``b3b``) are the port's.
    """

    def __init__(self, in_channels: int, out: tuple[int, int, int, int, int, int], bn_eps: float) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0], bn_eps=bn_eps)
        self.b1a = Unit3D(in_channels, out[1], bn_eps=bn_eps)
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3), bn_eps=bn_eps)
        self.b2a = Unit3D(in_channels, out[3], bn_eps=bn_eps)
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3), bn_eps=bn_eps)
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, out[5], bn_eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """The I3D network: float ``[B, in_channels, T, H, W]`` in [-1, 1] -> logits ``[B, num_classes]``.

    ``T >= 9`` (:data:`MIN_FRAMES`) and ``193 <= H, W <= 224``: FVD feeds 16 frames of 224x224.
    Stage names are the port's (``Conv3d_1a_7x7`` ... ``Mixed_5c``, ``logits``), so its state dict
    loads as is. Meant for inference: the port's dropout before the logits (active only in
    training mode) is left out.
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        self.min_frames, self.min_size, self.max_size = MIN_FRAMES, MIN_SIZE, MAX_SIZE  # TorchScript reads no globals
        # Stem: spatial size / 8 (time / 2), then the Inception blocks (spatial / 4, time / 4 more).
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2), bn_eps=bn_eps)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, bn_eps=bn_eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), bn_eps=bn_eps)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        blocks = {name: InceptionBlock(cin, out, bn_eps) for name, cin, out in _BLOCKS}
        self.Mixed_3b, self.Mixed_3c = blocks["Mixed_3b"], blocks["Mixed_3c"]
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b, self.Mixed_4c, self.Mixed_4d = blocks["Mixed_4b"], blocks["Mixed_4c"], blocks["Mixed_4d"]
        self.Mixed_4e, self.Mixed_4f = blocks["Mixed_4e"], blocks["Mixed_4f"]
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b, self.Mixed_5c = blocks["Mixed_5b"], blocks["Mixed_5c"]
        self.logits = Unit3D(_HEAD_CHANNELS, num_classes, head=True)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T, H, W] -> [B, 1024, ceil(T/8), ceil(H/32), ceil(W/32)]`` (the Mixed_5c output)."""
        x = self.MaxPool3d_2a_3x3(self.Conv3d_1a_7x7(x))
        x = self.MaxPool3d_3a_3x3(self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x)))
        x = self.MaxPool3d_4a_3x3(self.Mixed_3c(self.Mixed_3b(x)))
        x = self.Mixed_4f(self.Mixed_4e(self.Mixed_4d(self.Mixed_4c(self.Mixed_4b(x)))))
        x = self.MaxPool3d_5a_2x2(x)
        return self.Mixed_5c(self.Mixed_5b(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError("InceptionI3d: expected float [B, " + str(self.in_channels)
                             + ", T, H, W], found shape " + str(list(x.shape)))
        t, h, w = x.shape[2], x.shape[3], x.shape[4]
        if t < self.min_frames or min(h, w) < self.min_size or max(h, w) > self.max_size:
            # Smaller inputs leave the [2, 7, 7] head pool nothing to pool; larger ones leave more
            # than one 7x7 window, and the port would return a map instead of one vector.
            raise ValueError("InceptionI3d: expected at least 9 frames of 193..224 pixels a side (FVD: 16 "
                             "frames of 224x224), found T, H, W = " + str([t, h, w]))
        x = F.avg_pool3d(self.feature_map(x), kernel_size=(2, 7, 7), stride=(1, 1, 1))  # [B, 1024, t - 1, 1, 1]
        logits = self.logits(x)  # [B, classes, t - 1, 1, 1]: logits of each 2-step window
        return logits.flatten(2).mean(dim=2)  # averaged over time, as the port (and TF's I3D) do


@register("detector", "i3d")
class I3DDetector(FeatureDetector):
    """I3D for FVD: uint8 clips ``[B, T, 3, H, W]`` -> the 400 Kinetics logits ``[B, 400]``.

    Preprocessing as the FVD code of TATS: each frame resized to ``resolution`` squared (bilinear,
    ``align_corners=False``, aspect ratio not kept), values scaled to [-1, 1]. Built from a config,
    the weights are random; :func:`load_i3d` loads ``i3d_pretrained_400.pt``. The network stays
    in eval mode (batch norm uses its running statistics) and frozen.
    """

    config_class = I3DConfig
    kind = "video"

    def __init__(self, config: I3DConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        if config is None:
            config = I3DConfig(**overrides)
        elif overrides:
            config = config.replace(**overrides)
        self.config = config
        self.net = InceptionI3d(config.num_classes, config.in_channels, config.bn_eps)
        self.name = "i3d"
        self.feature_dim = config.num_classes
        self.settings = {"bn_eps": config.bn_eps, "resolution": config.resolution}  # what changes the features
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> I3DDetector:
        """Frozen: the network stays in eval mode whatever ``mode`` the caller sets."""
        super().train(mode)
        self.net.eval()
        return self

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, T, C, H, W]`` -> float ``[B, C, T, R, R]`` in [-1, 1] (``R = resolution``)."""
        b = x.shape[0]
        r = self.config.resolution
        # Contiguous as in the port: clips permuted from [B, T, H, W, C] (how decoders give them) are
        # channels-last in memory, and interpolate's channels-last kernel rounds differently.
        frames = rearrange(x, "b t c h w -> (b t) c h w").float().contiguous()
        if frames.shape[-2:] != (r, r):  # a resize to the same size is the identity (align_corners=False)
            frames = F.interpolate(frames, size=(r, r), mode="bilinear", align_corners=False)
        # Resize first, then scale, in TATS's order (the rounding differs from the reverse order).
        frames = 2.0 * frames / 255.0 - 1.0
        return rearrange(frames, "(b t) c h w -> b c t h w", b=b)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, T, 3, H, W]`` (``T >= 9``) -> logits ``[B, num_classes]``."""
        if x.shape[1] < MIN_FRAMES:
            raise ValueError(f"{self.name}: expected clips of at least {MIN_FRAMES} frames (FVD uses 16), "
                             f"found {x.shape[1]} in {tuple(x.shape)}")
        x = self.preprocess(x)
        if self.config.channels_last:  # the layout propagates from the input through every convolution
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return self.net(x)


def load_i3d(path: str | os.PathLike, *, bn_eps: float | None = None,
             state: dict[str, torch.Tensor] | None = None) -> I3DDetector:
    """The I3D detector with the weights of a state-dict file such as ``i3d_pretrained_400.pt``.

    ``.safetensors`` files are read with safetensors, others with ``torch.load(weights_only=True)``
    (no pickled code runs). The number of classes follows the file's logits layer. Batch-norm
    ``num_batches_tracked`` counters may be absent (the converted file has none; they are unused).

    Args:
        path: the state-dict file.
        bn_eps: batch-norm epsilon; None: the port's 1e-5.
        state: the file's state dict when the caller has read it already.

    Raises:
        DetectorError: unreadable file, missing or unexpected keys, or shapes that differ, naming
            the file and a few of the keys.
    """
    path = Path(path)
    state = read_state_dict(path) if state is None else state
    bias = state.get("logits.conv3d.bias")
    num_classes = int(bias.shape[0]) if bias is not None and bias.dim() == 1 else 400
    config = I3DConfig(num_classes=num_classes, **({} if bn_eps is None else {"bn_eps": bn_eps}))
    with torch.device("meta"):  # shapes only: every tensor comes from the file, none is initialised in vain
        detector = I3DDetector(config)
    full = check_state_dict(state, detector.net.state_dict(), path,
                            f"the state dict of the VideoGPT/TATS I3D port (i3d_pretrained_400.pt, num_classes={num_classes})")
    detector.to_empty(device="cpu")
    detector.net.load_state_dict(full, strict=True)
    detector.sha256 = file_sha256(path)
    detector.source = str(path)
    return detector


class _ScriptedI3D(nn.Module):
    """What :func:`export_torchscript` scripts: StyleGAN-V's ``i3d_torchscript.pt`` call signature."""

    __constants__ = ["resolution"]  # in the code, so that weights_sha256 tells resize targets apart

    def __init__(self, net: InceptionI3d, resolution: int) -> None:
        super().__init__()
        self.net = net
        self.resolution = resolution

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        """uint8 or float ``[B, C, T, H, W]`` -> logits (``return_features``) or probabilities ``[B, classes]``."""
        x = x.to(torch.float32)
        if rescale:  # uint8 [0, 255] -> [-1, 1]
            x = 2.0 * x / 255.0 - 1.0
        if resize:  # time kept: trilinear at the same length is bilinear on each frame
            x = F.interpolate(x, size=(x.shape[2], self.resolution, self.resolution), mode="trilinear",
                              align_corners=False)
        logits = self.net(x)
        return logits if return_features else F.softmax(logits, dim=1)


def export_torchscript(detector: I3DDetector, path: str | os.PathLike) -> Path:
    """Write ``detector`` as a self-contained TorchScript file, called like StyleGAN-V's ``i3d_torchscript.pt``.

    ``module(x, rescale=False, resize=False, return_features=False)`` on uint8 or float ``[B, C, T, H, W]``:
    ``rescale`` maps [0, 255] to [-1, 1]; ``resize`` resizes frames to ``resolution`` squared (trilinear over
    ``(T, R, R)``, ``align_corners=False``); ``return_features`` returns the logits ``[B, classes]`` (the FVD
    features; StyleGAN-V passes all three as True), else their softmax. The file is written under a
    temporary name and renamed, so no half-written file is ever seen at ``path``, and without debug
    records (:func:`~vgz.metrics.features.save_torchscript`); the same weights exported again give
    the same :func:`~vgz.metrics.features.weights_sha256`.
    """
    net = copy.deepcopy(detector.net).cpu().eval()  # a copy: scripting must not tie the file to the detector
    path = Path(path)
    with warnings.catch_warnings():  # recent torch deprecates TorchScript; StyleGAN-V's detector is in it
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+. is deprecated", category=FutureWarning)
        scripted = torch.jit.script(_ScriptedI3D(net, detector.config.resolution).eval())
        save_torchscript(scripted, path)
    return path
