"""StyleInV's modulated inversion encoder (``encoder/styleinv``): one image, T styles -> T latents.

pSp's W encoder (:class:`~vgz.encoders.psp.WEncoder`: an IR-SE50 ResNet, average-pooled, into one
W code) with an AdaIN residual block after the last unit of each stage (IR-SE50: units 2, 6, 20 and
23). Each block is modulated by a temporal style ``s`` (:mod:`vgz.generators.styleinv`)::

    AdaIN(x, s)       = (1 + gamma(s)) * InstanceNorm(x) + beta(s)
    AdainResBlk(x, s) = (conv2(lrelu(AdaIN2(conv1(lrelu(AdaIN1(x, s))), s))) + x) / sqrt(2)

(``lrelu``: a plain LeakyReLU(0.2) with no gain; ``gamma, beta``: an equalized-lr linear layer of
``s``). StyleInV feeds the same first frame ``x0`` with every frame's style, so everything before
the first AdaIN block is the same for all frames: :meth:`ModulatedEncoder.forward` computes it once
per image and :meth:`~ModulatedEncoder.encode_prefix` lets a caller keep it across chunks of a long
video. Outputs equal running every (image, style) pair through the whole network.

Parameter names are the official ones below ``SI.encoder`` (``input_layer.*``, ``body.*``,
``adains.0.conv1.weight``, ``adains.0.norm1.fc.weight``, ``linear.*``), so the backbone, input layer
and head load from a pSp W encoder by name (:meth:`ModulatedEncoder.load_psp_encoder`), as the
official training initialises them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import repeat
from torch import nn

from vgz.configs import config_field
from vgz.encoders.psp import BackboneConfig, _backbone, _check_images
from vgz.layers import FullyConnectedLayer
from vgz.modeling import ModelMixin
from vgz.registry import register

__all__ = ["ModulatedEncoderConfig", "ModulatedEncoder", "AdaIN", "AdainResBlk"]


class AdaIN(nn.Module):
    """``(1 + gamma(s)) * InstanceNorm(x) + beta(s)``: ``x [N, C, H, W]``, ``s [N, style_dim]``."""

    def __init__(self, style_dim: int, channels: int, lr_multiplier: float = 1.0):
        super().__init__()
        self.fc = FullyConnectedLayer(style_dim, channels * 2, lr_multiplier=lr_multiplier)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
        # InstanceNorm2d(affine=False), written out: F.instance_norm copies channels-last inputs.
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        return torch.addcmul(beta, (x - mean) * (var + 1e-5).rsqrt(), 1 + gamma)


class AdainResBlk(nn.Module):
    """StyleInV's AdaIN residual block (StarGAN v2's, without up-sampling or a learned shortcut)."""

    def __init__(self, channels: int, style_dim: int, lr_multiplier: float = 1.0):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.norm1 = AdaIN(style_dim, channels, lr_multiplier)
        self.norm2 = AdaIN(style_dim, channels, lr_multiplier)

    def forward(self, x: torch.Tensor, s: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        h = self.conv1(F.leaky_relu(self.norm1(x, s), 0.2))
        h = self.conv2(F.leaky_relu(self.norm2(h, s), 0.2))
        out = h + x
        return out / math.sqrt(2) if normalize else out


@dataclass
class ModulatedEncoderConfig(BackboneConfig):
    """Config of :class:`ModulatedEncoder` (StyleInV's ``encoder_opts``; IR-SE50 at 256x256 by default)."""

    style_dim: int = config_field(512, min=1, help="size of the temporal style")
    adain_mode: Literal["block", "bottleneck"] = config_field(
        "block", help="an AdaIN block after the last unit of each stage (block) or after every unit (bottleneck)")
    normalize_adain: bool = config_field(True, help="divide each AdaIN block's output by sqrt(2)")
    lr_multiplier: float = config_field(1.0, min=1e-8, help="lr multiplier of the AdaIN and head linear layers")

    presets = {
        "ir-se50": {},
        "tiny": {"units": (1, 1, 1, 1), "widths": (8, 16, 16, 32), "se_reduction": 4, "input_size": 32,
                 "w_dim": 32, "style_dim": 32},
    }

    def check(self) -> None:
        super().check()
        if self.start_from_latent_avg:
            self.fail("start_from_latent_avg", "False: StyleInV adds w0 (or the generator's w_avg) itself")

    @property
    def adain_units(self) -> tuple[int, ...]:
        """Body units followed by an AdaIN block (IR-SE50, ``block``: 2, 6, 20, 23)."""
        if self.adain_mode == "bottleneck":
            return tuple(range(sum(self.units)))
        ends, total = [], 0
        for count in self.units:
            total += count
            ends.append(total - 1)
        return tuple(ends)


def _he_init(module: nn.Module) -> None:
    # StyleInV's he_init (StarGAN v2's): what the AdaIN blocks' plain convs start from.
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@register("encoder", "styleinv")
class ModulatedEncoder(ModelMixin):
    """StyleInV's encoder: ``images [B, C, S, S]`` in [-1, 1] and ``styles [B, T, style_dim]`` -> ``[B, T, w_dim]``.

    The codes are residuals: StyleInV adds the first frame's latent ``w0`` (or the generator's
    average latent) itself.
    """

    config_class = ModulatedEncoderConfig

    def __init__(self, config: ModulatedEncoderConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg: ModulatedEncoderConfig = self.config
        _backbone(self, cfg, [cfg.w_dim])
        self.linear = FullyConnectedLayer(cfg.widths[3], cfg.w_dim, lr_multiplier=cfg.lr_multiplier)
        unit_widths = [w for count, w in zip(cfg.units, cfg.widths) for _ in range(count)]
        self.adains = nn.ModuleList(AdainResBlk(unit_widths[i], cfg.style_dim, cfg.lr_multiplier)
                                    for i in cfg.adain_units)
        self.adains.apply(_he_init)
        self._first_adain = cfg.adain_units[0]
        #: channels-last activations and conv weights; None (default) = on CPUs only, where oneDNN runs
        #: them 1.3x faster (weights in the other layout would be reordered at every call)
        self.channels_last: bool | None = None
        self._weight_format = torch.contiguous_format

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory format the convolutions run in (converting the weights once when it changes)."""
        cl = self.channels_last if self.channels_last is not None else x.device.type == "cpu"
        fmt = torch.channels_last if cl else torch.contiguous_format
        if fmt is not self._weight_format:
            self.to(memory_format=fmt)
            self._weight_format = fmt
        return x.contiguous(memory_format=fmt)

    def load_psp_encoder(self, state: dict[str, torch.Tensor]) -> None:
        """Initialise the backbone, input layer and head from a pSp W encoder's state dict (as StyleInV
        starts training); the AdaIN blocks keep their initialisation. A missing or misshapen tensor is an error."""
        own = self.state_dict()
        wanted = [k for k in own if not k.startswith("adains.")]
        missing = [k for k in wanted if k not in state]
        wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})" for k in wanted
                 if k in state and state[k].shape != own[k].shape]
        if missing or wrong:
            raise ValueError("the pSp W encoder does not fit this StyleInV encoder: "
                             + "; ".join(filter(None, [missing and f"missing {', '.join(missing[:5])}",
                                                       wrong and f"shapes differ: {', '.join(wrong[:5])}"])))
        self.load_state_dict({**own, **{k: state[k] for k in wanted}})

    def encode_prefix(self, images: torch.Tensor) -> torch.Tensor:
        """Features before the first AdaIN block, ``[B, C', S', S']``: the part that does not depend on the style."""
        _check_images(images, self.config, "encoder/styleinv")
        x = self.input_layer(self._layout(images))
        for unit in self.body[:self._first_adain + 1]:
            x = unit(x)
        return x

    def forward_prefix(self, features: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """The rest of the network: :meth:`encode_prefix` features ``[B, ...]`` and ``styles [B, T, style_dim]``
        -> codes ``[B, T, w_dim]``."""
        cfg: ModulatedEncoderConfig = self.config
        if styles.ndim != 3 or styles.shape[0] != features.shape[0] or styles.shape[2] != cfg.style_dim:
            raise ValueError(f"styles must be [{features.shape[0]}, frames, {cfg.style_dim}], got {tuple(styles.shape)}")
        num_frames = styles.shape[1]
        s = styles.reshape(-1, cfg.style_dim)
        x = self._layout(repeat(features, "b c h w -> (b t) c h w", t=num_frames))
        adain = iter(self.adains)
        for i in range(self._first_adain, len(self.body)):
            if i > self._first_adain:
                x = self.body[i](x)
            if i in cfg.adain_units:
                x = next(adain)(x, s, normalize=cfg.normalize_adain)
        codes = self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))
        return codes.reshape(features.shape[0], num_frames, -1)

    def forward(self, images: torch.Tensor, styles: torch.Tensor, shared_prefix: bool = True) -> torch.Tensor:
        """Codes of each image under each of its styles: ``[B, C, S, S]``, ``[B, T, style_dim]`` -> ``[B, T, w_dim]``.

        ``shared_prefix=False`` runs every (image, style) pair through the whole network, as the
        official code does (the same outputs, T times the work before the first AdaIN block).
        """
        if not shared_prefix:
            num_frames = styles.shape[1]
            repeated = repeat(images, "b c h w -> (b t) c h w", t=num_frames)
            codes = self.forward_prefix(self.encode_prefix(repeated), styles.reshape(-1, 1, styles.shape[2]))
            return codes.reshape(images.shape[0], num_frames, -1)
        return self.forward_prefix(self.encode_prefix(images), styles)

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        cfg = self.config
        return {"images": torch.rand([batch_size, cfg.input_nc, cfg.input_size, cfg.input_size], generator=generator)
                * 2 - 1, "styles": torch.randn([batch_size, 3, cfg.style_dim], generator=generator)}
