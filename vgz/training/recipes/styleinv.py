"""The ``styleinv`` recipe: StyleInV's temporal style and modulated encoder, trained against a frozen StyleGAN2.

    vgz train --recipe stylegan2 --data videos/ ...                          # 1. the image generator
    vgz train --recipe psp --generator runs/g/pipeline --encoder-type psp-w  # 2. its pSp W encoder
    vgz train --recipe styleinv --encoder runs/psp/pipeline --data videos/   # 3. StyleInV

As johannwyh/StyleInV's ``training_loop_styleinv.py`` trains it: the generator ``G`` (frozen
mapping + synthesis, loaded from ``--generator``, or from the pSp pipeline given as ``--encoder``)
renders ``x0 = G(w0)`` (random noise) for ``w0 = mapping(z)``; the trained network (the official
``SI``: :class:`~vgz.generators.styleinv.TemporalStyle` + :class:`~vgz.encoders.styleinv.ModulatedEncoder`,
the encoder's backbone and head initialised from the pSp W encoder) gives ``w_t = w0 + Enc(x0, s_t)``
for 4 times (0 and three sparse ones; :class:`~vgz.data.sampling.ClipSamplingConfig` preset
``styleinv``), and ``G(w_t)`` (constant noise) makes the clip. StyleGAN-V's discriminator sees it with
frame 0 replaced by ``x0``. Losses::

    SI: lambda_adv * softplus(-D(fake)) + lambda_recon * MSE(G(w_0), x0) + lambda_wreg * |w_t - w0|
    D:  softplus(D(fake)) + softplus(-D(real)),  lazy R1 (gamma 1, every 16 steps, summed over the
        clip's frames: 4x StyleGAN-V's per-frame mean)

Adam, lr 1e-4 for SI and 2e-3 for D (the latter with the lazy-regularization correction), betas
(0, 0.99); an EMA of SI with a half-life of 20k clips and no ramp-up; ADA (bgc, target 0.6) except
for ffs; kimg counted in frames (4 per clip), as the official loop counts them.

Where the official code differs from its configs, vgz does what the code does: the sampler ignores
``total_dists`` (gaps are uniform over 2..31 for max_dist 32, 2..126 for 128: ``range`` leaves out the
upper bound), and ffs.yaml/taichi.yaml lack ``encoder_opts`` keys that the code reads (dfuf.yaml's
values, which these presets use: lr multiplier 1, no modulation layers, no PCA). The encoder's
BatchNorm layers train on the batch's first frames once per clip rather than once per frame (the
same normalisation; running statistics differ by the unbiased-variance factor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from vgz.configs import config_field
from vgz.registry import register
from vgz.training.recipes.gan import GANRecipe, GANRecipeConfig
from vgz.training.recipes.psp import load_generator

__all__ = ["StyleInVGenerator", "StyleInVRecipeConfig", "StyleInVRecipe", "load_psp_encoder"]


class StyleInVGenerator(nn.Module):
    """The trained part (the official ``SI``): ``(t [B, T], w0 [B, w_dim], x0 [B, C, H, W]) -> w_t [B, T, w_dim]``.

    Motion noise is drawn afresh for every call (training never reuses it).
    """

    def __init__(self, motion: nn.Module, encoder: nn.Module):
        super().__init__()
        self.motion, self.encoder = motion, encoder

    def forward(self, t: torch.Tensor, w0: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return self.encoder(x0, self.motion(t.float(), w0)) + w0.unsqueeze(1)


def load_psp_encoder(ref: str) -> tuple[nn.Module, Any]:
    """``(pSp W encoder, its pipeline or None)`` from a ``psp`` pipeline (folder, run folder or Hub id)
    or an ``encoder/psp-w`` component folder."""
    from pathlib import Path

    import vgz
    from vgz.hub import model_folder
    from vgz.pipelines.base import VideoPipeline

    folder = Path(ref).expanduser()
    pipe = None
    resolved = model_folder(folder) if folder.is_dir() else None  # a run folder: its pipeline/
    if resolved is not None and not (resolved / "model_index.json").is_file():
        encoder = vgz.load_component(resolved)
    else:
        pipe = VideoPipeline.from_pretrained(resolved or ref)
        encoder = getattr(pipe, "encoder", None)
        if encoder is None:
            raise ValueError(f"{ref}: a {type(pipe).__name__} holds no encoder; pass the pSp W encoder's pipeline "
                             "(vgz train --recipe psp --encoder-type psp-w)")
    if encoder.registry_key() != ("encoder", "psp-w"):
        raise ValueError(f"{ref}: StyleInV starts from a pSp W encoder (encoder/psp-w), found "
                         f"{'/'.join(encoder.registry_key())}; train one with vgz train --recipe psp --encoder-type psp-w")
    return encoder.eval().requires_grad_(False), pipe


@dataclass
class StyleInVRecipeConfig(GANRecipeConfig):
    """StyleInV's training settings (``configs/*.yaml`` and ``train_styleinv.py`` names where they exist)."""

    generator: str = config_field("", help="the frozen StyleGAN2: a stylegan2 or psp pipeline, run folder, a folder "
                                           "of mapping/ and synthesis/, or a Hub id (default: the --encoder pipeline's)")
    encoder: str = config_field("", help="the pSp W encoder to start from: a psp pipeline (vgz train --recipe psp "
                                         "--encoder-type psp-w), run folder or Hub id, or an encoder/psp-w folder")
    # temporal style (styleinv.mapping_opts)
    motion_z_dim: int = config_field(512, min=1)
    motion_v_dim: int = config_field(512, min=1)
    motion_z_distance: float = config_field(16.0, min=1e-6)
    motion_kernel_size: int = config_field(11, min=1)
    time_enc_dim: int = config_field(256, min=1)
    min_period_len: float = config_field(16.0, min=1e-6)
    max_period_len: float = config_field(128.0, min=1e-6)
    mapping_lr_multiplier: float = config_field(0.01, min=1e-8, help="lr multiplier of the fusion layers")
    # encoder (styleinv.encoder_opts)
    adain_mode: str = config_field("block", help="block or bottleneck")
    normalize_adain: bool = True
    encoder_lr_multiplier: float = config_field(1.0, min=1e-8)
    # losses (loss_kwargs.lambdas) and optimisation
    lambda_adv: float = config_field(1.0, min=0)
    lambda_recon: float = config_field(10.0, min=0, help="first-frame image reconstruction (MSE)")
    lambda_wreg: float = config_field(0.05, min=0, help="|w_t - w0| regularisation")
    lr_si: float = config_field(1e-4, min=0, help="Adam lr of SI (lrSI)")
    noise_mode: str = config_field("const", help="per-pixel noise of the frames (x0 always uses random noise)")
    # official values of the StyleGAN family's settings (train_styleinv.py, cfg 4c256; configs/ffs.yaml)
    resolution: int = config_field(256, min=16, max=2048, help="training resolution (the generator's)")
    num_frames: int = config_field(4, min=2, help="frames per clip: frame 0 and 3 sparse ones")
    max_dist: int = config_field(32, min=1, help="largest gap between the sparse frames' first and last")
    max_num_frames: int = config_field(128, min=2, help="clips come from windows this long (the official nframes)")
    fps: float = config_field(30.0, min=1e-3, help="frame rate of the training videos (for the pipeline)")
    batch_size: int = config_field(32, min=1, help="clips per step over all processes")
    lr: float = config_field(0.002, min=0, help="Adam lr of D (lrD)")
    r1_gamma: Optional[float] = config_field(1.0, min=0)
    ema_kimg: Optional[float] = config_field(20.0, min=0, help="EMA half-life in thousands of clips")
    ema_rampup: Optional[float] = config_field(None, min=0)
    augment: Literal["ada", "fixed", "noaug"] = "noaug"
    mbstd_group_size: int = config_field(8, min=1)

    presets = {
        # configs/ffs.yaml (FaceForensics, 30 fps): no augmentation, gaps up to 32 frames, a motion code
        # every 16 frames, periods 16..128; train_styleinv.py cfg 4c256: batch 32, EMA 20 kimg, no ramp-up.
        "paper": {},
        "ffs": {},
        # configs/dfuf.yaml (DeeperForensics/UTKFace faces): ffs with ADA.
        "dfuf": {"augment": "ada"},
        # configs/sky.yaml (SkyTimelapse, 25 fps): ADA, gaps up to 128, a code every 128 frames, periods
        # 32..1024, no per-pixel noise.
        "sky": {"augment": "ada", "max_dist": 128, "motion_z_distance": 128.0, "min_period_len": 32.0,
                "max_period_len": 1024.0, "noise_mode": "none", "fps": 25.0},
        # configs/taichi.yaml (TaiChi-HD, 25 fps): sky's motion with noise, a weaker adversarial loss
        # (0.1) and no w regularisation.
        "taichi": {"augment": "ada", "max_dist": 128, "motion_z_distance": 128.0, "min_period_len": 32.0,
                   "max_period_len": 1024.0, "lambda_adv": 0.1, "lambda_wreg": 0.0, "fps": 25.0},
        "tiny": {"resolution": 32, "total_kimg": 0.64, "batch_size": 4, "channel_base": 512, "channel_max": 32,
                 "num_fp16_res": 0, "conv_clamp": None, "mbstd_group_size": 2, "max_num_frames": 32, "max_dist": 8,
                 "motion_z_dim": 8, "motion_v_dim": 8, "motion_z_distance": 4.0, "motion_kernel_size": 3,
                 "time_enc_dim": 6, "min_period_len": 4.0, "max_period_len": 32.0, "lr_si": 1e-3},
    }

    def check(self) -> None:
        super().check()
        if self.adain_mode not in ("block", "bottleneck"):
            self.fail("adain_mode", "block or bottleneck")
        if self.noise_mode not in ("const", "random", "none"):
            self.fail("noise_mode", "const, random or none")
        if self.num_frames < 2:
            self.fail("num_frames", "at least 2 (frame 0 and the frames it moves to)")


