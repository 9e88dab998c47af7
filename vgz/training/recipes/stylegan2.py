"""The ``stylegan2`` recipe: StyleGAN2-ADA on single frames of the videos (the image generator
StyleInV and StyleVideoGAN build on)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import nn

from vgz.configs import config_field
from vgz.registry import register
from vgz.training.recipes.gan import GANRecipe, GANRecipeConfig, style_mix

__all__ = ["ImageGenerator", "StyleGAN2RecipeConfig", "StyleGAN2Recipe"]


class ImageGenerator(nn.Module):
    """StyleGAN2 mapping + synthesis as one module: ``(z, c) -> (frames [B, 1, C, H, W], ws)``."""

    def __init__(self, mapping: nn.Module, synthesis: nn.Module):
        super().__init__()
        self.mapping, self.synthesis = mapping, synthesis

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, t: torch.Tensor | None = None,
                style_mixing_prob: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        c = c if c is not None and c.shape[-1] > 0 else None
        ws = style_mix(self.mapping, z, c, self.mapping(z, c), style_mixing_prob)
        return rearrange(self.synthesis(ws), "b c h w -> b 1 c h w"), ws


@dataclass
class StyleGAN2RecipeConfig(GANRecipeConfig):
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
class StyleGAN2Recipe(GANRecipe):
    """StyleGAN2-ADA image GAN trained on video frames (used by StyleInV and StyleVideoGAN)."""

    config_class = StyleGAN2RecipeConfig
    run_presets = {"tiny": {"checkpoint_every": 100, "sample_every": 100, "log_every": 10}}

    def build(self, *, img_channels: int, c_dim: int) -> dict[str, nn.Module]:
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
        return {"G": ImageGenerator(mapping, synthesis).train(), "D": D.train()}

    def run_D(self, D: nn.Module, frames: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        images = rearrange(frames, "b t c h w -> (b t) c h w")
        c = c.repeat_interleave(frames.shape[1], dim=0) if c.shape[-1] > 0 else None
        return D(images, c)

    def make_pipeline(self, G: nn.Module) -> Any:
        from vgz.pipelines.stylegan2 import StyleGAN2Pipeline

        return StyleGAN2Pipeline(mapping=G.mapping, synthesis=G.synthesis)

    def sample(self, pipeline: Any, seeds: list[int], num_frames: int) -> torch.Tensor:
        return pipeline(num_images=len(seeds), generator=list(seeds)).frames
