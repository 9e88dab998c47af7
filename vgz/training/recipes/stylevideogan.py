"""The ``stylevideogan`` recipe: StyleVideoGAN's motion generator, trained in W+ against a temporal critic.

    vgz train --recipe psp --generator runs/g/pipeline --data footage/            # 1. pSp for the StyleGAN2
    vgz invert runs/psp/pipeline --data footage/ --out latents/                   # 2. embed every frame once
    vgz train --recipe stylevideogan --data latents/                              # 3. StyleVideoGAN

As the paper (Fox et al. 2021, Sec. 3) trains it, with no frame rendered: real data are windows of
``num_frames`` (25) consecutive W+ latents of the footage; the generator
(:class:`~vgz.generators.stylevideogan.MotionGenerator`) makes W+ sequences from ``i`` and step noise
``s``; the critic (:class:`~vgz.discriminators.stylevideogan.Critic`) scores windows. Losses::

    C: C(fake) - C(real) + lambda_gp * (||grad C(x_hat)|| - 1)^2        every step (WGAN-GP, lambda 50)
    G: -C(fake) + lambda_gap * max(0, pi/4 - phi)^2                    every n_critic steps (GAP, lambda 100)

Adam for both, an EMA of G with momentum 0.995 per generator update, 350 epochs. The frozen StyleGAN2
(``--generator``; by default the pipeline that wrote the latents, from ``latents.json``) only renders
the periodic samples and goes into the exported pipeline, with the pSp encoder (for new subjects) and
the training subject's PCA (fitted to every training latent before the first step, for the offset trick).

The paper leaves the optimiser's settings open; vgz takes WGAN-GP's (Gulrajani et al.): lr 1e-4, betas
(0, 0.9), 5 critic steps per generator step, batch 64. An epoch is as many steps as the critic needs to
see every window once (stride 1: ``sum(len - window + 1)`` windows over ``batch_size``); windows are
drawn at random (the video uniformly, then the position), so an epoch covers them in expectation. The
GAP's running statistics are buffers of the trained network (checkpointed, and per process under DDP).
The paper does not say how G starts; vgz starts its affine maps on the subject (``init_at_subject``,
:meth:`~vgz.generators.stylevideogan.MotionGenerator.start_at_subject`): the first trajectories lie in
the subject's PCA subspace with its spread, rather than around W+ = 0; and the top GRU cell's update
gate starts mostly closed (``memory_gate_bias``), so that ``l_0 = i`` fades over the steps. The GAP
can be taken lazily (``gap_interval``, vgz's; default 1, the paper's): on every ``gap_interval``-th
generator update, weighted as many times, as StyleGAN2 takes R1; its Jacobians are most of a
generator update.

Logged beside the losses: ``scores/real`` and ``scores/fake``, and with each generator update
``scores/real_still``, the critic's score on the real windows held still (every step replaced by the
window's middle one). Near ``scores/real``, the critic judges frames and not their motion, and the
generator is free to make still videos. On the built-in's 400-frame subject, six runs at 1000-3500
steps scored still windows within 3 of real ones, or above them, while generated ones lay 60-110 below;
in the longest (3500 steps) the trajectories froze after a few frames (0.1-0.2 W+ units a step, the
subject's 1.1). ``still_negatives`` (vgz's; default 0, the paper's) tries negative data augmentation
(Sinha et al. 2021): that share of the critic's fake windows are real windows held still, so that the
critic is taught stillness as fake. On that subject it was not enough: with 0.25 and 0.5, after 1000-2000
steps, the critic still scored real windows held still, reversed or shuffled in time within a few points
of real ones (the paper's critic sees frames, not their order), and the trajectories jittered (4-9 units a
step) instead of freezing. The gradient penalty's weight decided it: a critic trained alone on the subject's
real windows against the same windows held still or shuffled learnt to tell them apart (on the windows it
trained on) with ``lambda_gp`` 10, WGAN-GP's own, at learning rates 1e-4 and 3e-4 (not at 1e-3), and with
the paper's 50 at none of them. The built-in model
(``vgz/assets/stylevideogan-shapes64``) took ``lambda_gp`` 10, learning rates 3e-4 and ``still_negatives``
0.25: after 2000 steps its trajectories moved 1.5-2.0 units a step, though its critic still scored still
windows above real ones (its card).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from vgz.configs import config_field
from vgz.registry import register
from vgz.training.recipes.base import Phase, Recipe, RecipeConfig

__all__ = ["StyleVideoGANGenerator", "StyleVideoGANRecipeConfig", "StyleVideoGANRecipe"]


class StyleVideoGANGenerator(nn.Module):
    """The trained generator: the motion generator and the gradient angle penalty's running statistics.

    ``forward(i [B, z_dim], s [B, T - 1, z_dim]) -> (ws [B, T, num_ws, w_dim], l [B, T, z_dim])``.
    """

    def __init__(self, motion: nn.Module, gap_momentum: float = 0.01):
        super().__init__()
        from vgz.training.wgan import GradientAnglePenalty

        self.motion = motion
        self.gap = GradientAnglePenalty(motion.config.z_dim, momentum=gap_momentum)

    def forward(self, i: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        l, _ = self.motion.codes(i, s)
        return self.motion.to_ws(l), l


@dataclass
class StyleVideoGANRecipeConfig(RecipeConfig):
    """StyleVideoGAN's training settings (the paper's where it gives them; see the module docstring)."""

    generator: str = config_field("", help="the frozen StyleGAN2 (a stylegan2 or psp pipeline, run folder, folder of "
                                           "mapping/ and synthesis/, or Hub id); default: the pipeline that wrote the "
                                           "latents (latents.json)")
    encoder: str = config_field("", help="the pSp encoder for new subjects in the exported pipeline (a psp pipeline or "
                                         "run folder); default: the latents' pipeline's, when it is a psp pipeline")
    resolution: Optional[int] = config_field(None, min=16, max=2048, help="the generator's resolution (default: "
                                                                          "from latents.json)")
    total_kimg: Optional[float] = config_field(None, min=0, help="training length in thousands of latent frames; "
                                                                 "None: epochs")
    epochs: float = config_field(350.0, min=0, help="training length in epochs over all windows (paper: 350)")
    num_frames: int = config_field(25, min=2, help="the window: consecutive W+ steps per sequence (paper: 25)")
    max_dist: int = config_field(24, min=1, help="(unused: windows are num_frames consecutive steps)")
    max_num_frames: int = config_field(2**31 - 1, min=2, help="(unused: every window of a video is drawn)")
    xflip: bool = config_field(False, help="(latents cannot be mirrored)")
    fps: float = config_field(25.0, min=1e-3, help="frame rate of the footage (one step per frame)")
    batch_size: int = config_field(64, min=1, help="sequences per step over all processes")
    # motion generator (MotionGeneratorConfig)
    z_dim: int = config_field(32, min=1, help="size of i, s_k and l_k (paper: 32)")
    hidden_dim: int = config_field(256, min=1)
    h_layers: int = config_field(2, min=1)
    t_layers: int = config_field(4, min=1)
    g_lr_multiplier: float = config_field(1.0, min=1e-8, help="lr multiplier of H's and T's layers")
    pca_components: int = config_field(32, min=1, help="PCA components of the subject (paper: 32)")
    memory_gate_bias: float = config_field(3.0, help="init bias of the top GRU cell's update gate (vgz; 0: PyTorch's)")
    init_at_subject: bool = config_field(True, help="start G on the subject: affine maps into its PCA "
                                                    "subspace with its spread (vgz; False: random)")
    # critic (CriticConfig)
    e_layers: int = config_field(6, min=1)
    e_hidden: int = config_field(512, min=1)
    feature_dim: int = config_field(32, min=1)
    critic_channels: tuple[int, ...] = (64, 128, 256)
    # losses and optimisation
    lambda_gp: float = config_field(50.0, min=0, help="gradient penalty weight (paper: 50)")
    lambda_gap: float = config_field(100.0, min=0, help="gradient angle penalty weight (paper: 100; 0 = off)")
    gap_momentum: float = config_field(0.01, min=0, max=1, help="momentum of the GAP's running statistics")
    gap_interval: int = config_field(1, min=1, help="GAP on every this many generator updates, weighted as many "
                                                    "times (lazy regularization, vgz; paper: 1)")
    still_negatives: float = config_field(0.0, min=0, max=1, help="share of the critic's fake windows that are real "
                                                                  "windows held still (negative data augmentation, "
                                                                  "vgz; paper: 0)")
    lr_g: float = config_field(1e-4, min=0)
    lr_d: float = config_field(1e-4, min=0)
    betas: tuple[float, float] = (0.0, 0.9)
    n_critic: int = config_field(5, min=1, help="critic steps per generator step")
    ema_momentum: float = config_field(0.995, min=0, max=1, help="EMA of G per generator update (paper: 0.995)")

    presets = {
        "paper": {},
        "tiny": {"num_frames": 9, "batch_size": 8, "epochs": 20.0, "z_dim": 8, "hidden_dim": 16,
                 "t_layers": 2, "e_layers": 3, "e_hidden": 32, "feature_dim": 8, "critic_channels": (16, 32),
                 "n_critic": 2, "lr_g": 1e-3, "lr_d": 1e-3},
    }

    def check(self) -> None:
        if self.resolution is not None and self.resolution & (self.resolution - 1):
            self.fail("resolution", "a power of two between 16 and 2048")


@register("recipe", "stylevideogan")
class StyleVideoGANRecipe(Recipe):
    """StyleVideoGAN: a GRU motion generator in W+ of a frozen StyleGAN2, trained on embedded footage."""

    config_class = StyleVideoGANRecipeConfig
    run_presets = {"tiny": {"checkpoint_every": 20, "sample_every": 20, "log_every": 5, "sample_frames": 16,
                            "sample_seeds": (0, 1, 2, 3)}}
    pipeline_network = "G"

    def sampling(self) -> Any:
        from vgz.data.latents import consecutive_sampling

        return consecutive_sampling(self.config.num_frames)

    def check_data(self, spec: str) -> None:
        from vgz.data.base import DatasetError
        from vgz.data.latents import is_latent_folder

        if not is_latent_folder(spec):
            raise DatasetError(f"{spec}: the stylevideogan recipe trains on W+ latents; --data must be a latent folder "
                               "written by vgz invert (vgz invert PSP_PIPELINE --data VIDEOS --out LATENTS/), with "
                               "its latents.json")

    def use_dataset(self, dataset: Any) -> None:
        self.check_data(dataset.config.path)
        self.dataset = dataset

    def windows(self, dataset: Any) -> int:
        """Windows of ``num_frames`` consecutive steps in ``dataset`` (stride 1)."""
        return sum(length - self.config.num_frames + 1 for length in dataset.video_lengths)

    def default_steps(self, dataset: Any | None) -> int | None:
        cfg = self.config
        if cfg.total_kimg is not None:
            return math.ceil(cfg.total_kimg * 1000 / (cfg.batch_size * cfg.num_frames))
        if dataset is None:
            return None  # epochs of a dataset not yet opened
        return math.ceil(cfg.epochs * math.ceil(self.windows(dataset) / cfg.batch_size))

    def derived(self) -> dict[str, Any]:
        return {"steps_per_generator_update": self.config.n_critic}

    def _frozen_generator(self) -> None:
        """The StyleGAN2 (and pSp encoder) the latents are for: ``--generator``/``--encoder``, or the
        pipeline ``latents.json`` names."""
        from pathlib import Path

        from vgz.training.recipes.psp import load_generator

        cfg, ds = self.config, self.dataset
        made_by = ds.info.get("pipeline")
        self.encoder = None
        source = cfg.generator or made_by
        if not source:
            raise ValueError(f"{ds.config.path}: its latents.json names no pipeline; pass --generator (the StyleGAN2 "
                             "the latents are for)")
        try:
            self.mapping, self.synthesis, pipe = load_generator(source, with_pipeline=True)
        except (OSError, ValueError) as exc:
            where = "--generator" if cfg.generator else f"the pipeline that wrote {ds.config.path} (latents.json)"
            raise ValueError(f"{where}: {exc}; pass --generator (the StyleGAN2 the latents are for)") from None
        if cfg.encoder:
            from vgz.pipelines.base import VideoPipeline

            pipe = VideoPipeline.from_pretrained(cfg.encoder)
        elif cfg.generator and made_by and Path(made_by).is_dir():
            from vgz.pipelines.base import VideoPipeline

            pipe = VideoPipeline.from_pretrained(made_by)
        encoder = getattr(pipe, "encoder", None) if pipe is not None else None
        if encoder is not None:
            from vgz.modeling import module_sha256

            if module_sha256(encoder) != ds.encoder_sha256:
                raise ValueError(f"the encoder of {cfg.encoder or made_by or source} is not the one the latents were "
                                 f"made with (latents.json: encoder {ds.encoder_sha256[:12]}); pass --encoder with "
                                 "that pSp pipeline")
            self.encoder = encoder.eval().requires_grad_(False)

    def build(self, *, img_channels: int, c_dim: int) -> dict[str, nn.Module]:
        from vgz.discriminators.stylevideogan import Critic, CriticConfig
        from vgz.generators.stylevideogan import MotionGenerator, MotionGeneratorConfig

        cfg, ds = self.config, self.dataset
        self._frozen_generator()
        s = self.synthesis.config
        if (ds.num_ws, ds.w_dim) != (s.num_ws, s.w_dim):
            raise ValueError(f"{ds.config.path}: its latents are W+ [{ds.num_ws}, {ds.w_dim}], the generator takes "
                             f"[{s.num_ws}, {s.w_dim}]: pass the --generator they were made for")
        if cfg.resolution is not None and cfg.resolution != s.img_resolution:
            raise ValueError(f"the generator renders {s.img_resolution}x{s.img_resolution}, but the recipe's "
                             f"resolution is {cfg.resolution}: pass --resolution {s.img_resolution} (or leave it out)")
        motion = MotionGenerator(MotionGeneratorConfig(
            z_dim=cfg.z_dim, hidden_dim=cfg.hidden_dim, h_layers=cfg.h_layers, t_layers=cfg.t_layers, w_dim=s.w_dim,
            num_ws=s.num_ws, lr_multiplier=cfg.g_lr_multiplier, pca_components=cfg.pca_components,
            memory_gate_bias=cfg.memory_gate_bias))
        # Every frame of the training latents, read once: the offset trick's PCA (before the first step) and,
        # with init_at_subject, G's start on the subject rather than around W+ = 0, which can lie tens of
        # units away (56 for the built-in's subject) and off its subspace in every other direction.
        latents = [ds.read_latents(v) for v in range(ds.num_videos)]
        motion.fit_subject(latents)
        if cfg.init_at_subject:
            motion.start_at_subject(latents)
        critic = Critic(CriticConfig(num_ws=s.num_ws, w_dim=s.w_dim, window=cfg.num_frames, e_layers=cfg.e_layers,
                                     e_hidden=cfg.e_hidden, feature_dim=cfg.feature_dim,
                                     channels=tuple(cfg.critic_channels)))
        return {"G": StyleVideoGANGenerator(motion, cfg.gap_momentum).train(), "D": critic.train()}

    def setup(self, trainer: Any) -> None:
        for net in (self.mapping, self.synthesis, self.encoder):
            if net is not None:
                net.to(trainer.device)

    def optimizer(self, network: str, params: Any) -> torch.optim.Optimizer:
        cfg = self.config
        lr = cfg.lr_g if network == "G" else cfg.lr_d
        return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas))

    def phases(self) -> list[Phase]:
        return [Phase("Dmain", "D", 1, self.d_main), Phase("Gmain", "G", self.config.n_critic, self.g_main, lazy=False)]

    def ema_beta(self, nimg: int) -> float:
        # Called before the step is counted: nimg / clips per step is the step's index. The average
        # moves only when G did (every n_critic steps), by the paper's 0.995 per generator update.
        cfg = self.config
        step = nimg // (cfg.batch_size * cfg.num_frames)
        return cfg.ema_momentum if step % cfg.n_critic == 0 else 1.0

    # ----------------------------------------------------------------------------- one step

    def real_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        return {"ws": batch["ws"].to(device, non_blocking=True).float()}

    def phase_inputs(self, trainer: Any, n: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        i = torch.randn([n, cfg.z_dim], generator=trainer.z_gen)
        s = torch.randn([n, cfg.num_frames - 1, cfg.z_dim], generator=trainer.z_gen)
        return {"i": i.to(trainer.device), "s": s.to(trainer.device)}

    def d_main(self, ctx: Any) -> torch.Tensor:
        from vgz.training.wgan import gradient_penalty

        with torch.no_grad():
            fake, _ = ctx.G(ctx.gen["i"], ctx.gen["s"])
        real = ctx.real["ws"]
        fake = self.with_still_negatives(real, fake)
        fake_scores, real_scores = ctx.D(fake), ctx.D(real)
        gp = gradient_penalty(ctx.D, real, fake, grad=ctx.grad)  # ctx.grad: unscaled under fp16 loss scaling
        wasserstein = real_scores.mean() - fake_scores.mean()
        ctx.log("scores/fake", fake_scores[self.still_count(len(fake)):])  # generated windows only
        ctx.log("scores/real", real_scores)
        ctx.log("loss/D/wasserstein", wasserstein)
        ctx.log("loss/D/gp", gp)
        loss = -wasserstein + self.config.lambda_gp * gp
        ctx.log("loss/D", loss)
        return loss

    def gap_due(self, step: int) -> bool:
        """Whether the generator update of trainer step ``step`` takes the GAP: every ``gap_interval``-th."""
        cfg = self.config
        return cfg.lambda_gap > 0 and (step // cfg.n_critic) % cfg.gap_interval == 0

    @staticmethod
    def still(ws: torch.Tensor) -> torch.Tensor:
        """Windows ``[B, T, num_ws, w_dim]`` held still: every step is the window's middle one."""
        return ws[:, ws.shape[1] // 2].unsqueeze(1).expand_as(ws)

    def still_count(self, batch_size: int) -> int:
        """How many of a batch's fake windows are real ones held still: ``round(still_negatives * B)``."""
        return round(self.config.still_negatives * batch_size)

    def with_still_negatives(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The critic's fake windows ``[B, T, num_ws, w_dim]`` with the first :meth:`still_count` replaced
        by the same real windows held still: negative data augmentation (Sinha et al. 2021), to teach the
        critic that stillness is fake. Each is paired with its own real window in the gradient penalty,
        so the critic is also kept smooth along the way from a moving window to a still one."""
        k = self.still_count(len(fake))
        if k == 0:
            return fake
        return torch.cat([self.still(real[:k]).to(fake.dtype), fake[k:]])

    def g_main(self, ctx: Any) -> torch.Tensor:
        cfg = self.config
        gap = self.gap_due(ctx.step)
        i = ctx.gen["i"].detach().requires_grad_(gap)
        s = ctx.gen["s"].detach().requires_grad_(gap)
        ws, l = ctx.G(i, s)
        scores = ctx.D(ws)
        ctx.log("scores/fake", scores)
        adv = -scores.mean()
        loss = adv
        if gap:
            plain = getattr(ctx.G, "module", ctx.G)  # the running statistics live in the plain module
            with torch.autocast(ws.device.type, enabled=False):  # angles of fp32 Jacobians
                penalty, phi = plain.gap(l[:, 0].float(), l[:, -1].float(), i, s)
            ctx.log("gap/phi", phi)
            ctx.log("loss/G/gap", penalty)
            # Lazy: on one update in gap_interval, weighted gap_interval times (as StyleGAN2's R1). Its
            # Jacobians are most of a generator update (82% at the paper's sizes on a 2-core CPU; BENCHMARKS.md).
            loss = loss + cfg.lambda_gap * cfg.gap_interval * penalty
        with torch.no_grad():  # does the critic judge motion? (module docstring)
            ctx.log("scores/real_still", ctx.D(self.still(ctx.real["ws"])))
        ctx.log("loss/G/adv", adv)
        ctx.log("loss/G", loss)
        return loss

    # ----------------------------------------------------------------------------- results

    def make_pipeline(self, G: nn.Module) -> Any:
        from vgz.pipelines.stylevideogan import StyleVideoGANPipeline, StyleVideoGANPipelineConfig

        return StyleVideoGANPipeline(StyleVideoGANPipelineConfig(fps=self.config.fps), mapping=self.mapping,
                                     synthesis=self.synthesis, motion=G.motion, encoder=self.encoder)

    def sample(self, pipeline: Any, seeds: list[int], num_frames: int) -> torch.Tensor:
        """The seeds' trajectories rendered (the only frames training makes)."""
        return pipeline(num_videos=len(seeds), num_frames=num_frames, generator=list(seeds), batch_size=1).frames
