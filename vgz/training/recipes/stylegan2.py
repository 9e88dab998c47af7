"""The ``stylegan2`` recipe: StyleGAN2-ADA on single frames of the videos (the image generator
StyleInV and StyleVideoGAN build on), and StyleInV's style-transfer fine-tune of one.

Style transfer (StyleInV's ``train_stylegan2.py --transfer``)::

    vgz train --recipe stylegan2 --preset transfer --transfer runs/styleinv/pipeline --data arcane_faces/ \
        --id-weights model_ir_se50.pth

starts from the source generator (``--transfer``: a stylegan2, psp or styleinv pipeline, a run folder or
a folder of mapping/ and synthesis/), keeps its mapping and its synthesis blocks below
``finetune_g_res`` (64: the 4..32 blocks) frozen, and adds to the adversarial loss
``perceptual_weight * LPIPS(vgg)`` and ``identity_weight * (1 - cos ArcFace)`` between each image and
the source generator's image of the same ``ws`` (no path-length penalty, as the official loss drops it).
Its discriminator starts from the source folder's ``discriminator/`` when there is one (``vgz convert
stylegan2-ada --discriminator``), fresh otherwise (the official run resumes it from the source pickle).
From a StyleInV source the run exports that StyleInV pipeline with the tuned synthesis as its
``stylized_synthesis``: ``vgz generate run/pipeline --stylized`` moves the same latents in the new style,
with no retraining of the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
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
    # style transfer (StyleInV's --transfer)
    transfer: str = config_field("", help="fine-tune this generator for style transfer (a stylegan2, psp or styleinv "
                                          "pipeline, run folder, mapping/+synthesis/ folder or Hub id)")
    finetune_g_res: int = config_field(64, min=4, help="with transfer: synthesis blocks below this resolution (and "
                                                       "the mapping) stay frozen")
    perceptual_weight: float = config_field(0.0, min=0, help="with transfer: LPIPS (vgg) to the source's images")
    identity_weight: float = config_field(0.0, min=0, help="with transfer: ArcFace identity loss to the source's images")
    lpips_backbone: Optional[str] = config_field(None, help="torchvision vgg16 weights for LPIPS (default: the torch "
                                                            "hub cache)")
    lpips_random_backbone: bool = config_field(False, help="tests only: LPIPS with a random backbone")
    id_weights: Optional[str] = config_field(None, help="ArcFace IR-SE50 weights, model_ir_se50.pth")

    presets = {
        # NVlabs stylegan2-ada-pytorch --cfg=paper256 (train.py cfg_specs), mixed precision as released.
        "paper": {"resolution": 256, "mapping_layers": 8, "channel_base": 16384, "batch_size": 64,
                  "mbstd_group_size": 8, "lr": 0.0025, "r1_gamma": 1.0, "ema_kimg": 20.0, "ema_rampup": None},
        "tiny": {"resolution": 32, "total_kimg": 2.4, "z_dim": 32, "w_dim": 32, "mapping_layers": 2,
                 "channel_base": 1024, "channel_max": 32, "num_fp16_res": 0, "conv_clamp": None,
                 "batch_size": 8, "mbstd_group_size": 4, "lr": 0.002, "ema_kimg": 0.5},
        # StyleInV's README fine-tune (--cfg=paper256 --aug=ada --mirror=1 --transfer=True
        # --finetune-g-res=64 --perceptual-weight=30 --identity-weight=1); pass --transfer and --id-weights.
        "transfer": {"resolution": 256, "mapping_layers": 8, "channel_base": 16384, "batch_size": 64,
                     "mbstd_group_size": 8, "lr": 0.0025, "r1_gamma": 1.0, "ema_kimg": 20.0, "ema_rampup": None,
                     "finetune_g_res": 64, "perceptual_weight": 30.0, "identity_weight": 1.0},
    }

    def check(self) -> None:
        super().check()
        if self.identity_weight > 0 and not self.id_weights:
            self.fail("id_weights", "model_ir_se50.pth (ArcFace) when identity_weight > 0")


@register("recipe", "stylegan2")
class StyleGAN2Recipe(GANRecipe):
    """StyleGAN2-ADA image GAN trained on video frames (used by StyleInV and StyleVideoGAN)."""

    config_class = StyleGAN2RecipeConfig
    run_presets = {"tiny": {"checkpoint_every": 100, "sample_every": 100, "log_every": 10}}

    def build(self, *, img_channels: int, c_dim: int) -> dict[str, nn.Module]:
        from vgz.discriminators.stylegan2 import Discriminator, DiscriminatorConfig
        from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork

        cfg = self.config
        if cfg.transfer:
            return self._build_transfer(img_channels=img_channels, c_dim=c_dim)
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

    def _build_transfer(self, *, img_channels: int, c_dim: int) -> dict[str, nn.Module]:
        """The source generator, trainable from ``finetune_g_res`` up; its frozen copy renders the targets."""
        import copy
        from pathlib import Path

        import vgz
        from vgz.discriminators.stylegan2 import Discriminator, DiscriminatorConfig
        from vgz.training.recipes.psp import load_generator

        cfg = self.config
        self.source_mapping, self.source_synthesis, pipe = load_generator(cfg.transfer, with_pipeline=True)
        # A StyleInV source is exported again with the tuned synthesis (make_pipeline).
        self.source_styleinv = pipe if pipe is not None and pipe.registry_key() == ("pipeline", "styleinv") else None
        s = self.source_synthesis.config
        if s.img_resolution != cfg.resolution or s.img_channels != img_channels:
            raise ValueError(f"{cfg.transfer} renders {s.img_channels}x{s.img_resolution}x{s.img_resolution}, the "
                             f"recipe and data {img_channels}x{cfg.resolution}x{cfg.resolution}: pass --resolution "
                             f"{s.img_resolution} (and data with {s.img_channels} channels)")
        if c_dim != self.source_mapping.config.c_dim:
            raise ValueError(f"{cfg.transfer} takes {self.source_mapping.config.c_dim} labels, the data has {c_dim}")
        mapping = copy.deepcopy(self.source_mapping).train().requires_grad_(False)
        synthesis = copy.deepcopy(self.source_synthesis).train().requires_grad_(False)
        for name, block in synthesis.named_children():  # b4, b8, ...: open from finetune_g_res up
            if name.startswith("b") and name[1:].isdigit() and int(name[1:]) >= cfg.finetune_g_res:
                block.requires_grad_(True)
        if not any(p.requires_grad for p in synthesis.parameters()):
            raise ValueError(f"finetune_g_res={cfg.finetune_g_res} leaves no synthesis block of the "
                             f"{s.img_resolution}x{s.img_resolution} generator to fine-tune")
        source = Path(cfg.transfer).expanduser()
        if (source / "discriminator" / "config.json").is_file():
            D = vgz.load_component(source / "discriminator")
        else:
            D = Discriminator(DiscriminatorConfig(
                c_dim=c_dim, img_resolution=cfg.resolution, img_channels=img_channels, channel_base=cfg.channels,
                channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp,
                mbstd_group_size=cfg.mbstd_group_size))
        return {"G": ImageGenerator(mapping, synthesis), "D": D.train()}

    def setup(self, trainer: Any) -> None:
        super().setup(trainer)
        cfg = self.config
        self.lpips = self.arcface = None
        if not cfg.transfer:
            return
        self.source_synthesis.to(trainer.device)
        if self.source_styleinv is not None:
            self.source_styleinv.to(trainer.device)
        if cfg.perceptual_weight > 0:
            from vgz.training.perceptual import load_lpips

            self.lpips = load_lpips("vgg", cfg.lpips_backbone, random_backbone=cfg.lpips_random_backbone)
            self.lpips.to(trainer.device)
        if cfg.identity_weight > 0:
            from vgz.training.perceptual import load_arcface

            self.arcface = load_arcface(cfg.id_weights).to(trainer.device)

    def phases(self) -> list:
        phases = super().phases()
        if not self.config.transfer:
            return phases
        from vgz.training.recipes.base import Phase

        # The official transfer loss skips the path-length penalty once blocks are frozen.
        return [Phase("Gmain", "G", 1, self.transfer_g_main) if p.name == "Gmain" else p
                for p in phases if p.name != "Greg"]

    def transfer_g_main(self, ctx: Any) -> torch.Tensor:
        """Adversarial loss plus LPIPS and identity to the source generator's image of the same ws."""
        from vgz.training.perceptual import identity_loss

        cfg = self.config
        fake, ws = self.run_G(ctx.G, ctx.gen)
        logits = self.run_D(ctx.D, ctx.augment(fake), ctx.gen["c"], ctx.gen["t"]).reshape(-1)
        ctx.log("scores/fake", logits)
        total = F.softplus(-logits).mean()
        ctx.log("loss/G/adv", total)
        image = rearrange(fake, "b 1 c h w -> b c h w")
        with torch.no_grad():
            source = self.source_synthesis(ws)
        if self.lpips is not None:
            perceptual = self.lpips(image, source).mean()
            ctx.log("loss/G/perceptual", perceptual)
            total = total + cfg.perceptual_weight * perceptual
        if self.arcface is not None:
            ident = identity_loss(self.arcface, image, source)
            ctx.log("loss/G/identity", ident)
            total = total + cfg.identity_weight * ident
        ctx.log("loss/G", total)
        return total

    def run_D(self, D: nn.Module, frames: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        images = rearrange(frames, "b t c h w -> (b t) c h w")
        c = c.repeat_interleave(frames.shape[1], dim=0) if c.shape[-1] > 0 else None
        return D(images, c)

    def make_pipeline(self, G: nn.Module) -> Any:
        from vgz.pipelines.stylegan2 import StyleGAN2Pipeline

        styleinv = getattr(self, "source_styleinv", None)
        if styleinv is not None:  # the StyleInV model, moving in the new style
            return type(styleinv)(styleinv.config, **{**styleinv.components, "stylized_synthesis": G.synthesis})
        return StyleGAN2Pipeline(mapping=G.mapping, synthesis=G.synthesis)

    def sample(self, pipeline: Any, seeds: list[int], num_frames: int) -> torch.Tensor:
        if pipeline.registry_key() == ("pipeline", "styleinv"):
            return pipeline(num_videos=len(seeds), num_frames=num_frames, generator=list(seeds), stylized=True).frames
        return pipeline(num_images=len(seeds), generator=list(seeds)).frames
