"""The ``psp`` recipe: a pSp encoder trained against a frozen vgz StyleGAN2 generator on video frames.

    vgz train --recipe psp --generator runs/faces/pipeline --data videos/ --preset paper

pSp's ``coach.py`` (Richardson et al. 2021), not a GAN: each step encodes real frames (resized to
the encoder's input size, in [-1, 1]), renders the codes with the frozen generator (random noise,
as pSp trains) and minimises ``l2_lambda * MSE + lpips_lambda * LPIPS(alex) + id_lambda * (1 -
cos ArcFace) + w_norm_lambda * |codes - latent_avg|`` between the rendering and the frame, both
at 256x256 (pSp's ``face_pool``: adaptive average pooling, which repeats pixels of smaller images). The encoder adds the generator's average
w (``start_from_latent_avg``) and starts, as pSp's does, from ArcFace IR-SE50 weights when
``encoder_init`` names ``model_ir_se50.pth``. The run exports a ``psp`` pipeline (encoder +
the generator) and samples frames beside their reconstructions.

Weights that cannot be downloaded here come from files: LPIPS's AlexNet from ``lpips_backbone`` or
the torch hub cache (:func:`vgz.training.perceptual.load_lpips`), ArcFace from ``id_weights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vgz.configs import config_field
from vgz.registry import register
from vgz.training.optim import Ranger
from vgz.training.perceptual import identity_loss
from vgz.training.recipes.base import Phase, Recipe, RecipeConfig

__all__ = ["PSPRecipeConfig", "PSPRecipe", "load_generator"]


@dataclass
class PSPRecipeConfig(RecipeConfig):
    """pSp's training options (``options/train_options.py`` names where they exist)."""

    generator: str = config_field("", help="the frozen StyleGAN2 to invert: a stylegan2 pipeline or run folder, a "
                                           "folder of mapping/ and synthesis/ (vgz convert), or a Hub id")
    encoder_type: Literal["psp", "psp-w"] = config_field("psp", help="psp: W+ (GradualStyleEncoder); psp-w: W")
    encoder_preset: str = config_field("ir-se50", help="the encoder config preset (tiny for tests)")
    input_size: int = config_field(256, min=16, help="frames are encoded at this size")
    start_from_latent_avg: bool = True
    encoder_init: Optional[str] = config_field(None, help="model_ir_se50.pth to start the backbone from (pSp)")
    optim_name: Literal["ranger", "adam"] = "ranger"
    learning_rate: float = config_field(1e-4, min=0)
    l2_lambda: float = config_field(1.0, min=0)
    lpips_lambda: float = config_field(0.8, min=0)
    id_lambda: float = config_field(0.0, min=0, help="identity loss (faces; needs id_weights)")
    w_norm_lambda: float = config_field(0.0, min=0)
    lpips_net: Literal["alex", "vgg"] = "alex"
    lpips_backbone: Optional[str] = config_field(None, help="torchvision weights of the LPIPS backbone (default: "
                                                            "the torch hub cache)")
    lpips_random_backbone: bool = config_field(False, help="tests only: LPIPS with a random backbone")
    id_weights: Optional[str] = config_field(None, help="ArcFace IR-SE50 weights, model_ir_se50.pth")
    num_frames: int = config_field(1, min=1, max=1, help="single frames")
    max_dist: int = config_field(0, min=0)
    xflip: bool = False

    presets = {
        # pSp's README, FFHQ encoding: batch 8, Ranger lr 1e-4, lpips 0.8, l2 1, id 0.1, 500k steps.
        "paper": {"batch_size": 8, "id_lambda": 0.1, "total_kimg": 4000.0},
        "tiny": {"batch_size": 4, "encoder_preset": "tiny", "input_size": 32, "optim_name": "adam",
                 "learning_rate": 1e-3, "lpips_lambda": 0.0, "total_kimg": 0.2, "resolution": 16},
    }

    def check(self) -> None:
        super().check()
        if self.id_lambda > 0 and not self.id_weights:
            self.fail("id_weights", "model_ir_se50.pth (ArcFace) when id_lambda > 0")


