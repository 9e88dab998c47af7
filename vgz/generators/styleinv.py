"""StyleInV's temporal style (Wang et al., 2023): first-frame-aware acyclic positional encoding (FFA-APE).

StyleInV animates a pretrained StyleGAN2: every frame's latent is ``w_t = w0 + Enc(x0, s_t)``, where
the inversion encoder (:mod:`vgz.encoders.styleinv`) is modulated by the *temporal style* ``s_t``
made here (kind ``motion``, name ``styleinv``):

1. Motion noise ``motion_z [B, L, z_dim]``, one code every ``motion_z_distance`` frames, whose
   code 0 is replaced by a learned constant ``frame_0_const``, goes through two *causal* 1-D
   convolutions (kernel 11: each code sees itself and the five before it, twice), so the style at
   t = 0 is the same for every video and no code depends on later ones.
2. StyleGAN-V's aligned time encoder turns the codes around each time ``t`` into a time embedding
   ``v_t`` (:class:`~vgz.generators.styleganv.MotionMappingNetwork` with
   ``gen_strategy="causal_conv"``).
3. A fusion MLP maps ``[w0 | v_t]`` through ``fcf0`` (lrelu) and ``fcf1`` (lrelu), equalized-lr
   layers with lr multiplier 0.01 and the usual sqrt(2) activation gain, to ``s_t``.

Parameter names are the official ones below ``SI.mapping`` (``motion_encoder.frame_0_const``,
``motion_encoder.conv.0.weight``, ``motion_encoder.time_encoder.freqs``, ``fcf0.weight``...), so
official snapshots convert by name. Times are in frames of the training videos; the official code
takes them normalised, ``Ts = t / (max_num_frames - 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange, repeat

from vgz.configs import ComponentConfig, config_field
from vgz.generators.styleganv import MotionConfig, MotionMappingNetwork
from vgz.layers import FullyConnectedLayer
from vgz.modeling import ModelMixin
from vgz.registry import register

__all__ = ["TemporalStyleConfig", "TemporalStyle"]


@dataclass
class TemporalStyleConfig(ComponentConfig):
    """Config of :class:`TemporalStyle` (StyleInV's ``styleinv.mapping_opts``)."""

    w_dim: int = config_field(512, min=1, help="size of the temporal style (the encoder's style_dim)")
    content_dim: int = config_field(512, min=0, help="size of w0 joined to the time embedding (0: not joined, "
                                                     "the official concat_content=False)")
    layers_after_fuse: int = config_field(2, min=1, help="fusion layers fcf0, fcf1, ...")
    layer_features: int | None = config_field(None, min=1, help="width of the inner fusion layers (None: w_dim)")
    lr_multiplier: float = config_field(0.01, min=1e-8, help="learning-rate multiplier of the fusion layers")
    z_dim: int = config_field(512, min=1, help="motion noise size per code")
    v_dim: int = config_field(512, min=1, help="trajectory code size")
    kernel_size: int = config_field(11, min=1, help="temporal kernel of the two causal convs (odd)")
    motion_z_distance: float = config_field(16.0, min=1e-6, help="frames between consecutive motion codes")
    time_enc_dim: int = config_field(256, min=1, help="number of frequencies (the embedding has twice that)")
    min_period_len: float = config_field(16.0, min=1e-6)
    max_period_len: float = config_field(128.0, min=1e-6)
    max_num_frames: int = config_field(128, min=1, help="frames of the training clips (sets the minimum code count)")

    presets = {
        # configs/ffs.yaml and dfuf.yaml: a code every 16 frames, periods 16..128 (128-frame clips at 30 fps).
        "ffs": {},
        "dfuf": {},
        # configs/sky.yaml and taichi.yaml: a code every 128 frames, periods 32..1024 (25 fps).
        "sky": {"motion_z_distance": 128.0, "min_period_len": 32.0, "max_period_len": 1024.0},
        "taichi": {"motion_z_distance": 128.0, "min_period_len": 32.0, "max_period_len": 1024.0},
        "tiny": {"w_dim": 32, "content_dim": 32, "z_dim": 8, "v_dim": 8, "kernel_size": 3, "motion_z_distance": 4.0,
                 "time_enc_dim": 6, "min_period_len": 4.0, "max_period_len": 32.0, "max_num_frames": 32},
    }

    def check(self) -> None:
        if self.kernel_size % 2 == 0:
            self.fail("kernel_size", "an odd size (a causal conv sees kernel_size // 2 codes back)")
        if self.max_period_len < self.min_period_len:
            self.fail("max_period_len", f"a value >= min_period_len ({self.min_period_len})")

    def motion_config(self) -> MotionConfig:
        """The config of the ``motion_encoder`` inside."""
        return MotionConfig(z_dim=self.z_dim, v_dim=self.v_dim, gen_strategy="causal_conv", kernel_size=self.kernel_size,
                            motion_z_distance=self.motion_z_distance, fourier=True, time_enc_dim=self.time_enc_dim,
                            min_period_len=self.min_period_len, max_period_len=self.max_period_len,
                            max_num_frames=self.max_num_frames)


@register("motion", "styleinv")
class TemporalStyle(ModelMixin):
    """StyleInV's temporal style: ``t [B, T]`` + ``w0 [B, content_dim]`` (+ motion noise) -> ``[B, T, w_dim]``.

    Like StyleGAN-V's motion, times may be fractional and arbitrarily large, and the same
    ``motion_z`` at other times continues the same motion (long videos piece by piece).
    """

    config_class = TemporalStyleConfig

    def __init__(self, config: TemporalStyleConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg: TemporalStyleConfig = self.config
        self.motion_encoder = MotionMappingNetwork(cfg.motion_config())
        inner = cfg.layer_features or cfg.w_dim
        features = [cfg.content_dim + self.motion_encoder.out_dim] + [inner] * (cfg.layers_after_fuse - 1) + [cfg.w_dim]
        for i, (fan_in, fan_out) in enumerate(zip(features[:-1], features[1:])):
            self.add_module(f"fcf{i}", FullyConnectedLayer(fan_in, fan_out, activation="lrelu",
                                                           lr_multiplier=cfg.lr_multiplier))

    def num_codes(self, t_max: float) -> int:
        """Motion codes ``motion_z`` must hold for times up to ``t_max``."""
        return self.motion_encoder.num_codes(t_max)

    def sample_motion_z(self, batch_size: int, t_max: float, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None) -> torch.Tensor:
        """Motion noise ``[batch_size, num_codes(t_max), z_dim]`` (code 0 is ignored: it is learned)."""
        return self.motion_encoder.sample_motion_z(batch_size, t_max, generator, device)

    def forward(self, t: torch.Tensor, w0: torch.Tensor | None = None, motion_z: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Temporal styles of frames at times ``t``.

        Args:
            t: ``[B, T]`` frame times in frames of the training videos (float, >= 0).
            w0: ``[B, content_dim]`` the first frame's latent (not needed when ``content_dim=0``).
            motion_z: ``[B, >= num_codes(t.max()), z_dim]`` motion noise; drawn when None.

        Returns:
            ``[B, T, w_dim]``.
        """
        cfg: TemporalStyleConfig = self.config
        v = self.motion_encoder(t, motion_z=motion_z, generator=generator)  # [B, T, 2 * time_enc_dim]
        x = rearrange(v, "b t d -> (b t) d")
        if cfg.content_dim:
            if w0 is None or w0.shape != (t.shape[0], cfg.content_dim):
                raise ValueError(f"w0 must be [{t.shape[0]}, {cfg.content_dim}], got "
                                 f"{None if w0 is None else tuple(w0.shape)}")
            x = torch.cat([repeat(w0.to(x.dtype), "b d -> (b t) d", t=t.shape[1]), x], dim=1)
        for i in range(cfg.layers_after_fuse):
            x = getattr(self, f"fcf{i}")(x)
        return rearrange(x, "(b t) d -> b t d", b=t.shape[0])

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        cfg = self.config
        t = torch.rand([batch_size, 3], generator=generator) * 2 * cfg.max_num_frames
        return {"t": t, "w0": torch.randn([batch_size, cfg.content_dim], generator=generator),
                "motion_z": self.sample_motion_z(batch_size, t.max().item(), generator, "cpu")}
