"""pSp encoders (Richardson et al. 2021, "Encoding in Style"): images -> StyleGAN latents.

* ``encoder/psp`` (pSp's ``GradualStyleEncoder``): an IR-SE ResNet whose last three stages feed a
  feature pyramid; each of the ``n_styles`` W+ codes comes from its own ``map2style`` head (strided
  convs down to 1x1, then an equalized linear layer): the first 3 from the coarsest map, the next 4
  from the middle one, the rest from the finest. ``images [N, 3, H, W] -> codes [N, n_styles, w_dim]``.
* ``encoder/psp-w`` (``BackboneEncoderUsingLastLayerIntoW``): the backbone, average-pooled, into
  one W code, ``[N, 3, H, W] -> [N, w_dim]``.

Input images are in [-1, 1] at ``input_size`` (pSp: 256x256). With ``start_from_latent_avg`` (as
pSp trains) the network's output is an offset from the generator's average latent, which the
encoder keeps in its ``latent_avg`` buffer and adds. Parameter names are pSp's, so its checkpoints
load by name.

Where pSp's code differs from what one would read into its paper, vgz follows the code:

* the pyramid taps the body after units 6, 20 and 23 whatever the depth: the ends of stages 2-4 of
  IR-50, but units inside stages 2 and 3 of IR-100/152 (``feature_taps``);
* the ``map2style`` heads use ``nn.LeakyReLU()``'s default slope of 0.01, not StyleGAN's 0.2;
* the pyramid upsamples bilinearly with ``align_corners=True``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vgz.configs import ComponentConfig, config_field
from vgz.encoders.irse import IR_UNITS, ir_body, ir_stem
from vgz.layers import FullyConnectedLayer
from vgz.modeling import ModelMixin
from vgz.registry import register

__all__ = ["BackboneConfig", "GradualStyleEncoderConfig", "GradualStyleEncoder", "WEncoderConfig", "WEncoder"]


def _backbone_preset(num_layers: int, mode: str = "ir_se") -> dict[str, Any]:
    return {"units": IR_UNITS[num_layers], "mode": mode}


@dataclass
class BackboneConfig(ComponentConfig):
    """The IR / IR-SE backbone shared by the pSp encoders (pSp: IR-SE50 at 256x256)."""

    mode: Literal["ir", "ir_se"] = "ir_se"
    units: tuple[int, int, int, int] = (3, 4, 14, 3)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    se_reduction: int = config_field(16, min=1, help="squeeze-excitation reduction (mode ir_se)")
    input_nc: int = config_field(3, min=1, help="input channels")
    input_size: int = config_field(256, min=16, help="images are encoded at this size (pSp: 256)")
    w_dim: int = config_field(512, min=1, help="size of each latent code")
    start_from_latent_avg: bool = config_field(False, help="add the generator's average latent (the buffer "
                                                           "latent_avg) to the codes, as pSp trains them")

    def check(self) -> None:
        if any(u < 1 for u in self.units):
            self.fail("units", "at least one unit per stage")
        if self.mode == "ir_se" and any(w // self.se_reduction < 1 for w in self.widths):
            self.fail("se_reduction", f"at most the smallest width ({min(self.widths)})")
        if self.input_size % 16:
            self.fail("input_size", "a multiple of 16 (the backbone halves it four times)")


def _backbone(module: nn.Module, cfg: BackboneConfig, latent_shape: list[int]) -> None:
    module.input_layer = ir_stem(cfg.input_nc, cfg.widths[0])
    module.body = ir_body(cfg.units, cfg.widths, cfg.widths[0], cfg.se_reduction if cfg.mode == "ir_se" else 0)
    if cfg.start_from_latent_avg:
        module.register_buffer("latent_avg", torch.zeros(latent_shape))


def _add_latent_avg(module: nn.Module, codes: torch.Tensor) -> torch.Tensor:
    return codes + module.latent_avg.to(codes.dtype) if module.config.start_from_latent_avg else codes


def _check_images(images: torch.Tensor, cfg: BackboneConfig, name: str) -> None:
    if images.ndim != 4 or images.shape[1] != cfg.input_nc:
        raise ValueError(f"{name}: expected images [N, {cfg.input_nc}, H, W], got {tuple(images.shape)}")


# ===================================================================================== W+

@dataclass
class GradualStyleEncoderConfig(BackboneConfig):
    """Config of :class:`GradualStyleEncoder` (pSp's defaults: IR-SE50, a 1024x1024 generator)."""

    output_size: int = config_field(1024, min=4, help="the generator's resolution: n_styles = 2 log2(size) - 2")
    feature_taps: tuple[int, int, int] = (6, 20, 23)
    coarse_styles: int = config_field(3, min=1, help="codes from the coarsest map (pSp: 3)")
    middle_styles: int = config_field(4, min=0, help="codes from the middle map (pSp: 4)")

    presets = {
        "ir-se50": {},
        "ir-se50-256": {"output_size": 256},
        "ir50": _backbone_preset(50, "ir"),
        "ir-se100": _backbone_preset(100),
        "ir-se152": _backbone_preset(152),
        "tiny": {"units": (1, 1, 1, 1), "widths": (8, 16, 16, 32), "se_reduction": 4, "input_size": 32,
                 "w_dim": 32, "output_size": 16, "feature_taps": (1, 2, 3), "coarse_styles": 2, "middle_styles": 2},
        # 64x64 generators with w of 64 (vgz's built-in models): IR-SE of 6 units, under 1 M parameters.
        "small": {"units": (1, 2, 2, 1), "widths": (16, 32, 64, 64), "se_reduction": 8, "input_size": 64, "w_dim": 64,
                  "output_size": 64, "feature_taps": (2, 4, 5), "coarse_styles": 3, "middle_styles": 3},
    }

    @property
    def n_styles(self) -> int:
        return int(math.log2(self.output_size)) * 2 - 2

    def check(self) -> None:
        super().check()
        if self.output_size & (self.output_size - 1):
            self.fail("output_size", "a power of two (a StyleGAN generator's resolution)")
        depth = sum(self.units)
        taps = self.feature_taps
        if not (0 <= taps[0] < taps[1] < taps[2] < depth):
            self.fail("feature_taps", f"three increasing unit indices below {depth}")


class GradualStyleBlock(nn.Module):
    """pSp's ``map2style``: strided 3x3 convs (LeakyReLU 0.01) down to 1x1, then a linear layer."""

    def __init__(self, in_channels: int, out_channels: int, spatial: int):
        super().__init__()
        self.out_channels = out_channels
        layers: list[nn.Module] = []
        for i in range(max(int(math.log2(spatial)), 1)):
            layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = FullyConnectedLayer(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).reshape(-1, self.out_channels))