def load_generator(ref: str, *, with_pipeline: bool = False) -> tuple[Any, ...]:
    """``(mapping, synthesis)`` of a StyleGAN2 to invert: a ``stylegan2`` or ``psp`` pipeline (folder,
    run folder or Hub id) or a folder holding ``mapping/`` and ``synthesis/`` component folders.
    ``with_pipeline``: also the pipeline they came from (None for component folders), sharing them."""
    from pathlib import Path

    import vgz
    from vgz.hub import model_folder
    from vgz.pipelines.base import VideoPipeline

    folder = Path(ref).expanduser()
    pipe = None
    if (folder / "mapping" / "config.json").is_file() and not (folder / "model_index.json").is_file():
        mapping, synthesis = vgz.load_component(folder / "mapping"), vgz.load_component(folder / "synthesis")
    else:
        pipe = VideoPipeline.from_pretrained(model_folder(ref) if folder.is_dir() else ref)
        mapping, synthesis = getattr(pipe, "mapping", None), getattr(pipe, "synthesis", None)
        if mapping is None or synthesis is None or synthesis.registry_key() != ("synthesis", "stylegan2"):
            raise ValueError(f"{ref}: a {type(pipe).__name__}; the psp recipe inverts a StyleGAN2 image generator "
                             "(a stylegan2 pipeline, or mapping/ and synthesis/ from vgz convert)")
    if synthesis.registry_key() != ("synthesis", "stylegan2") or mapping.registry_key() != ("mapping", "stylegan2"):
        raise ValueError(f"{ref}: expected StyleGAN2 mapping and synthesis networks, found "
                         f"{mapping.registry_key()} and {synthesis.registry_key()}")
    mapping, synthesis = mapping.eval().requires_grad_(False), synthesis.eval().requires_grad_(False)
    return (mapping, synthesis, pipe) if with_pipeline else (mapping, synthesis)


