"""StyleGAN2 image discriminator (residual by default), optionally label-conditioned.

Numerically equal to NVlabs' StyleGAN2-ADA ``Discriminator`` with the same parameter names
(``b256.fromrgb.weight``, ``b4.fc.weight``, ``mapping.fc0.weight``...), so its checkpoints load
by name. Input images ``[N, C, R, R]`` in ``[-1, 1]``; output logits ``[N, 1]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch
from torch import nn

from vgz.configs import Activation, ComponentConfig, config_field
from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, channels_per_resolution
from vgz.layers import Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer, block_dtype, downsample2d, setup_filter
from vgz.modeling import ModelMixin
from vgz.registry import register

__all__ = ["DiscriminatorConfig", "Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue"]


@dataclass
class DiscriminatorConfig(ComponentConfig):
    """Config of :class:`Discriminator`."""

    c_dim: int = config_field(0, min=0, help="label size, 0 = unconditional")
    img_resolution: int = config_field(1024, min=4, max=2048, help="input size, a power of two")
    img_channels: int = config_field(3, min=1)
    architecture: Literal["orig", "skip", "resnet"] = "resnet"
    channel_base: int = config_field(32768, min=1)
    channel_max: int = config_field(512, min=1)
    num_fp16_res: int = config_field(0, min=0)
    conv_clamp: Optional[float] = config_field(None, min=0)
    cmap_dim: Optional[int] = config_field(None, min=1, help="label projection size, None = channels at 4x4")
    mbstd_group_size: Optional[int] = config_field(4, min=1, help="None = the whole batch")
    mbstd_num_channels: int = config_field(1, min=0, help="0 = no minibatch-std layer")
    activation: Activation = "lrelu"
    resample_filter: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)
    freeze_layers: int = config_field(0, min=0, help="Freeze-D: freeze the first N layers")
    mapping_num_layers: int = config_field(8, min=1, help="layers of the label mapping network")
    fp16_channels_last: bool = False

    presets = {
        "stylegan2": {},
        "paper256": {"img_resolution": 256, "channel_base": 16384, "num_fp16_res": 4, "conv_clamp": 256.0,
                     "mbstd_group_size": 8},
        "tiny": {"img_resolution": 16, "channel_base": 512, "channel_max": 32, "mbstd_group_size": 2},
    }

    def check(self) -> None:
        if self.img_resolution & (self.img_resolution - 1) or self.img_resolution < 8:
            self.fail("img_resolution", "a power of two between 8 and 2048")
        if self.channel_base < self.img_resolution:
            self.fail("channel_base", f"at least img_resolution ({self.img_resolution})")


class DiscriminatorBlock(nn.Module):
    """One resolution: (fromRGB) -> conv -> conv with 2x downsampling (+ residual skip)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 first_layer_idx: int, architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter: tuple[float, ...] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 use_fp16: bool = False, fp16_channels_last: bool = False, freeze_layers: int = 0):
        super().__init__()
        self.in_channels, self.resolution, self.img_channels = in_channels, resolution, img_channels
        self.architecture, self.use_fp16 = architecture, use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.num_layers = 0

        def layer(*args: Any, **kwargs: Any) -> Conv2dLayer:
            trainable = first_layer_idx + self.num_layers >= freeze_layers
            self.num_layers += 1
            return Conv2dLayer(*args, trainable=trainable, channels_last=self.channels_last, **kwargs)

        if in_channels == 0 or architecture == "skip":
            self.fromrgb = layer(img_channels, tmp_channels, kernel_size=1, activation=activation, conv_clamp=conv_clamp)
        self.conv0 = layer(tmp_channels, tmp_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp)
        self.conv1 = layer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                           resample_filter=resample_filter, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = layer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                              resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None,
                force_fp32: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        dtype = block_dtype(self.use_fp16, force_fp32, (x if x is not None else img).device)
        fmt = torch.channels_last if self.channels_last and dtype == torch.float16 else torch.contiguous_format
        if x is not None:
            x = x.to(dtype=dtype, memory_format=fmt)
        if self.in_channels == 0 or self.architecture == "skip":
            img = img.to(dtype=dtype, memory_format=fmt)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: minibatch-std, conv, fc, output (projected onto the label embedding)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
        self.img_channels, self.architecture = img_channels, architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            x = x + self.fromrgb(img.to(dtype=torch.float32, memory_format=torch.contiguous_format))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.out(self.fc(x.flatten(1)))
        if self.cmap_dim > 0:  # projection discriminator
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


@register("discriminator", "stylegan2")
class Discriminator(ModelMixin):
    """StyleGAN2 discriminator: images ``[N, C, R, R]`` (+ labels ``[N, c_dim]``) -> logits ``[N, 1]``."""

    config_class = DiscriminatorConfig

    def __init__(self, config: DiscriminatorConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg: DiscriminatorConfig = self.config
        self.c_dim, self.img_resolution, self.img_channels = cfg.c_dim, cfg.img_resolution, cfg.img_channels
        log2 = int(math.log2(cfg.img_resolution))
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        channels = channels_per_resolution(self.block_resolutions + [4], cfg.channel_base, cfg.channel_max)
        fp16_resolution = max(2 ** (log2 + 1 - cfg.num_fp16_res), 8)
        cmap_dim = 0 if cfg.c_dim == 0 else (cfg.cmap_dim or channels[4])
        common = dict(img_channels=cfg.img_channels, architecture=cfg.architecture, conv_clamp=cfg.conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < cfg.img_resolution else 0, channels[res], channels[res // 2],
                resolution=res, first_layer_idx=layer_idx, use_fp16=res >= fp16_resolution,
                activation=cfg.activation, resample_filter=cfg.resample_filter, freeze_layers=cfg.freeze_layers,
                fp16_channels_last=cfg.fp16_channels_last, **common,
            )
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if cfg.c_dim > 0:
            self.mapping = MappingNetwork(MappingConfig(z_dim=0, c_dim=cfg.c_dim, w_dim=cmap_dim, num_ws=None,
                                                        w_avg_beta=None, num_layers=cfg.mapping_num_layers))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4,
                                        mbstd_group_size=cfg.mbstd_group_size,
                                        mbstd_num_channels=cfg.mbstd_num_channels, activation=cfg.activation,
                                        **common)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False) -> torch.Tensor:
        """``img [N, C, R, R]``, ``c [N, c_dim]`` -> ``[N, 1]`` logits."""
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"img must be [N, {', '.join(map(str, expected))}], got {tuple(img.shape)}")
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        r = self.img_resolution
        img = torch.randn([batch_size, self.img_channels, r, r], generator=generator)
        c = torch.randn([batch_size, self.c_dim], generator=generator) if self.c_dim > 0 else None
        return {"img": img, "c": c}
