"""The ``styleganv`` recipe: StyleGAN-V (Skorokhodov et al. 2022), continuous motion codes and a
sparse-clip video discriminator, trained as universome/stylegan-v trains it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from vgz.configs import config_field
from vgz.registry import register
from vgz.training.recipes.gan import GANRecipe, GANRecipeConfig, style_mix

__all__ = ["StyleGANVGenerator", "StyleGANVRecipeConfig", "StyleGANVRecipe"]


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
        ws = style_mix(self.mapping, z, c, self.mapping(z, c), style_mixing_prob)
        motion_v = self.motion(t.float(), c)
        return self.synthesis(ws, motion_v), ws


@dataclass
class StyleGANVRecipeConfig(GANRecipeConfig):
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
class StyleGANVRecipe(GANRecipe):
    """StyleGAN-V video GAN: 3-frame sparse clips, continuous time, ADA applied per clip."""

    config_class = StyleGANVRecipeConfig
    run_presets = {"tiny": {"checkpoint_every": 100, "sample_every": 100, "log_every": 10, "sample_frames": 16}}
    fractional_t = True  # official use_fractional_t: generated clips start between frames

    def build(self, *, img_channels: int, c_dim: int) -> dict[str, nn.Module]:
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
        return {"G": StyleGANVGenerator(mapping, motion, synthesis).train(), "D": D.train()}

    def run_D(self, D: nn.Module, frames: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return D(frames, c if c.shape[-1] > 0 else None, t)

    def make_pipeline(self, G: nn.Module) -> Any:
        from vgz.pipelines.styleganv import StyleGANVPipeline, StyleGANVPipelineConfig

        return StyleGANVPipeline(StyleGANVPipelineConfig(fps=self.config.fps), mapping=G.mapping, motion=G.motion,
                                 synthesis=G.synthesis)
