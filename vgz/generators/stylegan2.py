"""StyleGAN2 generator: mapping network (z -> w) and synthesis network (w -> image).

The whole architecture in one file, numerically equal to NVlabs' StyleGAN2-ADA
(``training/networks.py``) with the same parameter and buffer names, so its checkpoints load by
name: ``mapping.fc0.weight``, ``synthesis.b64.conv0.affine.bias``, ``synthesis.b4.const``...

Shapes: ``z [N, z_dim]``, ``c [N, c_dim]``, ``ws [N, num_ws, w_dim]``, images ``[N, C, H, W]``
in roughly ``[-1, 1]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch
from torch import nn

from vgz.configs import Activation, ComponentConfig, config_field
from vgz.layers import (
    Conv2dLayer,
    block_dtype,
    NOISE_MODES,
    FullyConnectedLayer,
    modulated_conv2d,
    noise_input,
    normalize_2nd_moment,
    setup_filter,
    upsample2d,
)
from vgz.layers.bias_act import activation_spec, bias_act
from vgz.modeling import ModelMixin
from vgz.registry import register

__all__ = [
    "MappingConfig",
    "MappingNetwork",
    "SynthesisConfig",
    "SynthesisNetwork",
    "SynthesisBlock",
    "SynthesisLayer",
    "ToRGBLayer",
    "channels_per_resolution",
]


def channels_per_resolution(resolutions: list[int], channel_base: int, channel_max: int) -> dict[int, int]:
    """StyleGAN2's channel schedule: ``min(channel_base // res, channel_max)``."""
    return {res: min(channel_base // res, channel_max) for res in resolutions}


# ===================================================================================== mapping


@dataclass
class MappingConfig(ComponentConfig):
    """Config of :class:`MappingNetwork`."""

    z_dim: int = config_field(512, min=0, help="latent z size, 0 = no latent")
    c_dim: int = config_field(0, min=0, help="conditioning label size, 0 = unconditional")
    w_dim: int = config_field(512, min=1, help="intermediate latent w size")
    num_ws: Optional[int] = config_field(18, min=1, help="copies of w to output, None = a single w")
    num_layers: int = config_field(8, min=1)
    embed_features: Optional[int] = config_field(None, min=1, help="label embedding size, None = w_dim")
    layer_features: Optional[int] = config_field(None, min=1, help="hidden size, None = w_dim")
    activation: Activation = "lrelu"
    lr_multiplier: float = config_field(0.01, min=0)
    w_avg_beta: Optional[float] = config_field(0.995, min=0, max=1, help="w_avg decay, None = no tracking")

    presets = {
        "stylegan2": {},  # config F at 1024x1024
        "paper256": {"num_ws": 14},
        "tiny": {"z_dim": 32, "w_dim": 32, "num_ws": 6, "num_layers": 2},
    }

    def check(self) -> None:
        if self.z_dim == 0 and self.c_dim == 0:
            self.fail("z_dim", "z_dim > 0 or c_dim > 0 (the network needs an input)")
        if self.lr_multiplier == 0:
            self.fail("lr_multiplier", "a value > 0")


@register("mapping", "stylegan2")
class MappingNetwork(ModelMixin):
    """StyleGAN2 mapping network: ``z [N, z_dim]`` (+ ``c [N, c_dim]``) -> ``ws [N, num_ws, w_dim]``.

    Tracks the running mean ``w_avg`` of w in training mode, used for the truncation trick.
    """

    config_class = MappingConfig

    def __init__(self, config: MappingConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg: MappingConfig = self.config
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.num_ws, self.num_layers, self.w_avg_beta = cfg.num_ws, cfg.num_layers, cfg.w_avg_beta
        embed_features = 0 if cfg.c_dim == 0 else (cfg.embed_features or cfg.w_dim)
        layer_features = cfg.layer_features or cfg.w_dim
        features = [cfg.z_dim + embed_features] + [layer_features] * (cfg.num_layers - 1) + [cfg.w_dim]
        if cfg.c_dim > 0:
            self.embed = FullyConnectedLayer(cfg.c_dim, embed_features)
        for idx in range(cfg.num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=cfg.activation,
                                        lr_multiplier=cfg.lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if cfg.num_ws is not None and cfg.w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([cfg.w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        skip_w_avg_update: bool = False,
    ) -> torch.Tensor:
        """Map latents to ``ws [N, num_ws, w_dim]`` (``[N, w_dim]`` when ``num_ws`` is None).

        Args:
            z: ``[N, z_dim]`` (None when ``z_dim == 0``).
            c: ``[N, c_dim]`` labels (None when unconditional).
            truncation_psi: interpolate towards ``w_avg`` (1 = no truncation).
            truncation_cutoff: truncate only the first ``cutoff`` ws (None = all).
            skip_w_avg_update: do not update ``w_avg`` even in training mode.
        """
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"c must be [N, {self.c_dim}], got {None if c is None else tuple(c.shape)}")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if self.w_avg_beta is not None and self.num_ws is not None and self.training and not skip_w_avg_update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.w_avg_beta is None or self.num_ws is None:
                raise ValueError("truncation needs w_avg: this mapping network has w_avg_beta=None or num_ws=None")
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        z = torch.randn([batch_size, self.z_dim], generator=generator) if self.z_dim > 0 else None
        c = torch.randn([batch_size, self.c_dim], generator=generator) if self.c_dim > 0 else None
        return {"z": z, "c": c}


# ===================================================================================== synthesis


@dataclass
class SynthesisConfig(ComponentConfig):
    """Config of :class:`SynthesisNetwork`."""

    w_dim: int = config_field(512, min=1)
    img_resolution: int = config_field(1024, min=4, max=2048, help="output size, a power of two")
    img_channels: int = config_field(3, min=1)
    channel_base: int = config_field(32768, min=1, help="channels at resolution r: min(channel_base // r, channel_max)")
    channel_max: int = config_field(512, min=1)
    num_fp16_res: int = config_field(0, min=0, help="run the N highest resolutions in fp16")
    architecture: Literal["orig", "skip", "resnet"] = "skip"
    conv_clamp: Optional[float] = config_field(None, min=0, help="clamp conv outputs to +-X, None = off")
    use_noise: bool = True
    resample_filter: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)
    activation: Activation = "lrelu"
    fp16_channels_last: bool = False

    presets = {
        "stylegan2": {},  # config F at 1024x1024
        "paper256": {"img_resolution": 256, "channel_base": 16384, "num_fp16_res": 4, "conv_clamp": 256.0},
        "tiny": {"w_dim": 32, "img_resolution": 16, "channel_base": 512, "channel_max": 32},
    }

    @property
    def num_ws(self) -> int:
        """How many ws the network consumes: one per conv plus the last toRGB's."""
        num_blocks = self.img_resolution.bit_length() - 2  # 4, 8, ..., img_resolution
        return 1 + 2 * (num_blocks - 1) + 1

    def check(self) -> None:
        if self.img_resolution & (self.img_resolution - 1):
            self.fail("img_resolution", "a power of two between 4 and 2048")
        if not self.resample_filter:
            self.fail("resample_filter", "at least one filter tap")
        if self.channel_base < self.img_resolution:
            self.fail("channel_base", f"at least img_resolution ({self.img_resolution}) so that every layer has a channel")


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x upsampling) + noise + bias + activation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: tuple[float, ...] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 channels_last: bool = False):
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = activation_spec(activation).def_gain
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=fmt))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
                gain: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """``x [N*T, C_in, r/up, r/up]``, ``w [N, w_dim]`` (T frames per w) -> ``[N*T, C_out, r, r]``."""
        styles = self.affine(w)
        noise = None
        if self.use_noise:
            noise = noise_input(noise_mode, x.shape[0], self.resolution, self.noise_const, self.noise_strength, generator)
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp,
                        inplace=not torch.is_grad_enabled())


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=fmt))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp, inplace=not torch.is_grad_enabled())


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (const or 2x up) -> conv -> conv, plus toRGB."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter: tuple[float, ...] = (1, 3, 3, 1),
                 conv_clamp: float | None = None, use_fp16: bool = False, fp16_channels_last: bool = False,
                 extra_input_channels: int = 0, **layer_kwargs: Any):
        super().__init__()
        self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
        self.extra_input_channels = extra_input_channels  # first block only: concatenated to the const
        self.img_channels, self.is_last, self.architecture = img_channels, is_last, architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.num_conv = 0
        self.num_torgb = 0
        common = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
            conv1_in = out_channels + extra_input_channels
        else:
            conv1_in = out_channels
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, resample_filter=resample_filter,
                                        **common, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(conv1_in, out_channels, **common, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, force_fp32: bool = False,
                fused_modconv: bool | None = None, extra_input: torch.Tensor | None = None,
                frames_per_w: int = 1, channels_last: bool = False,
                **layer_kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``ws [N, num_conv + num_torgb, w_dim]``; returns features and the running image.

        Features and images hold ``frames_per_w`` consecutive rows per w (frames of one video).
        ``extra_input [N*frames_per_w, extra_input_channels]`` (first block only) is broadcast over
        the const's pixels and concatenated to it along channels. ``channels_last`` runs the block
        in channels-last memory format whatever the config says.
        """
        w_iter = iter(ws.unbind(dim=1))
        dtype = block_dtype(self.use_fp16, force_fp32, ws.device, self.conv1.weight.dtype)
        fp16 = dtype == torch.float16
        fmt = torch.channels_last if channels_last or (self.channels_last and fp16) else torch.contiguous_format
        if fused_modconv is None:
            # Fused grouped convs are fastest for inference on GPUs and when one w serves many frames
            # (StyleGAN-V); unfused for training, fp16 batches, and one w per image on CPUs, where a
            # plain batch conv beats a grouped one (1.2x at 1 image, 1.8x at 8, 256x256).
            fused_modconv = (not self.training) and (dtype == torch.float32 or int(ws.shape[0]) == 1) and \
                (ws.device.type != "cpu" or frames_per_w > 1)

        if self.in_channels == 0:
            rows = ws.shape[0] * frames_per_w
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([rows, 1, 1, 1]).contiguous(memory_format=fmt)
            if self.extra_input_channels:
                if extra_input is None or extra_input.shape != (rows, self.extra_input_channels):
                    found = None if extra_input is None else tuple(extra_input.shape)
                    raise ValueError(f"first block needs extra_input [{rows}, {self.extra_input_channels}], "
                                     f"got {found}")
                r = self.resolution
                extra = extra_input.to(dtype)[:, :, None, None].expand(-1, -1, r, r)
                x = torch.cat([x, extra], dim=1).contiguous(memory_format=fmt)
        else:
            x = x.to(dtype=dtype, memory_format=fmt)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=math.sqrt(0.5), **layer_kwargs)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return x, img


@register("synthesis", "stylegan2")
class SynthesisNetwork(ModelMixin):
    """StyleGAN2 synthesis network: ``ws [N, num_ws, w_dim]`` -> images ``[N, C, R, R]``.

    Blocks ``b4, b8, ..., bR`` each consume ``num_conv`` ws and share one with the next block's
    first conv for their toRGB, as in the official implementation.

    Precision: on a GPU the ``num_fp16_res`` highest resolutions run in float16 and the rest in
    float32, as the official code runs; a network cast to bfloat16 or float16
    (``.to(torch.bfloat16)``) runs every block in that dtype. Two run-time settings, not saved
    with the weights, apply when :meth:`forward` is not told otherwise:

    Attributes:
        force_fp32: run every block in float32 (exact results on a GPU; default False).
        channels_last: channels-last activations; None (default) = on CPUs only.
    """

    config_class = SynthesisConfig

    def __init__(self, config: SynthesisConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        self.force_fp32: bool = False
        self.channels_last: bool | None = None
        cfg: SynthesisConfig = self.config
        self.w_dim, self.img_resolution, self.img_channels = cfg.w_dim, cfg.img_resolution, cfg.img_channels
        log2 = int(math.log2(cfg.img_resolution))
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = channels_per_resolution(self.block_resolutions, cfg.channel_base, cfg.channel_max)
        fp16_resolution = max(2 ** (log2 + 1 - cfg.num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == cfg.img_resolution
            extra = self.extra_input_channels(cfg) if res == 4 else 0
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0, channels[res], w_dim=cfg.w_dim, resolution=res,
                img_channels=cfg.img_channels, is_last=is_last, architecture=cfg.architecture,
                resample_filter=cfg.resample_filter, conv_clamp=cfg.conv_clamp, use_fp16=res >= fp16_resolution,
                fp16_channels_last=cfg.fp16_channels_last, use_noise=cfg.use_noise, activation=cfg.activation,
                extra_input_channels=extra,
            )
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)
        assert self.num_ws == cfg.num_ws

    @classmethod
    def extra_input_channels(cls, cfg: SynthesisConfig) -> int:
        """Channels concatenated to the 4x4 const (none here; StyleGAN-V adds its time embedding)."""
        return 0

    def split_ws(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """Slice ``ws [N, num_ws, w_dim]`` into each block's ws (neighbours overlap by the toRGB w)."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        out, idx = [], 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            out.append(ws.narrow(1, idx, block.num_conv + block.num_torgb))
            idx += block.num_conv
        return out

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", fused_modconv: bool | None = None,
                force_fp32: bool | None = None, generator: torch.Generator | None = None,
                extra_input: torch.Tensor | None = None, frames_per_w: int = 1,
                channels_last: bool | None = None) -> torch.Tensor:
        """Synthesise images.

        Args:
            ws: ``[N, num_ws, w_dim]``.
            noise_mode: ``"random"``, ``"const"`` or ``"none"``.
            fused_modconv: force the fused/unfused modulated conv (None = automatic).
            force_fp32: run fp16 blocks in fp32; None = the ``force_fp32`` attribute.
            generator: source of random noise for ``noise_mode="random"``.
            extra_input: ``[N*frames_per_w, extra_input_channels]`` for the first block, when it takes one.
            frames_per_w: images per w (video frames): each layer's styles and modulated weights are
                computed once per w and applied to its ``frames_per_w`` consecutive output rows.
            channels_last: channels-last activations; None = the ``channels_last`` attribute, and
                when that is None too: on CPUs (where oneDNN's convolutions, transposed
                convolutions and depthwise filters run 1.5-3x faster so), and in fp16 blocks
                with ``fp16_channels_last`` on GPUs.

        Returns:
            ``[N*frames_per_w, img_channels, img_resolution, img_resolution]``, float32.
        """
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(map(repr, NOISE_MODES))}, got {noise_mode!r}")
        if force_fp32 is None:
            force_fp32 = self.force_fp32
        if channels_last is None:
            channels_last = self.channels_last if self.channels_last is not None else ws.device.type == "cpu"
        x = img = None
        for res, block_ws in zip(self.block_resolutions, self.split_ws(ws)):
            x, img = getattr(self, f"b{res}")(x, img, block_ws, force_fp32=force_fp32, fused_modconv=fused_modconv,
                                              noise_mode=noise_mode, generator=generator,
                                              extra_input=extra_input if res == 4 else None,
                                              frames_per_w=frames_per_w, channels_last=channels_last)
        return img

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        # Constant noise keeps repeated calls on the same inputs identical.
        return {"ws": torch.randn([batch_size, self.num_ws, self.w_dim], generator=generator), "noise_mode": "const"}
