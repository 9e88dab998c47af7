"""Training recipes: what the trainer needs to know about a model family.

A recipe builds the generator and discriminator, says how clips are sampled, how G and D are run,
which losses make up the GAN schedule (G main, G reg, D main, D reg, each with an interval) and
how the trained generator becomes a pipeline. The trainer (:mod:`vgz.training.trainer`) knows
nothing model-specific.

    recipe = vgz.create("recipe", "styleganv", preset="tiny", resolution=64)
    recipe.config.r1_gamma_value()      # the official heuristic when r1_gamma is None

Presets: ``paper`` is the official hyper-parameters of the paper's code, ``tiny`` trains in a few
minutes on a CPU. Every field can be overridden (``vgz train --r1-gamma 0.5``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, Optional

import torch
from einops import rearrange
from torch import nn

from vgz.configs import ComponentConfig, config_field
from vgz.registry import register

__all__ = ["Phase", "RecipeConfig", "Recipe", "StyleGAN2RecipeConfig", "StyleGAN2Recipe",
           "StyleGANVRecipeConfig", "StyleGANVRecipe", "ImageGenerator", "StyleGANVGenerator"]


@dataclass(frozen=True)
class Phase:
    """One entry of the GAN schedule: train ``network`` on ``loss`` every ``interval`` steps."""

    name: str
    network: Literal["G", "D"]
    interval: int
    loss: Callable[[Any], torch.Tensor]


@dataclass
class RecipeConfig(ComponentConfig):
    """Hyper-parameters shared by the StyleGAN-family recipes (official names where they exist)."""

    resolution: int = config_field(256, min=16, max=2048, help="training resolution, a power of two")
    total_kimg: float = config_field(25000.0, min=0, help="training length in thousands of real frames")
    # data
    num_frames: int = config_field(3, min=1, help="frames per training clip k")
    max_dist: int = config_field(32, min=0, help="largest gap between a clip's first and last frame")
    max_num_frames: int = config_field(1024, min=1, help="videos are cut to random windows this long")
    xflip: bool = config_field(True, help="mirror clips at random (official --mirror)")
    fps: float = config_field(25.0, min=1e-3, help="frame rate of the training videos (for the pipeline)")
    # architecture
    z_dim: int = config_field(512, min=1)
    w_dim: int = config_field(512, min=1)
    mapping_layers: int = config_field(8, min=1)
    channel_base: Optional[int] = config_field(None, min=1, help="None: 16384 below 512px, else 32768")
    channel_max: int = config_field(512, min=1)
    num_fp16_res: int = config_field(4, min=0, help="run the N highest resolutions in fp16 (CUDA only)")
    conv_clamp: Optional[float] = config_field(256.0, min=0)
    mbstd_group_size: int = config_field(4, min=1)
    # optimisation
    batch_size: int = config_field(64, min=1, help="clips per step over all processes")
    batch_gpu: Optional[int] = config_field(None, min=1, help="clips per process per round (gradient accumulation)")
    lr: float = config_field(0.0025, min=0)
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = config_field(1e-8, min=0)
    r1_gamma: Optional[float] = config_field(None, min=0, help="None: 0.0002 * resolution^2 / batch_size")
    pl_weight: float = config_field(0.0, min=0)
    style_mixing_prob: float = config_field(0.0, min=0, max=1)
    g_reg_interval: int = config_field(4, min=1)
    d_reg_interval: int = config_field(16, min=1)
    ema_kimg: Optional[float] = config_field(None, min=0, help="EMA half-life; None: batch_size * 10 / 32")
    ema_rampup: Optional[float] = config_field(0.05, min=0, help="EMA ramp-up, None = off")
    # augmentation
    augment: Literal["ada", "fixed", "noaug"] = "ada"
    augpipe: str = config_field("bgc", help="an AugmentConfig preset")
    augment_p: float = config_field(0.0, min=0, max=1, help="initial (or fixed) augmentation probability")
    ada_target: float = config_field(0.6, min=0, max=1)
    ada_interval: int = config_field(4, min=1)
    ada_kimg: float = config_field(500.0, min=1e-6, help="kimg for p to move by 1")

    def check(self) -> None:
        if self.resolution & (self.resolution - 1):
            self.fail("resolution", "a power of two between 16 and 2048")
        if self.augment == "fixed" and self.augment_p == 0:
            self.fail("augment_p", "a probability > 0 with augment='fixed'")

    @property
    def channels(self) -> int:
        return self.channel_base or (16384 if self.resolution < 512 else 32768)

    def r1_gamma_value(self) -> float:
        """R1 weight: the configured one, or the official heuristic 0.0002 * res^2 / batch."""
        return self.r1_gamma if self.r1_gamma is not None else 0.0002 * self.resolution ** 2 / self.batch_size

    def ema_kimg_value(self) -> float:
        return self.ema_kimg if self.ema_kimg is not None else self.batch_size * 10 / 32


class Recipe:
    """Base class of recipes. Subclasses set ``config_class`` and implement the hooks below."""

    config_class: ClassVar[type[RecipeConfig]] = RecipeConfig
    #: RunConfig defaults per preset (e.g. frequent checkpoints for ``tiny``)
    run_presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: generator times may be fractional (StyleGAN-V's continuous time)
    fractional_t: ClassVar[bool] = False

    def __init__(self, config: RecipeConfig | None = None, **overrides: Any):
        if config is None:
            config = self.config_class(**overrides)
        elif overrides:
            config = config.replace(**overrides)
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.loss: Any = None

    @classmethod
    def from_preset(cls, preset: str | None = None, **overrides: Any) -> "Recipe":
        return cls(cls.config_class.from_preset(preset or "paper", **overrides))

    # hooks ------------------------------------------------------------------------------------

    def sampling(self) -> Any:
        """The :class:`~vgz.data.sampling.ClipSamplingConfig` of real and generated clips."""
        from vgz.data.sampling import ClipSamplingConfig

        cfg = self.config
        if cfg.num_frames == 1:  # single frames: any frame of the video
            return ClipSamplingConfig.from_preset("image", max_num_frames=cfg.max_num_frames)
        return ClipSamplingConfig(num_frames=cfg.num_frames, max_dist=cfg.max_dist, max_num_frames=cfg.max_num_frames)

    def build(self, *, img_channels: int, c_dim: int) -> tuple[nn.Module, nn.Module]:
        """Fresh ``(G, D)`` in training mode."""
        raise NotImplementedError

    def run_G(self, G: nn.Module, gen: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(frames [B, T, C, H, W], ws)`` for generator inputs ``gen`` (z, c, t)."""
        return G(gen["z"], gen["c"], gen["t"], style_mixing_prob=self.config.style_mixing_prob)

    def run_D(self, D: nn.Module, frames: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Logits ``[B]`` of clips ``frames [B, T, C, H, W]``."""
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        """The GAN schedule; regularization phases are dropped when their weight is 0."""
        from vgz.training.losses import StyleGAN2Loss

        cfg = self.config
        self.loss = StyleGAN2Loss(self.run_G, self.run_D, r1_gamma=cfg.r1_gamma_value(), pl_weight=cfg.pl_weight)
        phases = [Phase("Gmain", "G", 1, self.loss.g_main)]
        if cfg.pl_weight > 0:
            phases.append(Phase("Greg", "G", cfg.g_reg_interval, self.loss.g_pl))
        phases.append(Phase("Dmain", "D", 1, self.loss.d_main))
        if self.loss.r1_gamma > 0:
            phases.append(Phase("Dreg", "D", cfg.d_reg_interval, self.loss.d_r1))
        return phases

    def optimizer(self, network: Literal["G", "D"], params: Any) -> torch.optim.Optimizer:
        """Adam with the lazy-regularization correction of lr and betas (official)."""
        cfg = self.config
        interval = cfg.g_reg_interval if network == "G" else cfg.d_reg_interval
        ratio = interval / (interval + 1)
        return torch.optim.Adam(params, lr=cfg.lr * ratio, betas=tuple(b ** ratio for b in cfg.betas), eps=cfg.eps)

    def make_pipeline(self, G: nn.Module) -> Any:
        """The generator ``G`` (e.g. its EMA copy) as a pipeline, sharing its modules."""
        raise NotImplementedError

    def sample(self, pipeline: Any, seeds: list[int], num_frames: int) -> torch.Tensor:
        """Sample clips ``[B, T, C, H, W]`` in [0, 1] for the run's sample grids."""
        return pipeline(num_videos=len(seeds), num_frames=num_frames, generator=list(seeds)).frames


def _style_mix(mapping: nn.Module, z: torch.Tensor, c: torch.Tensor | None, ws: torch.Tensor,
               prob: float) -> torch.Tensor:
    """With probability ``prob``, ws after a random cutoff come from another z (official)."""
    if prob <= 0:
        return ws
    cutoff = int(torch.randint(1, ws.shape[1], []).item())
    if torch.rand([]).item() >= prob:
        return ws
    ws = ws.clone()
    ws[:, cutoff:] = mapping(torch.randn_like(z), c, skip_w_avg_update=True)[:, cutoff:]
    return ws


# ===================================================================================== StyleGAN2


class ImageGenerator(nn.Module):
    """StyleGAN2 mapping + synthesis as one module: ``(z, c) -> (frames [B, 1, C, H, W], ws)``."""

    def __init__(self, mapping: nn.Module, synthesis: nn.Module):
        super().__init__()
        self.mapping, self.synthesis = mapping, synthesis

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, t: torch.Tensor | None = None,
                style_mixing_prob: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        c = c if c is not None and c.shape[-1] > 0 else None
        ws = _style_mix(self.mapping, z, c, self.mapping(z, c), style_mixing_prob)
        return rearrange(self.synthesis(ws), "b c h w -> b 1 c h w"), ws


@dataclass
class StyleGAN2RecipeConfig(RecipeConfig):
    """StyleGAN2-ADA on single frames of the videos (the image generator of StyleInV and StyleVideoGAN)."""

    num_frames: int = config_field(1, min=1, max=1, help="one frame per sample: an image GAN")
    max_dist: int = config_field(0, min=0)
    pl_weight: float = config_field(2.0, min=0)
    style_mixing_prob: float = config_field(0.9, min=0, max=1)

    presets = {
        # NVlabs stylegan2-ada-pytorch --cfg=paper256 (train.py cfg_specs), mixed precision as released.
        "paper": {"resolution": 256, "mapping_layers": 8, "channel_base": 16384, "batch_size": 64,
                  "mbstd_group_size": 8, "lr": 0.0025, "r1_gamma": 1.0, "ema_kimg": 20.0, "ema_rampup": None},
        "tiny": {"resolution": 32, "total_kimg": 2.4, "z_dim": 32, "w_dim": 32, "mapping_layers": 2,
                 "channel_base": 1024, "channel_max": 32, "num_fp16_res": 0, "conv_clamp": None,
                 "batch_size": 8, "mbstd_group_size": 4, "lr": 0.002, "ema_kimg": 0.5},
    }


@register("recipe", "stylegan2")
class StyleGAN2Recipe(Recipe):
    """StyleGAN2-ADA image GAN trained on video frames (used by StyleInV and StyleVideoGAN)."""

    config_class = StyleGAN2RecipeConfig
    run_presets = {"tiny": {"checkpoint_every": 100, "sample_every": 100, "log_every": 10}}

    def build(self, *, img_channels: int, c_dim: int) -> tuple[nn.Module, nn.Module]:
        from vgz.discriminators.stylegan2 import Discriminator, DiscriminatorConfig
        from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork

        cfg = self.config
        synthesis = SynthesisNetwork(SynthesisConfig(
            w_dim=cfg.w_dim, img_resolution=cfg.resolution, img_channels=img_channels, channel_base=cfg.channels,
            channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp))
        mapping = MappingNetwork(MappingConfig(z_dim=cfg.z_dim, c_dim=c_dim, w_dim=cfg.w_dim, num_ws=synthesis.num_ws,
                                               num_layers=cfg.mapping_layers))
        D = Discriminator(DiscriminatorConfig(
            c_dim=c_dim, img_resolution=cfg.resolution, img_channels=img_channels, channel_base=cfg.channels,
            channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp,
            mbstd_group_size=cfg.mbstd_group_size))
        return ImageGenerator(mapping, synthesis).train(), D.train()

    def run_D(self, D: nn.Module, frames: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        images = rearrange(frames, "b t c h w -> (b t) c h w")
        c = c.repeat_interleave(frames.shape[1], dim=0) if c.shape[-1] > 0 else None
        return D(images, c)

    def make_pipeline(self, G: nn.Module) -> Any:
        from vgz.pipelines.stylegan2 import StyleGAN2Pipeline

        return StyleGAN2Pipeline(mapping=G.mapping, synthesis=G.synthesis)

    def sample(self, pipeline: Any, seeds: list[int], num_frames: int) -> torch.Tensor:
        return pipeline(num_images=len(seeds), generator=list(seeds)).frames


# ===================================================================================== StyleGAN-V


class StyleGANVGenerator(nn.Module):
    """StyleGAN-V mapping + motion + synthesis: ``(z, c, t [B, T]) -> (frames [B, T, C, H, W], ws)``.

    Motion noise is drawn afresh for every call (training never reuses it).
    """

    def __init__(self, mapping: nn.Module, motion: nn.Module, synthesis: nn.Module):
        super().__init__()
        self.mapping, self.motion, self.synthesis = mapping, motion, synthesis

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, t: torch.Tensor,
                style_mixing_prob: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        c = c if c is not None and c.shape[-1] > 0 else None
        ws = _style_mix(self.mapping, z, c, self.mapping(z, c), style_mixing_prob)
        motion_v = self.motion(t.float(), c)
        return self.synthesis(ws, motion_v), ws


@dataclass
class StyleGANVRecipeConfig(RecipeConfig):
    """StyleGAN-V (Skorokhodov et al. 2022): continuous motion codes, a sparse-clip video D."""

    mapping_layers: int = config_field(2, min=1)
    discriminator: Literal["styleganv", "styleganv-hyper"] = config_field(
        "styleganv", help="the released projection D, or the paper's hypernetwork D")
    # motion (configs/model/stylegan-v.yaml)
    motion_z_dim: int = config_field(512, min=1)
    motion_v_dim: int = config_field(512, min=1)
    motion_z_distance: float = config_field(16.0, min=1e-6)
    motion_kernel_size: int = config_field(11, min=1)
    time_enc_dim: int = config_field(256, min=1)
    min_period_len: float = config_field(16.0, min=1e-6)
    max_period_len: float = config_field(1024.0, min=1e-6)
    # discriminator
    concat_res: int = config_field(16, min=8)
    num_frames_div_factor: int = config_field(2, min=1)
    time_embed_dim: int = config_field(256, min=1)

    presets = {
        # universome/stylegan-v: configs/training/base.yaml (batch 64, ADA bgc target 0.6, mirror) with
        # src/train.py cfg=auto at 256x256 (lr 0.0025, gamma 0.0002 res^2 / batch, ema batch*10/32,
        # fp16 in the 4 highest resolutions, conv_clamp 256) and configs/model/stylegan-v.yaml. With
        # `resume: ~` train.py also takes its transfer-learning branch (`not None in {...}`): released
        # runs use ada_kimg 100 and no EMA ramp-up, so this preset does too.
        "paper": {"ada_kimg": 100.0, "ema_rampup": None},
        "tiny": {"resolution": 32, "total_kimg": 7.2, "z_dim": 32, "w_dim": 32, "channel_base": 1024,
                 "channel_max": 32, "num_fp16_res": 0, "conv_clamp": None, "batch_size": 8, "lr": 0.002,
                 "ema_kimg": 0.5, "max_dist": 16, "max_num_frames": 64, "motion_z_dim": 16, "motion_v_dim": 16,
                 "motion_z_distance": 4.0, "motion_kernel_size": 3, "time_enc_dim": 8, "min_period_len": 4.0,
                 "max_period_len": 64.0, "concat_res": 8, "time_embed_dim": 16},
    }

    def check(self) -> None:
        super().check()
        if self.num_frames < 2 and self.discriminator == "styleganv-hyper":
            self.fail("num_frames", "at least 2 for the hypernetwork discriminator")
        if self.concat_res > self.resolution // 2:
            self.fail("concat_res", f"at most resolution / 2 ({self.resolution // 2})")


@register("recipe", "styleganv")
class StyleGANVRecipe(Recipe):
    """StyleGAN-V video GAN: 3-frame sparse clips, continuous time, ADA applied per clip."""

    config_class = StyleGANVRecipeConfig
    run_presets = {"tiny": {"checkpoint_every": 100, "sample_every": 100, "log_every": 10, "sample_frames": 16}}
    fractional_t = True  # official use_fractional_t: generated clips start between frames

    def build(self, *, img_channels: int, c_dim: int) -> tuple[nn.Module, nn.Module]:
        from vgz.discriminators.styleganv import (StyleGANVDiscriminator, StyleGANVDiscriminatorConfig,
                                                  StyleGANVHyperDiscriminator, StyleGANVHyperDiscriminatorConfig)
        from vgz.generators.stylegan2 import MappingConfig, MappingNetwork
        from vgz.generators.styleganv import (MotionConfig, MotionMappingNetwork, StyleGANVSynthesisConfig,
                                              StyleGANVSynthesisNetwork)

        cfg = self.config
        motion = MotionMappingNetwork(MotionConfig(
            z_dim=cfg.motion_z_dim, v_dim=cfg.motion_v_dim, c_dim=c_dim, kernel_size=cfg.motion_kernel_size,
            motion_z_distance=cfg.motion_z_distance, time_enc_dim=cfg.time_enc_dim,
            min_period_len=cfg.min_period_len, max_period_len=cfg.max_period_len, max_num_frames=cfg.max_num_frames))
        synthesis = StyleGANVSynthesisNetwork(StyleGANVSynthesisConfig(
            w_dim=cfg.w_dim, img_resolution=cfg.resolution, img_channels=img_channels, channel_base=cfg.channels,
            channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp,
            motion_v_dim=motion.out_dim))
        mapping = MappingNetwork(MappingConfig(z_dim=cfg.z_dim, c_dim=c_dim, w_dim=cfg.w_dim, num_ws=synthesis.num_ws,
                                               num_layers=cfg.mapping_layers))
        d_fields: dict[str, Any] = dict(
            c_dim=c_dim, img_resolution=cfg.resolution, img_channels=img_channels, channel_base=cfg.channels,
            channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp,
            mbstd_group_size=cfg.mbstd_group_size, mapping_num_layers=2, num_frames=cfg.num_frames,
            max_num_frames=cfg.max_num_frames, concat_res=cfg.concat_res,
            num_frames_div_factor=cfg.num_frames_div_factor, time_embed_dim=cfg.time_embed_dim)
        if cfg.discriminator == "styleganv":
            D = StyleGANVDiscriminator(StyleGANVDiscriminatorConfig(**d_fields))
        else:
            D = StyleGANVHyperDiscriminator(StyleGANVHyperDiscriminatorConfig(**d_fields, w_dim=cfg.w_dim))
        return StyleGANVGenerator(mapping, motion, synthesis).train(), D.train()

    def run_D(self, D: nn.Module, frames: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return D(frames, c if c.shape[-1] > 0 else None, t)

    def make_pipeline(self, G: nn.Module) -> Any:
        from vgz.pipelines.styleganv import StyleGANVPipeline, StyleGANVPipelineConfig

        return StyleGANVPipeline(StyleGANVPipelineConfig(fps=self.config.fps), mapping=G.mapping, motion=G.motion,
                                 synthesis=G.synthesis)


def copy_generator(G: nn.Module) -> nn.Module:
    """A frozen copy of ``G`` in eval mode, for the EMA."""
    return copy.deepcopy(G).eval().requires_grad_(False)
