"""The StyleGAN family's recipe base: a generator and a discriminator, ADA, lazy R1 and path length.

The non-saturating GAN of StyleGAN2-ADA as the official training loops run it: phases ``Gmain``,
``Greg`` (path length, every ``g_reg_interval`` steps, when ``pl_weight`` > 0), ``Dmain``, ``Dreg``
(R1 every ``d_reg_interval``), each loss of :class:`~vgz.training.losses.StyleGAN2Loss`; Adam with
the lazy-regularization correction; an EMA generator with the official half-life; ADA, whose
probability follows the sign of D on real clips. Subclasses say how G and D are built and run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

import numpy as np
import torch
from torch import nn

from vgz.configs import config_field
from vgz.training.recipes.base import Phase, Recipe, RecipeConfig

__all__ = ["GANRecipeConfig", "GANRecipe", "style_mix"]


@dataclass
class GANRecipeConfig(RecipeConfig):
    """Hyper-parameters shared by the StyleGAN-family recipes (official names where they exist)."""

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
        super().check()
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


class GANRecipe(Recipe):
    """A StyleGAN-family GAN: networks ``G`` and ``D``; subclasses implement :meth:`build`, :meth:`run_D`
    (and :meth:`run_G` when G is not called as ``G(z, c, t)``) and :meth:`make_pipeline`."""

    config_class = GANRecipeConfig
    #: how a clip's R1 penalty combines its frames: "mean" (StyleGAN-V) or "sum" (StyleInV)
    r1_frames: ClassVar[str] = "mean"

    def setup(self, trainer: Any) -> None:
        cfg = self.config
        self.augment_pipe = None
        if cfg.augment != "noaug":
            from vgz.training.augment import AugmentConfig, AugmentPipe

            self.augment_pipe = AugmentPipe(AugmentConfig.from_preset(cfg.augpipe)).to(trainer.device)
            self.augment_pipe.p.fill_(cfg.augment_p)
        self._ada_signs = torch.zeros(2, device=trainer.device)  # sum of sign(D(real)), count

    @property
    def z_dim(self) -> int:
        """Size of the latents :meth:`phase_inputs` draws (the config's, unless G comes from elsewhere)."""
        return self.config.z_dim

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
        self.loss = StyleGAN2Loss(self.run_G, self.run_D, r1_gamma=cfg.r1_gamma_value(), pl_weight=cfg.pl_weight,
                                  r1_frames=self.r1_frames)
        phases = [Phase("Gmain", "G", 1, self.loss.g_main)]
        if cfg.pl_weight > 0:
            phases.append(Phase("Greg", "G", cfg.g_reg_interval, self.loss.g_pl))
        phases.append(Phase("Dmain", "D", 1, self.loss.d_main))
        if self.loss.r1_gamma > 0:
            phases.append(Phase("Dreg", "D", cfg.d_reg_interval, self.loss.d_r1))
        return phases

    def optimizer(self, network: str, params: Any) -> torch.optim.Optimizer:
        """Adam with the lazy-regularization correction of lr and betas (official)."""
        cfg = self.config
        interval = cfg.g_reg_interval if network == "G" else cfg.d_reg_interval
        ratio = interval / (interval + 1)
        return torch.optim.Adam(params, lr=cfg.lr * ratio, betas=tuple(b ** ratio for b in cfg.betas), eps=cfg.eps)

    def derived(self) -> dict[str, Any]:
        return {"r1_gamma": self.config.r1_gamma_value(), "ema_kimg": self.config.ema_kimg_value()}

    # ----------------------------------------------------------------------------- one step

    def phase_inputs(self, trainer: Any, n: int) -> dict[str, torch.Tensor]:
        """Latents, labels and frame times of ``n`` generated clips (labels and lengths of random videos)."""
        from vgz.data.sampling import sample_frame_indices

        ds, cfg = trainer.dataset, self.config
        idx = trainer.np_rng.integers(len(ds), size=n)
        c = np.stack([ds.get_label(int(i)) for i in idx]).astype(np.float32).reshape(n, -1)
        sampling = self.sampling()
        t = np.stack([sample_frame_indices(min(ds.get_video_len(int(i)), cfg.max_num_frames), sampling, trainer.np_rng,
                                           fractional=self.fractional_t) for i in idx])
        z = torch.randn([n, self.z_dim], generator=trainer.z_gen)
        return {"z": z.to(trainer.device), "c": torch.from_numpy(c).to(trainer.device),
                "t": torch.from_numpy(t).to(trainer.device)}

    def augment(self, frames: torch.Tensor) -> torch.Tensor:
        return self.augment_pipe(frames) if self.augment_pipe is not None else frames

    def ema_beta(self, nimg: int) -> float:
        cfg = self.config
        ema_nimg = cfg.ema_kimg_value() * 1000
        if cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, nimg * cfg.ema_rampup)
        return 0.5 ** (cfg.batch_size / max(ema_nimg, 1e-8))

    def end_step(self, trainer: Any) -> None:
        """ADA: every ``ada_interval`` steps, move p by the sign of the mean sign of D on real clips
        (all processes) against ``ada_target``."""
        cfg = self.config
        if "signs/real" in trainer.stats:
            signs = torch.cat(trainer.stats.pop("signs/real"))
            self._ada_signs += torch.stack([signs.sum(), torch.tensor(float(signs.numel()), device=signs.device)])
        if cfg.augment != "ada" or self.augment_pipe is None or trainer.step % cfg.ada_interval:
            return
        total = trainer.accelerator.reduce(self._ada_signs.clone(), reduction="sum")
        self._ada_signs.zero_()
        if total[1] > 0:
            adjust = torch.sign(total[0] / total[1] - cfg.ada_target) * (cfg.batch_size * cfg.ada_interval) / (
                cfg.ada_kimg * 1000)
            self.augment_pipe.p.copy_((self.augment_pipe.p + adjust).clamp(min=0))

    # ----------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {"augment_p": float(self.augment_pipe.p) if self.augment_pipe is not None else None,
                **super().state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.augment_pipe is not None and state.get("augment_p") is not None:
            self.augment_pipe.p.fill_(state["augment_p"])
        super().load_state_dict(state)

    def rank_state(self) -> dict[str, Any]:
        return {"ada_signs": self._ada_signs.tolist()}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        self._ada_signs = torch.tensor(state["ada_signs"], device=self._ada_signs.device, dtype=torch.float32)

    def log_values(self) -> dict[str, float]:
        return {"augment/p": float(self.augment_pipe.p) if self.augment_pipe is not None else 0.0}


def style_mix(mapping: nn.Module, z: torch.Tensor, c: torch.Tensor | None, ws: torch.Tensor,
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
