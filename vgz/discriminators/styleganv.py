"""StyleGAN-V video discriminators: k sparse frames of a clip plus their times -> one logit.

Both forms run a shared StyleGAN2 trunk over every frame on its own, join the ``k`` frames'
features along channels at ``concat_res`` (each frame keeping ``C // num_frames_div_factor``
channels, so the block there reads ``k * C // num_frames_div_factor``) and finish on the joined
features. Both are told the gaps between the frame times by a :class:`TemporalDifferenceEncoder`
(a learned vector per integer gap + Fourier features of the gap).

:class:`StyleGANVDiscriminator` (kind ``discriminator``, name ``styleganv``) is the released one:
the gap embedding (after any labels) is mapped to a projection vector ``cmap`` and the logit is
the scaled dot product of the head's output with it (Miyato & Koyama's projection discriminator).
It equals universome/stylegan-v's ``Discriminator`` numerically and uses its parameter names
(``time_encoder.const_embed.weight``, ``b8.conv0.weight``, ``mapping.embed.weight``...).

:class:`StyleGANVHyperDiscriminator` (name ``styleganv-hyper``) is the paper's hypernetwork form:
the time gaps generate the weights of the convolutions. The paper states only that the gap
embedding modulates D's convolutions; the rest is our choice, following StyleGAN2's generator:

* ``[labels, gap embedding]`` goes through a mapping network to one code ``w [B, w_dim]``;
* every 3x3 conv *after* the frame concatenation (``conv0``/``conv1`` of the blocks at
  ``concat_res`` and below, and the 4x4 head's ``conv``) is a modulated, demodulated conv whose
  per-input-channel style is an affine map of ``w`` (bias 1, so it starts near a plain conv);
* the per-frame trunk above ``concat_res`` stays unmodulated (it sees single frames, for which a
  gap means nothing, and is then the same trunk as the released D's); residual 1x1 skips and the
  fully connected head stay plain;
* no projection head: labels enter through ``w`` too, and the output layer has one unit.

Inputs: ``img [B, k, C, R, R]`` in ``[-1, 1]``, ``t [B, k]`` frame times (int or float; only their
gaps matter, and each gap must round to ``[0, max_num_frames)``), ``c [B, c_dim]``. Output ``[B, 1]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch
from einops import rearrange
from torch import nn

from vgz.configs import Activation, ComponentConfig, config_field
from vgz.discriminators.stylegan2 import DiscriminatorBlock, DiscriminatorEpilogue
from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, channels_per_resolution
from vgz.layers import (Conv2dLayer, FourierFeatures, FullyConnectedLayer, MinibatchStdLayer, block_dtype,
                        modulated_conv2d, setup_filter)
from vgz.layers.bias_act import activation_spec, bias_act
from vgz.modeling import ModelMixin
from vgz.registry import register

__all__ = [
    "StyleGANVDiscriminatorConfig",
    "StyleGANVDiscriminator",
    "StyleGANVHyperDiscriminatorConfig",
    "StyleGANVHyperDiscriminator",
    "TemporalDifferenceEncoder",
    "ModulatedConv2dLayer",
]


@dataclass
class _VideoDiscriminatorConfig(ComponentConfig):
    """Fields shared by both StyleGAN-V discriminators (official names where the official has one)."""

    c_dim: int = config_field(0, min=0, help="label size, 0 = unconditional")
    img_resolution: int = config_field(256, min=8, max=2048, help="frame size, a power of two")
    img_channels: int = config_field(3, min=1)
    architecture: Literal["orig", "resnet"] = "resnet"  # 'skip' would add per-frame images to joined features
    channel_base: int = config_field(32768, min=1)
    channel_max: int = config_field(512, min=1)
    num_fp16_res: int = config_field(0, min=0)
    conv_clamp: Optional[float] = config_field(None, min=0)
    mbstd_group_size: Optional[int] = config_field(4, min=1, help="clips per group, None = the whole batch")
    mbstd_num_channels: int = config_field(1, min=0, help="0 = no minibatch-std layer")
    activation: Activation = "lrelu"
    resample_filter: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)
    freeze_layers: int = config_field(0, min=0, help="Freeze-D: freeze the first N layers")
    mapping_num_layers: int = config_field(8, min=1, help="layers of the conditioning mapping network")
    fp16_channels_last: bool = False
    num_frames: int = config_field(3, min=1, help="frames per clip k (official sampling.num_frames_per_video)")
    max_num_frames: int = config_field(1024, min=1, help="time gaps must be below this (sampling.max_num_frames)")
    sampling_type: Literal["random", "uniform"] = "random"  # 'uniform': equal gaps, only the first is embedded
    concat_res: int = config_field(16, min=8, help="resolution at whose block the frames' features are joined")
    num_frames_div_factor: int = config_field(2, min=1, help="each frame keeps C // this channels when joined")
    skip_small_t_freqs: int = config_field(0, min=0, help="highest Fourier frequencies of the gaps to drop")
    time_embed_dim: int = config_field(256, min=1, help="learned vector per integer gap (official: 256)")

    def check(self) -> None:
        r = self.img_resolution
        if r & (r - 1):
            self.fail("img_resolution", "a power of two between 8 and 2048")
        if self.channel_base < r:
            self.fail("channel_base", f"at least img_resolution ({r})")
        if self.concat_res & (self.concat_res - 1) or self.concat_res > r // 2:
            self.fail("concat_res", f"a power of two between 8 and img_resolution / 2 ({r // 2}): a block "
                                    "below the first one must receive the joined features")
        joined = min(self.channel_base // self.concat_res, self.channel_max)
        if self.num_frames_div_factor > joined:
            self.fail("num_frames_div_factor", f"at most the channels at concat_res ({joined})")
        head = min(self.channel_base // 4, self.channel_max)
        if self.mbstd_num_channels > 0 and head % self.mbstd_num_channels:
            self.fail("mbstd_num_channels", f"a divisor of the channels at 4x4 ({head})")
        num_freqs = math.ceil(math.log2(self.max_num_frames))
        if self.skip_small_t_freqs > num_freqs:
            self.fail("skip_small_t_freqs", f"at most the number of frequencies ({num_freqs})")


@dataclass
class StyleGANVDiscriminatorConfig(_VideoDiscriminatorConfig):
    """Config of :class:`StyleGANVDiscriminator`."""

    cmap_dim: Optional[int] = config_field(None, min=1, help="projection size, None = channels at 4x4")

    presets = {
        # The released model at 256x256 (src/train.py, cfg=auto, configs/model/stylegan-v.yaml).
        "styleganv-256": {"img_resolution": 256, "channel_base": 16384, "channel_max": 512, "num_fp16_res": 4,
                          "conv_clamp": 256.0, "mbstd_group_size": 4, "mapping_num_layers": 2, "num_frames": 3,
                          "max_num_frames": 1024, "concat_res": 16, "num_frames_div_factor": 2},
        "tiny": {"img_resolution": 16, "channel_base": 512, "channel_max": 32, "mbstd_group_size": 2,
                 "mapping_num_layers": 2, "max_num_frames": 32, "concat_res": 8, "time_embed_dim": 16},
    }


@dataclass
class StyleGANVHyperDiscriminatorConfig(_VideoDiscriminatorConfig):
    """Config of :class:`StyleGANVHyperDiscriminator`."""

    w_dim: int = config_field(512, min=1, help="code from labels and gaps that the affines turn into styles")

    presets = {
        "styleganv-256": {**StyleGANVDiscriminatorConfig.presets["styleganv-256"], "w_dim": 512},
        "tiny": {**StyleGANVDiscriminatorConfig.presets["tiny"], "w_dim": 32},
    }

    def check(self) -> None:
        super().check()
        if self.num_frames < 2:
            self.fail("num_frames", "at least 2 (the convolutions are modulated by the gaps between frames)")


class TemporalDifferenceEncoder(nn.Module):
    """Embeds the gaps between a clip's frame times: ``t [B, k] -> [B, dim]``.

    Each gap gets a learned vector (row ``round(gap)`` of ``const_embed``) and Fourier features
    (:class:`~vgz.layers.FourierFeatures`); ``dim = num_gaps * (embed_dim + fourier dim)`` with
    ``num_gaps = k - 1``, or 1 for ``"uniform"`` sampling, where all gaps are equal.
    """

    def __init__(self, num_frames: int, max_num_frames: int, embed_dim: int = 256, skip_small_t_freqs: int = 0,
                 sampling_type: str = "random"):
        super().__init__()
        self.max_num_frames = max_num_frames
        self.num_gaps = 1 if sampling_type == "uniform" else num_frames - 1
        self.const_embed = nn.Embedding(max_num_frames, embed_dim)
        self.time_encoder = FourierFeatures(max_num_frames, skip_small_t_freqs)

    @property
    def dim(self) -> int:
        return self.num_gaps * (self.const_embed.embedding_dim + self.time_encoder.dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        gaps = t[:, 1:self.num_gaps + 1] - t[:, :self.num_gaps]  # [B, G]
        # Through float: int64 times round trivially and float ones hit the row of their nearest integer.
        rows = gaps.float().round().long()
        # Checked here: an out-of-range row is a device-side assert on CUDA, with no hint of the cause.
        if bool(((rows < 0) | (rows >= self.max_num_frames)).any()):
            raise ValueError(f"time gaps t[:, i+1] - t[:, i] must round to [0, {self.max_num_frames - 1}] "
                             f"(max_num_frames={self.max_num_frames}), got {gaps.tolist()}")
        emb = torch.cat([self.const_embed(rows), self.time_encoder(gaps)], dim=-1)  # [B, G, D]
        return rearrange(emb, "b g d -> b (g d)")


class ModulatedConv2dLayer(nn.Module):
    """StyleGAN2 modulated conv (optionally 2x downsampling) + bias + activation + clamp.

    ``x [N, C_in, H, W]``, ``w [N, w_dim]`` -> ``[N, C_out, H / down, W / down]``.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 3, down: int = 1,
                 activation: str = "lrelu", resample_filter: tuple[float, ...] = (1, 3, 3, 1),
                 conv_clamp: float | None = None, channels_last: bool = False, trainable: bool = True):
        super().__init__()
        self.down, self.padding, self.activation, self.conv_clamp = down, kernel_size // 2, activation, conv_clamp
        self.act_gain = activation_spec(activation).def_gain
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)  # styles start near 1
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        shape = [out_channels, in_channels, kernel_size, kernel_size]
        self.weight = nn.Parameter(torch.randn(shape).to(memory_format=fmt))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        if not trainable:
            self.requires_grad_(False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True, gain: float = 1.0) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w), down=self.down, padding=self.padding,
                             resample_filter=self.resample_filter, fused_modconv=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp,
                        inplace=not torch.is_grad_enabled())


