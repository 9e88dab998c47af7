"""The FID Inception-v3: uint8 images in, 2048-d pool3 features out (pytorch-fid's network).

FID and KID compare the statistics of Inception-v3 "pool3" features of real and generated images.
The network that defines them is the TensorFlow graph ``inception-2015-12-05`` that the original
FID code (bioinf-jku/TTUR) used. pytorch-fid (mseitzer/pytorch-fid) ported its weights to a
PyTorch state dict, ``pt_inception-2015-12-05-6726825d.pth`` (:data:`FID_WEIGHTS_URL`), and
reproduces the graph with torchvision's Inception-v3 in which some blocks are patched:

* every pooling branch of the 35x35, 17x17 and first 8x8 blocks (``Mixed_5b..5d``,
  ``Mixed_6b..6e``, ``Mixed_7b``) is a 3x3 average pool that *ignores* the zero padding
  (TensorFlow's ``AvgPool`` with ``SAME`` padding; PyTorch's ``count_include_pad=False``);
* the last block (``Mixed_7c``) pools that branch with a 3x3 *max* pool, as the TF graph does;
* the two reduction blocks (``Mixed_6a``, ``Mixed_7a``) and the stem are torchvision's as they are.

This module builds that network on its own (no torchvision import) with the same state-dict keys
and shapes as the file, so the file loads with strict checking; the 1008-class ``fc`` layer is
kept for that reason (and for the Inception Score), although the features stop before it.

Input handling follows pytorch-fid: its data loader turns images into float ``x / 255`` in [0, 1]
(``ToTensor``); :class:`InceptionV3 <pytorch_fid.inception.InceptionV3>` resizes them to 299x299
with ``F.interpolate(mode="bilinear", align_corners=False)`` (no antialiasing) and maps them to
[-1, 1] with ``2 * x - 1``. NVIDIA's TorchScript detector (StyleGAN2-ADA's
``inception-2015-12-05.pt``) holds the same weights but resizes like TensorFlow 1's
``resize_bilinear`` and scales with ``(x - 128) / 128``, so its features differ slightly.

Example::

    det = load_inception("pt_inception-2015-12-05-6726825d.pth")
    feats = det(images_uint8)  # [N, 3, H, W] (or [N, 1, H, W]) -> [N, 2048]
    export_torchscript(det, "inception.pt")  # callable like NVIDIA's file
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgz.configs import ComponentConfig, config_field
from vgz.metrics.features import (FeatureDetector, check_state_dict, file_sha256, read_state_dict,
                                  save_torchscript)
from vgz.registry import register, register_kind

__all__ = [
    "FID_WEIGHTS_URL",
    "FID_WEIGHTS_SHA256_PREFIX",
    "InceptionConfig",
    "FIDInceptionV3",
    "InceptionDetector",
    "fid_inception_input",
    "load_inception",
    "export_torchscript",
]

register_kind("detector", "frozen networks that turn clips or images into features for the Frechet metrics")

#: pytorch-fid's release of the ported TF weights (the file this module loads).
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
#: torch.hub names files ``<name>-<first 8 hex digits of the SHA-256>``: the official file's prefix.
FID_WEIGHTS_SHA256_PREFIX = "6726825d"

FEATURE_DIM = 2048
NUM_CLASSES = 1008  # the TF graph's softmax width: the ImageNet classes plus unused outputs
MIN_RESOLUTION = 75  # below this the stride-2 stages leave nothing for the 8x8 blocks


# ------------------------------------------------------------------------------------- config


@dataclass
class InceptionConfig(ComponentConfig):
    """How images are fed to the FID Inception-v3 (the defaults are pytorch-fid's).

    Presets: ``pytorch-fid`` (the defaults).
    """

    resolution: int = config_field(299, min=MIN_RESOLUTION,
                                   help="side of the square images are resized to (299: the TF graph's input)")
    resize_mode: Literal["bilinear", "none"] = config_field(
        "bilinear", help="bilinear: F.interpolate(mode='bilinear', align_corners=False) as pytorch-fid; "
                         "none: feed images at their own size (pytorch-fid's resize_input=False)")
    channels_last: bool = config_field(True, help="run the convolutions channels-last: 1.4x faster on CPU, features "
                                                  "within ~1e-6 relative of pytorch-fid's; False: its exact arithmetic")

    presets = {"pytorch-fid": {}}


# ------------------------------------------------------------------------------------- network


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm -> ReLU: ``[N, C_in, H, W] -> [N, C_out, H', W']``.

    ``eps=1e-3`` is the TF graph's ``variance_epsilon``; the keys (``conv.weight``, ``bn.*``) are
    torchvision's ``BasicConv2d``, which is what the weight file names.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _pool3x3(x: Tensor, mode: str) -> Tensor:
    """The pooling branch's 3x3 stride-1 pool, size-preserving: ``[N, C, H, W] -> [N, C, H, W]``.

    ``avg`` leaves the zero padding out of the average (TF's ``SAME`` average pool; torchvision's
    own blocks count it, which is what pytorch-fid patches); ``max`` is the last block's pool.
    """
    if mode == "max":
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    """35x35 block (``Mixed_5b..5d``): ``[N, C, 35, 35] -> [N, 224 + pool_features, 35, 35]``."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(in_channels, 64, 1)
        self.branch5x5_1 = ConvBN(in_channels, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_pool3x3(x, "avg"))], dim=1)


