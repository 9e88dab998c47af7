"""What every recipe is: the base config and the hooks the trainer calls.

The trainer (:mod:`vgz.training.trainer`) runs a schedule of :class:`Phase` s over the networks a
recipe builds, with their optimizers, mixed precision, DDP, an EMA copy of one network,
checkpoints, logs and samples. Everything model-specific is the recipe's: the networks, how
loader batches become model inputs, each phase's inputs and loss, augmentation and other state
that changes during training (saved in checkpoints through :meth:`Recipe.state_dict`), and how
the trained network becomes a pipeline.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

import torch
from torch import nn

from vgz.configs import ComponentConfig, config_field

__all__ = ["Phase", "RecipeConfig", "Recipe", "copy_generator"]


@dataclass(frozen=True)
class Phase:
    """One entry of the schedule: train ``network`` on ``loss`` every ``interval`` steps.

    ``lazy``: the loss is a lazy regularizer (StyleGAN2's R1, path length), weighted ``interval``
    times to make up for the steps it skips; False for a loss that is simply run less often (a WGAN
    generator step every ``n_critic`` critic steps).
    """

    name: str
    network: str
    interval: int
    loss: Callable[[Any], torch.Tensor]
    lazy: bool = True


@dataclass
class RecipeConfig(ComponentConfig):
    """What the trainer reads from every recipe: data, batch and length (official names)."""

    resolution: int = config_field(256, min=16, max=2048, help="training resolution, a power of two")
    total_kimg: float = config_field(25000.0, min=0, help="training length in thousands of real frames")
    # data
    num_frames: int = config_field(3, min=1, help="frames per training clip k")
    max_dist: int = config_field(32, min=0, help="largest gap between a clip's first and last frame")
    max_num_frames: int = config_field(1024, min=1, help="videos are cut to random windows this long")
    xflip: bool = config_field(True, help="mirror clips at random (official --mirror)")
    fps: float = config_field(25.0, min=1e-3, help="frame rate of the training videos (for the pipeline)")
    # optimisation
    batch_size: int = config_field(64, min=1, help="clips per step over all processes")
    batch_gpu: Optional[int] = config_field(None, min=1, help="clips per process per round (gradient accumulation)")

    def check(self) -> None:
        if self.resolution & (self.resolution - 1):
            self.fail("resolution", "a power of two between 16 and 2048")


class Recipe:
    """Base class of recipes. Subclasses set ``config_class`` and implement :meth:`build`,
    :meth:`phases`, :meth:`optimizer`, :meth:`make_pipeline`; the other hooks have defaults. Hooks
    that take ``trainer`` get the :class:`~vgz.training.trainer.Trainer` (its ``device``,
    ``dataset``, ``run``, ``step``, ``stats``, ``accelerator``, ``np_rng`` and ``z_gen``)."""

    config_class: ClassVar[type[RecipeConfig]] = RecipeConfig
    #: RunConfig defaults per preset (e.g. frequent checkpoints for ``tiny``)
    run_presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: generator times may be fractional (StyleGAN-V's continuous time)
    fractional_t: ClassVar[bool] = False
    #: the network that becomes the pipeline (:meth:`make_pipeline`)
    pipeline_network: ClassVar[str] = "G"
    #: the trainer keeps an EMA copy of that network, which it exports (:meth:`ema_beta`)
    ema: ClassVar[bool] = True
    #: what to run with the exported pipeline (shown when a run ends)
    next_command: ClassVar[str] = "vgz generate {pipeline}"

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

    # ----------------------------------------------------------------------------- building

    def sampling(self) -> Any:
        """The :class:`~vgz.data.sampling.ClipSamplingConfig` of the clips the recipe reads."""
        from vgz.data.sampling import ClipSamplingConfig

        cfg = self.config
        if cfg.num_frames == 1:  # single frames: any frame of the video
            return ClipSamplingConfig.from_preset("image", max_num_frames=cfg.max_num_frames)
        return ClipSamplingConfig(num_frames=cfg.num_frames, max_dist=cfg.max_dist, max_num_frames=cfg.max_num_frames)

    def check_data(self, spec: str) -> None:
        """Refuse data of a kind the recipe cannot train on (``spec`` as given to ``--data``), before it is
        opened; anything :func:`~vgz.data.datasets.open_dataset` opens by default."""

    def use_dataset(self, dataset: Any) -> None:
        """Called with the training dataset before :meth:`build` (recipes whose networks or length
        depend on the data, e.g. a PCA of training latents); nothing by default."""

    def default_steps(self, dataset: Any | None) -> int | None:
        """Training steps when the run does not set ``steps``: ``total_kimg`` thousand real frames of
        ``batch_size`` clips of ``num_frames`` (``dataset`` may be None, e.g. for ``--dry-run``; recipes
        whose length depends on it return None then)."""
        import math

        cfg = self.config
        return math.ceil(cfg.total_kimg * 1000 / (cfg.batch_size * cfg.num_frames))

    def build(self, *, img_channels: int, c_dim: int) -> dict[str, nn.Module]:
        """The networks to train, by name (``{"G": ..., "D": ...}``), fresh and in training mode."""
        raise NotImplementedError

    def setup(self, trainer: Any) -> None:
        """Called once the networks are built (before they are prepared): helpers that are not trained
        (an augmentation pipe, a frozen generator, a loss network), on ``trainer.device``."""

    def optimizer(self, network: str, params: Any) -> torch.optim.Optimizer:
        """The optimizer of ``network``."""
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        """The schedule (fresh loss objects: called again when a checkpoint is loaded)."""
        raise NotImplementedError

    def derived(self) -> dict[str, Any]:
        """Settings that follow from the config (shown by ``vgz train --dry-run``)."""
        return {}

    # ----------------------------------------------------------------------------- one step

    def real_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        """A loader batch -> what the losses read as ``ctx.real``: frames ``[B, T, C, H, W]`` in
        [-1, 1], labels ``c`` and frame times ``t``."""
        frames = batch["frames"].to(device, non_blocking=True).to(torch.float32) / 127.5 - 1
        return {"frames": frames, "c": batch["label"].to(device).float(), "t": batch["times"].to(device)}

    def phase_inputs(self, trainer: Any, n: int) -> dict[str, torch.Tensor]:
        """Extra inputs of one round of ``n`` samples (``ctx.gen``: latents, labels, times)."""
        return {}

    def augment(self, frames: torch.Tensor) -> torch.Tensor:
        """Augmentation applied where the losses ask for it (identity by default)."""
        return frames

    def end_step(self, trainer: Any) -> None:
        """After every step (the EMA is updated, ``trainer.step`` counts it): adaptive state, e.g. ADA."""

    def ema_beta(self, nimg: int) -> float:
        """The EMA decay per step after ``nimg`` training images (recipes with ``ema``)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state shared by all processes, saved in ``trainer_state.json``."""
        return {"loss": self.loss.state_dict() if self.loss is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.loss is not None:
            self.loss.load_state_dict(state.get("loss", {}))

    def rank_state(self) -> dict[str, Any]:
        """JSON-able state of this process (saved per rank)."""
        return {}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        pass

    def log_values(self) -> dict[str, float]:
        """Values logged with every log line (e.g. the augmentation probability)."""
        return {}

    # ----------------------------------------------------------------------------- results

    def make_pipeline(self, net: nn.Module) -> Any:
        """The trained network (its EMA copy, when the recipe keeps one) as a pipeline, sharing its modules."""
        raise NotImplementedError

    def sample(self, pipeline: Any, seeds: list[int], num_frames: int) -> torch.Tensor:
        """Sample clips ``[B, T, C, H, W]`` in [0, 1] for the run's sample grids."""
        return pipeline(num_videos=len(seeds), num_frames=num_frames, generator=list(seeds)).frames


def copy_generator(G: nn.Module) -> nn.Module:
    """A frozen copy of ``G`` in eval mode, for the EMA."""
    return copy.deepcopy(G).eval().requires_grad_(False)