class HyperDiscriminatorBlock(nn.Module):
    """A block on joined features: modulated conv -> modulated conv with 2x down (+ plain 1x1 skip)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, w_dim: int, first_layer_idx: int,
                 architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter: tuple[float, ...] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 use_fp16: bool = False, fp16_channels_last: bool = False, freeze_layers: int = 0):
        super().__init__()
        self.architecture, self.use_fp16 = architecture, use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        trainable = [first_layer_idx + i >= freeze_layers for i in range(3)]  # official order: conv0, conv1, skip
        common = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        self.conv0 = ModulatedConv2dLayer(in_channels, tmp_channels, w_dim, trainable=trainable[0], **common)
        self.conv1 = ModulatedConv2dLayer(tmp_channels, out_channels, w_dim, down=2, resample_filter=resample_filter,
                                          trainable=trainable[1], **common)
        self.num_layers = 2
        if architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last,
                                    trainable=trainable[2])
            self.num_layers = 3

    def forward(self, x: torch.Tensor, w: torch.Tensor, force_fp32: bool = False,
                fused_modconv: bool | None = None) -> torch.Tensor:
        dtype = block_dtype(self.use_fp16, force_fp32, x.device)
        fmt = torch.channels_last if self.channels_last and dtype == torch.float16 else torch.contiguous_format
        x = x.to(dtype=dtype, memory_format=fmt)
        if fused_modconv is None:
            # As in the generator: grouped convs for fp32 inference, scale-conv-scale otherwise.
            fused_modconv = (not self.training) and (dtype == torch.float32 or x.shape[0] == 1)
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, w, fused_modconv=fused_modconv)
            return y + self.conv1(x, w, fused_modconv=fused_modconv, gain=math.sqrt(0.5))
        return self.conv1(self.conv0(x, w, fused_modconv=fused_modconv), w, fused_modconv=fused_modconv)


class HyperDiscriminatorEpilogue(nn.Module):
    """The 4x4 head: minibatch-std, modulated conv, fc, one output unit: ``[B, C, 4, 4] -> [B, 1]``."""

    def __init__(self, in_channels: int, w_dim: int, mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: float | None = None):
        super().__init__()
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = ModulatedConv2dLayer(in_channels + mbstd_num_channels, in_channels, w_dim, activation=activation,
                                         conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * 16, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool | None = None) -> torch.Tensor:
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x, w, fused_modconv=not self.training if fused_modconv is None else fused_modconv)
        return self.out(self.fc(x.flatten(1)))


class _VideoDiscriminator(ModelMixin):
    """What both discriminators share: channel plan, time encoder, per-frame trunk, input checks."""

    def _setup(self) -> None:
        cfg: _VideoDiscriminatorConfig = self.config
        self.c_dim, self.img_resolution, self.img_channels = cfg.c_dim, cfg.img_resolution, cfg.img_channels
        self.num_frames, self.concat_res = cfg.num_frames, cfg.concat_res
        log2 = int(math.log2(cfg.img_resolution))
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        self.channels = channels_per_resolution(self.block_resolutions + [4], cfg.channel_base, cfg.channel_max)
        self.fp16_resolution = max(2 ** (log2 + 1 - cfg.num_fp16_res), 8)
        self.time_encoder = None
        if cfg.num_frames > 1:  # a single frame has no gaps (the official D has no time encoder then)
            self.time_encoder = TemporalDifferenceEncoder(cfg.num_frames, cfg.max_num_frames, cfg.time_embed_dim,
                                                          cfg.skip_small_t_freqs, cfg.sampling_type)
        self.cond_dim = cfg.c_dim + (self.time_encoder.dim if self.time_encoder is not None else 0)

    def _block_channels(self, res: int) -> tuple[int, int, int]:
        """``(in, tmp, out)`` channels of block ``b{res}``, with the frame join at ``concat_res``."""
        cfg: _VideoDiscriminatorConfig = self.config
        in_ch = self.channels[res] if res < cfg.img_resolution else 0
        tmp_ch, out_ch = self.channels[res], self.channels[res // 2]
        if res // 2 == cfg.concat_res:  # each frame hands on fewer channels, so that k of them stay affordable
            out_ch //= cfg.num_frames_div_factor
        if res == cfg.concat_res:
            in_ch = (in_ch // cfg.num_frames_div_factor) * cfg.num_frames
        return in_ch, tmp_ch, out_ch

    def _trunk_block(self, res: int, layer_idx: int) -> DiscriminatorBlock:
        """A plain StyleGAN2 block; at ``concat_res`` its conv0 and skip read all k frames' channels."""
        cfg: _VideoDiscriminatorConfig = self.config
        in_ch, tmp_ch, out_ch = self._block_channels(res)
        block = DiscriminatorBlock(
            in_ch, tmp_ch, out_ch, resolution=res, img_channels=cfg.img_channels, first_layer_idx=layer_idx,
            architecture=cfg.architecture, activation=cfg.activation, resample_filter=cfg.resample_filter,
            conv_clamp=cfg.conv_clamp, use_fp16=res >= self.fp16_resolution,
            fp16_channels_last=cfg.fp16_channels_last, freeze_layers=cfg.freeze_layers,
        )
        if res == cfg.concat_res:
            # vgz's StyleGAN2 block sizes conv0/skip inputs by tmp_channels (equal to in_channels
            # there); StyleGAN-V's block takes in_channels, which differ only here.
            block.conv0 = Conv2dLayer(in_ch, tmp_ch, kernel_size=3, activation=cfg.activation,
                                      conv_clamp=cfg.conv_clamp, channels_last=block.channels_last,
                                      trainable=block.conv0.weight.requires_grad)
            if cfg.architecture == "resnet":
                block.skip = Conv2dLayer(in_ch, out_ch, kernel_size=1, bias=False, down=2,
                                         resample_filter=cfg.resample_filter, channels_last=block.channels_last,
                                         trainable=block.skip.weight.requires_grad)
        return block

    def _mapping(self, w_dim: int) -> MappingNetwork:
        return MappingNetwork(MappingConfig(z_dim=0, c_dim=self.cond_dim, w_dim=w_dim, num_ws=None, w_avg_beta=None,
                                            num_layers=self.config.mapping_num_layers))

    def _prepare(self, img: torch.Tensor, c: torch.Tensor | None,
                 t: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Check the inputs; return frames ``[(B k), C, R, R]`` and the condition ``[B, cond_dim]`` (or None)."""
        k, r = self.num_frames, self.img_resolution
        expected = (k, self.img_channels, r, r)
        if img.ndim != 5 or tuple(img.shape[2:]) != expected[1:]:
            raise ValueError(f"img must be [B, {', '.join(map(str, expected))}] (batch, frames, channels, height, "
                             f"width), got {tuple(img.shape)}")
        batch_size = img.shape[0]
        if img.shape[1] != k:
            raise ValueError(f"img has {img.shape[1]} frames per clip, but this discriminator joins exactly "
                             f"num_frames={k} frames' features at {self.concat_res}x{self.concat_res}")
        parts = []
        if self.c_dim > 0:
            if c is None or tuple(c.shape) != (batch_size, self.c_dim):
                raise ValueError(f"c must be [{batch_size}, {self.c_dim}], got {None if c is None else tuple(c.shape)}")
            parts.append(c.to(torch.float32))
        if self.time_encoder is not None:
            if t is None or tuple(t.shape) != (batch_size, k):
                raise ValueError(f"t must be [{batch_size}, {k}] (one time per frame of img), "
                                 f"got {None if t is None else tuple(t.shape)}")
            parts.append(self.time_encoder(t))
        cond = torch.cat(parts, dim=1) if parts else None
        return rearrange(img, "b t c h w -> (b t) c h w"), cond

    def _join_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``[(B k), C, H, W]`` -> one clip's ``[B, (k C), H, W]``, frame-major."""
        return rearrange(x, "(b t) c h w -> b (t c) h w", t=self.num_frames)

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        cfg: _VideoDiscriminatorConfig = self.config
        k, r = cfg.num_frames, cfg.img_resolution
        img = torch.randn([batch_size, k, cfg.img_channels, r, r], generator=generator)
        c = torch.randn([batch_size, cfg.c_dim], generator=generator) if cfg.c_dim > 0 else None
        # Sorted integer frame indices whose gaps all stay below max_num_frames.
        max_gap = (cfg.max_num_frames - 1) // max(k - 1, 1)
        gaps = torch.randint(0, max_gap + 1, [batch_size, k - 1], generator=generator)
        if cfg.sampling_type == "uniform":
            gaps = gaps[:, :1].expand(-1, k - 1)
        t = torch.cat([torch.zeros([batch_size, 1], dtype=torch.long), gaps.cumsum(dim=1)], dim=1)
        return {"img": img, "c": c, "t": t}


@register("discriminator", "styleganv")
class StyleGANVDiscriminator(_VideoDiscriminator):
    """StyleGAN-V's released video discriminator: clips ``[B, k, C, R, R]`` + frame times (+ labels) -> ``[B, 1]``."""

    config_class = StyleGANVDiscriminatorConfig

    def __init__(self, config: StyleGANVDiscriminatorConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg: StyleGANVDiscriminatorConfig = self.config
        self._setup()
        cmap_dim = 0 if self.cond_dim == 0 else (cfg.cmap_dim or self.channels[4])
        layer_idx = 0
        for res in self.block_resolutions:
            block = self._trunk_block(res, layer_idx)
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if self.cond_dim > 0:
            self.mapping = self._mapping(cmap_dim)
        self.b4 = DiscriminatorEpilogue(self.channels[4], cmap_dim=cmap_dim, resolution=4,
                                        img_channels=cfg.img_channels, architecture=cfg.architecture,
                                        mbstd_group_size=cfg.mbstd_group_size,
                                        mbstd_num_channels=cfg.mbstd_num_channels, activation=cfg.activation,
                                        conv_clamp=cfg.conv_clamp)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, t: torch.Tensor | None = None,
                force_fp32: bool = False) -> torch.Tensor:
        """Logits of clips.

        Args:
            img: ``[B, k, C, R, R]``, ``k = num_frames``.
            c: ``[B, c_dim]`` labels (None when ``c_dim == 0``).
            t: ``[B, k]`` frame times (needed when ``k > 1``).
            force_fp32: run fp16 blocks in fp32.

        Returns:
            ``[B, 1]`` float32.
        """
        x, cond = self._prepare(img, c, t)
        frames = x
        x = None
        for res in self.block_resolutions:
            if res == self.concat_res:
                x = self._join_frames(x)
            x, frames = getattr(self, f"b{res}")(x, frames, force_fp32=force_fp32)
        cmap = self.mapping(None, cond) if cond is not None else None
        return self.b4(x, frames, cmap)


@register("discriminator", "styleganv-hyper")
class StyleGANVHyperDiscriminator(_VideoDiscriminator):
    """StyleGAN-V's hypernetwork video discriminator: time gaps modulate the convs on joined frames; -> ``[B, 1]``."""

    config_class = StyleGANVHyperDiscriminatorConfig

    def __init__(self, config: StyleGANVHyperDiscriminatorConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg: StyleGANVHyperDiscriminatorConfig = self.config
        self._setup()
        layer_idx = 0
        for res in self.block_resolutions:
            if res > cfg.concat_res:
                block = self._trunk_block(res, layer_idx)
            else:
                in_ch, tmp_ch, out_ch = self._block_channels(res)
                block = HyperDiscriminatorBlock(
                    in_ch, tmp_ch, out_ch, w_dim=cfg.w_dim, first_layer_idx=layer_idx, architecture=cfg.architecture,
                    activation=cfg.activation, resample_filter=cfg.resample_filter, conv_clamp=cfg.conv_clamp,
                    use_fp16=res >= self.fp16_resolution, fp16_channels_last=cfg.fp16_channels_last,
                    freeze_layers=cfg.freeze_layers,
                )
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        self.mapping = self._mapping(cfg.w_dim)
        self.b4 = HyperDiscriminatorEpilogue(self.channels[4], cfg.w_dim, mbstd_group_size=cfg.mbstd_group_size,
                                             mbstd_num_channels=cfg.mbstd_num_channels, activation=cfg.activation,
                                             conv_clamp=cfg.conv_clamp)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, t: torch.Tensor | None = None,
                force_fp32: bool = False, fused_modconv: bool | None = None) -> torch.Tensor:
        """Logits of clips.

        Args:
            img: ``[B, k, C, R, R]``, ``k = num_frames``.
            c: ``[B, c_dim]`` labels (None when ``c_dim == 0``).
            t: ``[B, k]`` frame times.
            force_fp32: run fp16 blocks in fp32.
            fused_modconv: force the fused/unfused modulated conv (None = fused in fp32 eval).

        Returns:
            ``[B, 1]`` float32.
        """
        frames, cond = self._prepare(img, c, t)
        w = self.mapping(None, cond)  # [B, w_dim]: the hypernetwork's code for this clip's gaps (and label)
        x = None
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            if res > self.concat_res:
                x, frames = block(x, frames, force_fp32=force_fp32)
                continue
            if res == self.concat_res:
                x = self._join_frames(x)
            x = block(x, w, force_fp32=force_fp32, fused_modconv=fused_modconv)
        return self.b4(x, w, fused_modconv=fused_modconv)