@register("recipe", "psp")
class PSPRecipe(Recipe):
    """pSp: an encoder into W+ (or W) of a frozen StyleGAN2, trained on frames with pSp's losses."""

    config_class = PSPRecipeConfig
    run_presets = {"tiny": {"checkpoint_every": 20, "sample_every": 20, "log_every": 5}}
    pipeline_network = "encoder"
    ema = False
    next_command = "vgz invert {pipeline} --data VIDEOS --out LATENTS/"

    def build(self, *, img_channels: int, c_dim: int) -> dict[str, nn.Module]:
        import vgz

        cfg = self.config
        if not cfg.generator:
            raise ValueError("the psp recipe trains an encoder for a StyleGAN2: pass --generator PATH (a stylegan2 "
                             "pipeline or run folder, or mapping/ and synthesis/ from vgz convert)")
        self.mapping, self.synthesis = load_generator(cfg.generator)
        res = self.synthesis.config.img_resolution
        if res != cfg.resolution:
            raise ValueError(f"the generator {cfg.generator} renders {res}x{res}, but the recipe's resolution is "
                             f"{cfg.resolution}: pass --resolution {res}")
        if img_channels != self.synthesis.config.img_channels:
            raise ValueError(f"the data has {img_channels} channels, the generator renders "
                             f"{self.synthesis.config.img_channels}")
        fields: dict[str, Any] = dict(input_nc=img_channels, input_size=cfg.input_size, w_dim=self.synthesis.w_dim,
                                      start_from_latent_avg=cfg.start_from_latent_avg)
        if cfg.encoder_type == "psp":
            fields["output_size"] = res
        encoder = vgz.create("encoder", cfg.encoder_type, preset=cfg.encoder_preset, **fields)
        if cfg.start_from_latent_avg:
            w_avg = self.mapping.w_avg.detach().float()
            encoder.latent_avg.copy_(w_avg.expand_as(encoder.latent_avg))
        if cfg.encoder_init:
            self._init_backbone(encoder, cfg.encoder_init)
        return {"encoder": encoder.train()}

    @staticmethod
    def _init_backbone(encoder: nn.Module, path: str) -> None:
        """pSp starts its encoder from ArcFace IR-SE50 (``strict=False``: the backbone's layers)."""
        from vgz.training.perceptual import _read_state

        state = _read_state(__import__("pathlib").Path(path), "ArcFace IR-SE50")
        own = encoder.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not any(v.ndim for v in usable.values()):  # BatchNorm's step counters always fit
            raise ValueError(f"{path}: none of its tensors fit the encoder's backbone (input_layer.*, body.*)")
        encoder.load_state_dict(usable, strict=False)

    def setup(self, trainer: Any) -> None:
        cfg = self.config
        self.mapping.to(trainer.device)
        self.synthesis.to(trainer.device)
        self.lpips = None
        if cfg.lpips_lambda > 0:
            from vgz.training.perceptual import load_lpips

            self.lpips = load_lpips(cfg.lpips_net, cfg.lpips_backbone,
                                    random_backbone=cfg.lpips_random_backbone).to(trainer.device)
        self.arcface = None
        if cfg.id_lambda > 0:
            from vgz.training.perceptual import load_arcface

            self.arcface = load_arcface(cfg.id_weights).to(trainer.device)
        # Fixed frames for the sample grids: the first frame of the first videos.
        ds = trainer.dataset
        count = min(ds.num_videos, len(trainer.run.sample_seeds) or 1)
        self.sample_frames = torch.stack([ds.read_frames(i, [0]) for i in range(count)])  # [B, 1, C, H, W] uint8

    def optimizer(self, network: str, params: Any) -> torch.optim.Optimizer:
        cfg = self.config
        if cfg.optim_name == "ranger":
            return Ranger(params, lr=cfg.learning_rate)
        return torch.optim.Adam(params, lr=cfg.learning_rate)

    def phases(self) -> list[Phase]:
        return [Phase("Emain", "encoder", 1, self.loss_step)]

    # ----------------------------------------------------------------------------- the loss

    def _encoder_input(self, images: torch.Tensor) -> torch.Tensor:
        size = self.config.input_size
        if images.shape[-1] == size and images.shape[-2] == size:
            return images
        return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

    @staticmethod
    def _face_pool(images: torch.Tensor) -> torch.Tensor:
        """pSp's ``face_pool``: every loss sees 256x256 images (averaged down, or repeated up)."""
        return images if images.shape[-2:] == (256, 256) else F.adaptive_avg_pool2d(images, (256, 256))

    def loss_step(self, ctx: Any) -> torch.Tensor:
        cfg = self.config
        y = rearrange(ctx.real["frames"], "b 1 c h w -> b c h w")
        codes = ctx.nets["encoder"](self._encoder_input(y))
        ws = codes.unsqueeze(1).expand(-1, self.synthesis.num_ws, -1) if codes.ndim == 2 else codes
        y_hat = self.synthesis(ws, noise_mode="random")
        if y.shape[-1] > 256:  # below 256 the repeated pixels of face_pool leave the MSE as it is
            y_hat, y = self._face_pool(y_hat), self._face_pool(y)
        total = y_hat.new_zeros([])
        if cfg.l2_lambda > 0:
            l2 = F.mse_loss(y_hat, y)
            ctx.log("loss/l2", l2)
            total = total + cfg.l2_lambda * l2
        if self.lpips is not None:
            lp = self.lpips(self._face_pool(y_hat), self._face_pool(y)).mean()
            ctx.log("loss/lpips", lp)
            total = total + cfg.lpips_lambda * lp
        if self.arcface is not None:
            ident = identity_loss(self.arcface, self._face_pool(y_hat), self._face_pool(y))
            ctx.log("loss/id", ident)
            total = total + cfg.id_lambda * ident
        if cfg.w_norm_lambda > 0:
            offsets = codes - ctx.nets["encoder"].latent_avg if cfg.start_from_latent_avg else codes
            w_norm = offsets.flatten(1).norm(dim=1).mean()
            ctx.log("loss/w_norm", w_norm)
            total = total + cfg.w_norm_lambda * w_norm
        ctx.log("loss/total", total)
        return total

    # ----------------------------------------------------------------------------- results

    def make_pipeline(self, net: nn.Module) -> Any:
        from vgz.pipelines.psp import PSPPipeline

        return PSPPipeline(encoder=net, synthesis=self.synthesis, mapping=self.mapping)

    def sample(self, pipeline: Any, seeds: list[int], num_frames: int) -> torch.Tensor:
        """Each sample frame beside its reconstruction: ``[2B, 1, C, H, W]`` in [0, 1]."""
        real = self.sample_frames.to(pipeline.device).float() / 255
        recon = pipeline(real).frames
        return rearrange(torch.stack([real, recon], dim=1), "b two t c h w -> (b two) t c h w")
