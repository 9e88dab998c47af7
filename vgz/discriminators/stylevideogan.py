"""StyleVideoGAN's critic (Fox et al., BMVC 2021): W+ windows -> a WGAN score.

Kind ``discriminator``, name ``stylevideogan``. Not recurrent: it always sees a window of ``window``
(paper: 25) consecutive W+ latents. A 6-layer MLP ``E`` maps every step's W+ code (``num_ws x w_dim``,
flattened) to a ``feature_dim``-d feature (paper: 32); a DCGAN-style network of 1-D convolutions over
time, with no normalisation layers (the gradient penalty needs none), turns the ``[feature_dim,
window]`` sequence into one score. The paper gives E's depth and output and the DCGAN lineage only;
vgz's choices (configurable): E's hidden width 512, LeakyReLU(0.2); temporal convs of kernel 4, stride
2, padding 1 (DCGAN's) with channels 64, 128, 256 (a window of 25 becomes 12, 6, 3 steps), then a
linear layer to the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import nn

from vgz.configs import ComponentConfig, config_field
from vgz.modeling import ModelMixin
from vgz.registry import register

__all__ = ["CriticConfig", "Critic"]


@dataclass
class CriticConfig(ComponentConfig):
    """Config of :class:`Critic`."""

    num_ws: int = config_field(18, min=1, help="W+ layers of the StyleGAN2")
    w_dim: int = config_field(512, min=1)
    window: int = config_field(25, min=2, help="steps per scored window (paper: 25; 75 for hands)")
    e_layers: int = config_field(6, min=1, help="layers of the per-step MLP E (paper: 6)")
    e_hidden: int = config_field(512, min=1, help="width of E's hidden layers (open in the paper)")
    feature_dim: int = config_field(32, min=1, help="E's output per step (paper: 32)")
    channels: tuple[int, ...] = config_field((64, 128, 256), help="channels of the temporal convs (stride 2 each)")

    presets = {
        "paper": {},
        "paper256": {"num_ws": 14},
        "tiny": {"num_ws": 6, "w_dim": 32, "window": 9, "e_layers": 3, "e_hidden": 32, "feature_dim": 8,
                 "channels": (16, 32)},
    }

    def check(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            self.fail("channels", "one or more positive channel counts")
        if self.conv_length < 1:
            self.fail("window", f"at least {2 ** len(self.channels)} steps for {len(self.channels)} stride-2 convs")

    @property
    def conv_length(self) -> int:
        """Steps left after the temporal convs."""
        length = self.window
        for _ in self.channels:
            length = (length - 2) // 2 + 1  # kernel 4, stride 2, padding 1
        return length


@register("discriminator", "stylevideogan")
class Critic(ModelMixin):
    """StyleVideoGAN's critic: W+ windows ``[B, window, num_ws, w_dim]`` -> scores ``[B]`` (no sigmoid: WGAN)."""

    config_class = CriticConfig

    def __init__(self, config: CriticConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg: CriticConfig = self.config
        dims = [cfg.num_ws * cfg.w_dim] + [cfg.e_hidden] * (cfg.e_layers - 1) + [cfg.feature_dim]
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if k < len(dims) - 2:
                layers.append(nn.LeakyReLU(0.2))
        self.E = nn.Sequential(*layers)
        convs: list[nn.Module] = []
        for a, b in zip([cfg.feature_dim, *cfg.channels[:-1]], cfg.channels):
            convs += [nn.Conv1d(a, b, 4, 2, 1), nn.LeakyReLU(0.2)]
        self.temporal = nn.Sequential(*convs)
        self.head = nn.Linear(cfg.channels[-1] * cfg.conv_length, 1)

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        cfg: CriticConfig = self.config
        if ws.ndim != 4 or ws.shape[1:] != (cfg.window, cfg.num_ws, cfg.w_dim):
            raise ValueError(f"ws must be [batch, {cfg.window}, {cfg.num_ws}, {cfg.w_dim}] (windows of {cfg.window} "
                             f"W+ steps), got {tuple(ws.shape)}")
        features = self.E(rearrange(ws, "b t n d -> b t (n d)"))  # [B, window, feature_dim]
        x = self.temporal(rearrange(features, "b t f -> b f t"))
        return self.head(x.flatten(1)).squeeze(1)

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        cfg = self.config
        return {"ws": torch.randn([batch_size, cfg.window, cfg.num_ws, cfg.w_dim], generator=generator)}