class ReductionB(nn.Module):
    """35x35 -> 17x17 reduction (``Mixed_6a``): ``[N, 288, 35, 35] -> [N, 768, 17, 17]``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class MixedC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (``Mixed_6b..6e``): ``[N, 768, 17, 17] -> same``."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = ConvBN(in_channels, 192, 1)
        self.branch7x7_1 = ConvBN(in_channels, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(in_channels, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        b7d = self.branch7x7dbl_3(self.branch7x7dbl_2(b7d))
        b7d = self.branch7x7dbl_5(self.branch7x7dbl_4(b7d))
        return torch.cat([self.branch1x1(x), b7, b7d, self.branch_pool(_pool3x3(x, "avg"))], dim=1)


class ReductionD(nn.Module):
    """17x17 -> 8x8 reduction (``Mixed_7a``): ``[N, 768, 17, 17] -> [N, 1280, 8, 8]``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(in_channels, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class MixedE(nn.Module):
    """8x8 block with split 1x3/3x1 outputs (``Mixed_7b``, ``Mixed_7c``): ``[N, C, 8, 8] -> [N, 2048, 8, 8]``.

    ``pool`` is the pooling branch's pool: ``avg`` in ``Mixed_7b``, ``max`` in ``Mixed_7c`` (the TF
    graph's choice, which pytorch-fid reproduces; the paper and torchvision use ``avg``).
    """

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = ConvBN(in_channels, 320, 1)
        self.branch3x3_1 = ConvBN(in_channels, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], dim=1)
        return torch.cat([self.branch1x1(x), b3, b3d, self.branch_pool(_pool3x3(x, self.pool))], dim=1)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3 up to pool3: float ``[N, 3, H, W]`` in [-1, 1] -> ``[N, 2048]``.

    ``H, W`` are 299 for the standard features (any size >= 75 runs: the network ends in a global
    average pool). The state dict has the keys and shapes of ``pt_inception-2015-12-05-6726825d.pth``
    (torchvision's Inception-v3 names, ``fc`` with 1008 classes, no auxiliary classifier), plus the
    BatchNorm ``num_batches_tracked`` counters that every PyTorch BatchNorm carries.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = MixedA(192, pool_features=32)
        self.Mixed_5c = MixedA(256, pool_features=64)
        self.Mixed_5d = MixedA(288, pool_features=64)
        self.Mixed_6a = ReductionB(288)
        self.Mixed_6b = MixedC(768, channels_7x7=128)
        self.Mixed_6c = MixedC(768, channels_7x7=160)
        self.Mixed_6d = MixedC(768, channels_7x7=160)
        self.Mixed_6e = MixedC(768, channels_7x7=192)
        self.Mixed_7a = ReductionD(768)
        self.Mixed_7b = MixedE(1280, pool="avg")
        self.Mixed_7c = MixedE(2048, pool="max")
        # Not used for the features; kept so that the weight file loads strictly, and for
        # `logits` (the Inception Score and NVIDIA's TorchScript call without return_features).
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # [N, 64, 147, 147]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [N, 64, 73, 73]
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # [N, 192, 71, 71]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [N, 192, 35, 35]
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # [N, 288, 35, 35]
        x = self.Mixed_6a(x)  # [N, 768, 17, 17]
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # [N, 768, 17, 17]
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # [N, 2048, 8, 8]
        return F.adaptive_avg_pool2d(x, 1).flatten(1)  # pool3: [N, 2048]

    def logits(self, features: Tensor, bias: bool = True) -> Tensor:
        """pool3 features ``[N, 2048]`` -> class logits ``[N, 1008]``.

        ``bias=False`` leaves the output bias out, as the original Inception Score code does.
        """
        return F.linear(features, self.fc.weight, self.fc.bias if bias else None)


# ------------------------------------------------------------------------------------- detector


def fid_inception_input(x: Tensor, resolution: int = 299, resize_mode: str = "bilinear") -> Tensor:
    """pytorch-fid's input handling: uint8 RGB ``[N, 3, H, W]`` -> float32 ``[N, 3, R, R]`` in [-1, 1].

    In pytorch-fid's order: ``x / 255`` (its ``ToTensor``), then the bilinear resize
    (``align_corners=False``, no antialiasing; an identity when the size is already ``R``),
    then ``2 * x - 1``. ``resize_mode="none"`` keeps ``H, W``.
    """
    x = x.to(torch.float32) / 255.0
    if resize_mode == "bilinear":
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return 2.0 * x - 1.0


@register("detector", "inception")
class InceptionDetector(FeatureDetector):
    """FID Inception-v3 (pytorch-fid's): uint8 images [N, 3, H, W] -> pool3 features [N, 2048].

    Built directly it has random weights (``sha256`` None); :func:`load_inception` loads the FID
    weights. The detector is frozen: its parameters need no gradients and it stays in eval mode
    (BatchNorm must use the file's statistics), whatever ``train()`` is asked.
    """

    kind = "image"
    config_class = InceptionConfig
    feature_dim = FEATURE_DIM

    def __init__(self, config: InceptionConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else InceptionConfig()
        self.name = "inception"
        self.settings = {k: v for k, v in self.config.to_dict().items() if k != "channels_last"}
        self.net = FIDInceptionV3()
        self.net.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> InceptionDetector:
        # A frozen feature extractor: BatchNorm in training mode would normalise with batch
        # statistics (and overwrite the file's running statistics), changing every feature.
        return super().train(False)

    def features(self, x: Tensor) -> Tensor:
        """uint8 RGB ``[N, 3, H, W]`` -> float32 pool3 features ``[N, 2048]``."""
        if self.config.resize_mode == "none" and min(x.shape[-2:]) < MIN_RESOLUTION:
            raise ValueError(f"{self.name}: with resize_mode='none' images must be at least "
                             f"{MIN_RESOLUTION}x{MIN_RESOLUTION}, found {tuple(x.shape[-2:])}")
        x = x.to(self.net.fc.weight.device)
        x = fid_inception_input(x, self.config.resolution, self.config.resize_mode)
        if self.config.channels_last:  # the layout propagates from the input through every convolution
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)


# ------------------------------------------------------------------------------------- loading


def load_inception(path: str | os.PathLike, config: InceptionConfig | None = None, *,
                   state: dict[str, Tensor] | None = None) -> InceptionDetector:
    """An :class:`InceptionDetector` with the weights of a state-dict file.

    Args:
        path: ``.pth``/``.pt`` (read with ``torch.load(weights_only=True)``, never a full
            unpickle) or ``.safetensors``, holding the keys of pytorch-fid's
            ``pt_inception-2015-12-05-6726825d.pth`` (:data:`FID_WEIGHTS_URL`); the BatchNorm
            ``num_batches_tracked`` entries are optional.
        config: input handling; pytorch-fid's by default.
        state: the file's state dict when the caller has read it already.

    Raises:
        DetectorError: the file is unreadable, or has missing, unexpected or mis-shaped keys
            (the message names the file and a few of the keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights not found: {path} (pytorch-fid's file: {FID_WEIGHTS_URL})")
    with torch.device("meta"):  # shapes only: no time spent on a random init that is overwritten
        detector = InceptionDetector(config)
    state = check_state_dict(read_state_dict(path) if state is None else state, detector.net.state_dict(), path,
                             "a FID Inception-v3 state dict (the layout of pytorch-fid's "
                             "pt_inception-2015-12-05-6726825d.pth: torchvision Inception-v3 names, fc [1008, 2048])")
    # assign: the module takes the file's tensors (keeping requires_grad=False); then float32
    # whatever the file's dtype, as the features are computed in float32.
    detector.net.load_state_dict(state, strict=True, assign=True)
    detector.net.float()
    detector.sha256 = file_sha256(path)
    detector.source = os.fspath(path)
    return detector


# ------------------------------------------------------------------------------------- TorchScript


class _TorchScriptInception(nn.Module):
    """NVIDIA's call convention around our network (see :func:`export_torchscript`)."""

    __constants__ = ["resolution", "resize_mode"]  # in the code, so that weights_sha256 sees them

    def __init__(self, net: FIDInceptionV3, resolution: int, resize_mode: str) -> None:
        super().__init__()
        self.net = net
        self.resolution = resolution
        self.resize_mode = resize_mode

    def forward(self, img: Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> Tensor:
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError("expected uint8 images [N, 3, H, W]")
        # use_fp16 is accepted for call compatibility; the computation stays in float32.
        features = self.net(fid_inception_input(img, self.resolution, self.resize_mode))
        if return_features:
            return features
        return F.softmax(self.net.logits(features, not no_output_bias), dim=1)


def export_torchscript(detector: InceptionDetector, path: str | os.PathLike) -> Path:
    """Write ``detector`` as a TorchScript file called like NVIDIA's ``inception-2015-12-05.pt``.

    The file's module is ``module(img, return_features=False, use_fp16=False, no_output_bias=False)``
    on uint8 ``[N, 3, H, W]``: features ``[N, 2048]`` with ``return_features=True``, else class
    probabilities ``[N, 1008]`` (softmax; ``no_output_bias`` drops the output bias, as StyleGAN2-ADA's
    Inception Score asks). The input handling inside is this detector's (pytorch-fid's), not
    NVIDIA's TF-style resize. The file appears complete or not at all (temporary name, then
    ``os.replace``). Returns the path.
    """
    # A copy: scripting must not tie the detector's own modules to the exported graph.
    net = copy.deepcopy(detector.net).eval().requires_grad_(False)
    wrapper = _TorchScriptInception(net, detector.config.resolution, detector.config.resize_mode)
    path = Path(path)
    with warnings.catch_warnings():
        # Recent torch marks TorchScript deprecated; the format is still what the official
        # metric code loads (torch.jit.load), so it is the format we write.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+. is deprecated", category=FutureWarning)
        scripted = torch.jit.script(wrapper)
        save_torchscript(scripted, path)
    return path