@register("encoder", "psp")
class GradualStyleEncoder(ModelMixin):
    """pSp's W+ encoder: ``images [N, C, S, S]`` in [-1, 1] (``S = input_size``) -> ``codes [N, n_styles, w_dim]``."""

    config_class = GradualStyleEncoderConfig

    def __init__(self, config: GradualStyleEncoderConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg: GradualStyleEncoderConfig = self.config
        _backbone(self, cfg, [cfg.n_styles, cfg.w_dim])
        self.n_styles, self.w_dim = cfg.n_styles, cfg.w_dim
        coarse, middle = cfg.coarse_styles, cfg.coarse_styles + cfg.middle_styles
        # The finest map is input_size / 4 (pSp: 64 at 256): each head halves it down to 1x1.
        spatial = {"coarse": cfg.input_size // 16, "middle": cfg.input_size // 8, "fine": cfg.input_size // 4}
        self.styles = nn.ModuleList(
            GradualStyleBlock(cfg.widths[3], cfg.w_dim,
                              spatial["coarse" if i < coarse else "middle" if i < middle else "fine"])
            for i in range(self.n_styles))
        self.latlayer1 = nn.Conv2d(cfg.widths[2], cfg.widths[3], 1)
        self.latlayer2 = nn.Conv2d(cfg.widths[1], cfg.widths[3], 1)

    @staticmethod
    def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        cfg: GradualStyleEncoderConfig = self.config
        _check_images(images, cfg, "encoder/psp")
        x = self.input_layer(images)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in cfg.feature_taps:
                taps.append(x)
            if i == cfg.feature_taps[-1]:
                break
        c1, c2, c3 = taps
        coarse, middle = cfg.coarse_styles, cfg.coarse_styles + cfg.middle_styles
        p2 = self._upsample_add(c3, self.latlayer1(c2))
        p1 = self._upsample_add(p2, self.latlayer2(c1))
        codes = [head(c3 if i < coarse else p2 if i < middle else p1) for i, head in enumerate(self.styles)]
        return _add_latent_avg(self, torch.stack(codes, dim=1))

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        cfg = self.config
        return {"images": torch.rand([batch_size, cfg.input_nc, cfg.input_size, cfg.input_size], generator=generator)
                * 2 - 1}


# ===================================================================================== W

@dataclass
class WEncoderConfig(BackboneConfig):
    """Config of :class:`WEncoder` (pSp's ``BackboneEncoderUsingLastLayerIntoW``)."""

    presets = {
        "ir-se50": {},
        "ir50": _backbone_preset(50, "ir"),
        "ir-se100": _backbone_preset(100),
        "ir-se152": _backbone_preset(152),
        "tiny": {"units": (1, 1, 1, 1), "widths": (8, 16, 16, 32), "se_reduction": 4, "input_size": 32,
                 "w_dim": 32},
        "small": {"units": (1, 2, 2, 1), "widths": (16, 32, 64, 64), "se_reduction": 8, "input_size": 64, "w_dim": 64},
    }


@register("encoder", "psp-w")
class WEncoder(ModelMixin):
    """pSp's W encoder: ``images [N, C, S, S]`` in [-1, 1] -> one code ``[N, w_dim]``."""

    config_class = WEncoderConfig

    def __init__(self, config: WEncoderConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg: WEncoderConfig = self.config
        _backbone(self, cfg, [cfg.w_dim])
        self.w_dim = cfg.w_dim
        self.linear = FullyConnectedLayer(cfg.widths[3], cfg.w_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, self.config, "encoder/psp-w")
        x = self.body(self.input_layer(images))
        return _add_latent_avg(self, self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1)))

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        cfg = self.config
        return {"images": torch.rand([batch_size, cfg.input_nc, cfg.input_size, cfg.input_size], generator=generator)
                * 2 - 1}