@register("recipe", "styleinv")
class StyleInVRecipe(GANRecipe):
    """StyleInV: a temporal style and a modulated inversion encoder animate a frozen StyleGAN2."""

    config_class = StyleInVRecipeConfig
    run_presets = {"tiny": {"checkpoint_every": 20, "sample_every": 20, "log_every": 5, "sample_frames": 16}}
    fractional_t = True  # official g_sampling.use_fractional_t
    r1_frames = "sum"  # loss_styleinv.py sums the squared gradients over the clip's [b, (t c), h, w] frames

    def sampling(self) -> Any:
        from vgz.data.sampling import ClipSamplingConfig

        cfg = self.config
        return ClipSamplingConfig.from_preset("styleinv", num_frames=cfg.num_frames, max_dist=cfg.max_dist,
                                              max_num_frames=cfg.max_num_frames, min_len=cfg.max_num_frames)

    def build(self, *, img_channels: int, c_dim: int) -> dict[str, nn.Module]:
        from vgz.discriminators.styleganv import StyleGANVDiscriminator, StyleGANVDiscriminatorConfig
        from vgz.encoders.styleinv import ModulatedEncoder, ModulatedEncoderConfig
        from vgz.generators.styleinv import TemporalStyle, TemporalStyleConfig

        cfg = self.config
        if not cfg.encoder:
            raise ValueError("the styleinv recipe starts from a pSp W encoder: pass --encoder PATH (a psp pipeline "
                             "from vgz train --recipe psp --encoder-type psp-w, or its run folder)")
        self.psp_encoder, psp_pipe = load_psp_encoder(cfg.encoder)
        if cfg.generator:
            self.mapping, self.synthesis = load_generator(cfg.generator)
        elif psp_pipe is not None and getattr(psp_pipe, "mapping", None) is not None:
            self.mapping = psp_pipe.mapping.eval().requires_grad_(False)
            self.synthesis = psp_pipe.synthesis.eval().requires_grad_(False)
        else:
            raise ValueError(f"{cfg.encoder} carries no StyleGAN2 mapping network: pass --generator PATH too")
        s = self.synthesis.config
        if s.img_resolution != cfg.resolution:
            raise ValueError(f"the generator renders {s.img_resolution}x{s.img_resolution}, but the recipe's "
                             f"resolution is {cfg.resolution}: pass --resolution {s.img_resolution}")
        if img_channels != s.img_channels:
            raise ValueError(f"the data has {img_channels} channels, the generator renders {s.img_channels}")
        if c_dim:
            raise ValueError("StyleInV animates an unconditional generator; the data has labels (use unlabelled data)")
        psp = self.psp_encoder.config
        motion = TemporalStyle(TemporalStyleConfig(
            w_dim=s.w_dim, content_dim=s.w_dim, lr_multiplier=cfg.mapping_lr_multiplier, z_dim=cfg.motion_z_dim,
            v_dim=cfg.motion_v_dim, kernel_size=cfg.motion_kernel_size, motion_z_distance=cfg.motion_z_distance,
            time_enc_dim=cfg.time_enc_dim, min_period_len=cfg.min_period_len, max_period_len=cfg.max_period_len,
            max_num_frames=cfg.max_num_frames))
        encoder = ModulatedEncoder(ModulatedEncoderConfig(
            mode=psp.mode, units=psp.units, widths=psp.widths, se_reduction=psp.se_reduction, input_nc=img_channels,
            input_size=s.img_resolution, w_dim=s.w_dim, style_dim=s.w_dim, adain_mode=cfg.adain_mode,
            normalize_adain=cfg.normalize_adain, lr_multiplier=cfg.encoder_lr_multiplier))
        encoder.load_psp_encoder(self.psp_encoder.state_dict())
        encoder.channels_last = False  # weights must not change layout once DDP has bucketed their gradients
        D = StyleGANVDiscriminator(StyleGANVDiscriminatorConfig(
            c_dim=0, img_resolution=cfg.resolution, img_channels=img_channels, channel_base=cfg.channels,
            channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp,
            mbstd_group_size=cfg.mbstd_group_size, mapping_num_layers=2, num_frames=cfg.num_frames,
            max_num_frames=cfg.max_num_frames, concat_res=16 if cfg.resolution >= 32 else cfg.resolution // 2))
        return {"G": StyleInVGenerator(motion, encoder).train(), "D": D.train()}

    def setup(self, trainer: Any) -> None:
        super().setup(trainer)
        for net in (self.mapping, self.synthesis, self.psp_encoder):
            net.to(trainer.device)

    @property
    def z_dim(self) -> int:
        return self.mapping.config.z_dim  # the frozen generator's

    def optimizer(self, network: str, params: Any) -> torch.optim.Optimizer:
        cfg = self.config
        if network == "G":  # no G regularisation phase: plain Adam
            return torch.optim.Adam(params, lr=cfg.lr_si, betas=tuple(cfg.betas), eps=cfg.eps)
        return super().optimizer(network, params)

    def phases(self) -> list:
        phases = super().phases()  # Gmain (replaced below), Dmain, Dreg; pl_weight is 0
        from vgz.training.recipes.base import Phase

        return [Phase("Gmain", "G", 1, self.g_main) if p.name == "Gmain" else p for p in phases]

    def derived(self) -> dict[str, Any]:
        return {"r1_gamma": self.config.r1_gamma_value(), "ema_kimg": self.config.ema_kimg_value(),
                "sampling": self.sampling().to_dict()}

    # ----------------------------------------------------------------------------- one step

    def generate(self, G: nn.Module, gen: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One generated batch: ``w0``, ``x0 [B, C, H, W]``, ``w_t [B, T, w_dim]`` and frames ``G(w_t)`` ``[B, T, C, H, W]``."""
        with torch.no_grad():
            ws = self.mapping(gen["z"], None, skip_w_avg_update=True)
            x0 = self.synthesis(ws, noise_mode="random")
        w0 = ws[:, 0]
        w_t = G(gen["t"], w0, x0)
        flat = repeat(w_t, "b t d -> (b t) n d", n=self.synthesis.num_ws)
        frames = rearrange(self.synthesis(flat, noise_mode=self.config.noise_mode), "(b t) c h w -> b t c h w",
                           t=w_t.shape[1])
        return {"w0": w0, "x0": x0, "w_t": w_t, "frames": frames}

    def run_G(self, G: nn.Module, gen: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The clip D sees (frame 0 replaced by ``x0``, official ``input_skip_to_D='replace'``) and ``w_t``."""
        out = self.generate(G, gen)
        return torch.cat([out["x0"].unsqueeze(1), out["frames"][:, 1:]], dim=1), out["w_t"]

    def run_D(self, D: nn.Module, frames: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return D(frames, None, t)

    def g_main(self, ctx: Any) -> torch.Tensor:
        cfg = self.config
        out = self.generate(ctx.G, ctx.gen)
        clip = torch.cat([out["x0"].unsqueeze(1), out["frames"][:, 1:]], dim=1)
        logits = self.run_D(ctx.D, ctx.augment(clip), ctx.gen["c"], ctx.gen["t"]).reshape(-1)
        ctx.log("scores/fake", logits)
        adv = F.softplus(-logits).mean()
        recon = F.mse_loss(out["frames"][:, 0], out["x0"])
        wreg = (out["w_t"] - out["w0"].unsqueeze(1)).norm(dim=2).mean()
        for name, value in (("loss/G/adv", adv), ("loss/G/recon", recon), ("loss/G/wreg", wreg)):
            ctx.log(name, value)
        total = cfg.lambda_adv * adv + cfg.lambda_recon * recon + cfg.lambda_wreg * wreg
        ctx.log("loss/G", total)
        return total

    # ----------------------------------------------------------------------------- results

    def make_pipeline(self, G: nn.Module) -> Any:
        from vgz.pipelines.styleinv import StyleInVPipeline, StyleInVPipelineConfig

        return StyleInVPipeline(StyleInVPipelineConfig(fps=self.config.fps), mapping=self.mapping,
                                synthesis=self.synthesis, motion=G.motion, encoder=G.encoder,
                                inversion_encoder=self.psp_encoder)
