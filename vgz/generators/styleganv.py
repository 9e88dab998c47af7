"""StyleGAN-V generator parts: continuous-time motion codes and the time-conditioned synthesis.

StyleGAN-V (Skorokhodov et al., CVPR 2022) makes a video generator out of StyleGAN2 by feeding
every frame a *time embedding* next to the learned 4x4 constant; all frames of a video share w.

Motion (:class:`MotionMappingNetwork`, kind ``motion``, name ``styleganv``):

1. Motion noise ``motion_z [B, L, z_dim]``, one code every ``motion_z_distance`` frames, goes
   through two acausal (unpadded) 1-D convolutions over time (or an LSTM), giving trajectory codes
   ``u``. StyleInV's variant (``gen_strategy="causal_conv"``) replaces code 0 by a learned constant
   ``frame_0_const`` and pads its convolutions on the left only, so each code sees itself and the
   ones before it and the motion at t = 0 is the same for every video.
2. For a time ``t`` the codes left and right of it are blended linearly.
3. With ``fourier=True`` (the released model) the left code predicts per-frequency period scales and
   phases of sines/cosines at fixed, log-linearly spaced frequencies, and *aligner* vectors
   predicted at both neighbouring codes replace the embedding's values at the code positions, so
   the embedding is continuous in ``t`` however fast each code's waves run.

Synthesis (:class:`StyleGANVSynthesisNetwork`, kind ``synthesis``, name ``styleganv``): StyleGAN2
synthesis whose first conv sees ``[const, time embedding]``; noise is off by default.

Parameter names follow universome/stylegan-v (``conv.0.weight``, ``time_encoder.freqs``,
``time_encoder.aligners_predictor.weight``...) so its checkpoints convert by name. Shapes use the
video layout: ``t [B, T]``, ``motion_v [B, T, motion_v_dim]``, frames ``[B, T, C, H, W]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from einops import rearrange, repeat
from torch import nn

from vgz.configs import ComponentConfig, config_field
from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork
from vgz.layers import Conv1dLayer, FullyConnectedLayer
from vgz.modeling import ModelMixin
from vgz.registry import register

__all__ = [
    "MotionConfig",
    "MotionMappingNetwork",
    "AlignedTimeEncoder",
    "linspaced_frequencies",
    "StyleGANVSynthesisConfig",
    "StyleGANVSynthesisNetwork",
]


def linspaced_frequencies(num_freqs: int, min_period_len: float, max_period_len: float) -> torch.Tensor:
    """Angular frequencies whose periods are log-linearly spaced in ``[min, max]``, fastest last: ``[1, F]``."""
    periods = 2 ** np.linspace(np.log2(min_period_len), np.log2(max_period_len), num_freqs)
    freqs = (2 * np.pi / periods)[::-1].copy().astype(np.float32)
    return torch.from_numpy(freqs).unsqueeze(0)


@dataclass
class MotionConfig(ComponentConfig):
    """Config of :class:`MotionMappingNetwork` (StyleGAN-V's ``motion`` and ``time_enc`` settings)."""

    z_dim: int = config_field(512, min=1, help="motion noise size per code")
    v_dim: int = config_field(512, min=1, help="trajectory code size")
    c_dim: int = config_field(0, min=0, help="label size (motions may depend on the class)")
    gen_strategy: Literal["conv", "autoregressive", "causal_conv"] = config_field(
        "conv", help="conv: StyleGAN-V's unpadded convs; autoregressive: an LSTM; causal_conv: StyleInV's "
                     "left-padded convs with code 0 replaced by the learned frame_0_const")
    kernel_size: int = config_field(11, min=1, help="temporal kernel of the two conv layers")
    motion_z_distance: float = config_field(16.0, min=1e-6, help="frames between consecutive motion codes")
    fourier: bool = config_field(True, help="aligned time encoder (released model); False = a mapping "
                                            "network on the blended codes (the official code cannot build this)")
    time_enc_dim: int = config_field(256, min=1, help="number of frequencies (embedding size is twice that)")
    min_period_len: float = config_field(16.0, min=1e-6)
    max_period_len: float = config_field(1024.0, min=1e-6)
    max_num_frames: int = config_field(1024, min=1, help="frames sampled from at least (sets the code count)")

    presets = {
        "styleganv": {},
        "tiny": {"z_dim": 8, "v_dim": 8, "kernel_size": 3, "motion_z_distance": 4.0, "time_enc_dim": 6,
                 "min_period_len": 4.0, "max_period_len": 64.0, "max_num_frames": 32},
    }

    def check(self) -> None:
        if self.max_period_len < self.min_period_len:
            self.fail("max_period_len", f"a value >= min_period_len ({self.min_period_len})")
        if self.gen_strategy == "causal_conv" and self.kernel_size % 2 == 0:
            self.fail("kernel_size", "an odd size for gen_strategy='causal_conv' (it sees kernel_size // 2 codes back)")
        # The trajectory codes (v_dim from the convs, z_dim from the LSTM) feed the time encoder
        # (which reads v_dim) or, without fourier, a mapping network (which reads z_dim).
        emitted = self.z_dim if self.gen_strategy == "autoregressive" else self.v_dim
        read = self.v_dim if self.fourier else self.z_dim
        if emitted != read:
            self.fail("v_dim", f"z_dim ({self.z_dim}) for gen_strategy={self.gen_strategy!r} with fourier={self.fourier}")

    @property
    def out_dim(self) -> int:
        """Size of the time embedding ``motion_v``."""
        return 2 * self.time_enc_dim if self.fourier else self.v_dim

    @property
    def num_additional_codes(self) -> int:
        """Codes consumed by the unpadded convolutions."""
        return (self.kernel_size - 1) * 2 if self.gen_strategy == "conv" else 0


class AlignedTimeEncoder(nn.Module):
    """Sines/cosines of ``t`` with code-dependent periods and phases, aligned at the code positions."""

    def __init__(self, latent_dim: int, num_freqs: int, min_period_len: float, max_period_len: float):
        super().__init__()
        freqs = linspaced_frequencies(num_freqs, min_period_len, max_period_len)
        self.register_buffer("freqs", freqs)
        # No biases: a bias would give every video the same motion (mode collapse).
        self.periods_predictor = FullyConnectedLayer(latent_dim, num_freqs, bias=False)
        self.phase_predictor = FullyConnectedLayer(latent_dim, num_freqs, bias=False)
        period_lens = 2 * np.pi / freqs
        self.register_buffer("phase_scales", max_period_len / period_lens)
        self.aligners_predictor = FullyConnectedLayer(latent_dim, num_freqs * 2, bias=False)

    def _embed(self, t: torch.Tensor, periods: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
        raw = self.freqs * periods * t.reshape(-1).float().unsqueeze(1) + phases * self.phase_scales
        return torch.cat([raw.sin(), raw.cos()], dim=1)

    def forward(self, t: torch.Tensor, u_left: torch.Tensor, u_right: torch.Tensor, t_left: torch.Tensor,
                t_right: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Flattened frames: ``t, t_left, t_right, alpha [BT]``, ``u_left, u_right [BT, D]`` -> ``[BT, 2F]``."""
        periods = self.periods_predictor(u_left).tanh() + 1
        phases = self.phase_predictor(u_left)
        alpha = alpha.reshape(-1, 1)
        emb = self._embed(t, periods, phases)
        remove = self._embed(t_left, periods, phases) * (1 - alpha) + self._embed(t_right, periods, phases) * alpha
        add = self.aligners_predictor(u_left) * (1 - alpha) + self.aligners_predictor(u_right) * alpha
        return emb - remove + add


@register("motion", "styleganv")
class MotionMappingNetwork(ModelMixin):
    """StyleGAN-V motion: timestamps ``t [B, T]`` (+ motion noise) -> time embeddings ``[B, T, out_dim]``.

    Times may be fractional and arbitrarily large: the motion noise just needs enough codes
    (:meth:`num_codes`). Reusing the same ``motion_z`` for different ``t`` gives the same motion,
    which is how long videos are generated piece by piece.
    """

    config_class = MotionConfig

    def __init__(self, config: MotionConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg: MotionConfig = self.config
        in_dim = cfg.z_dim + cfg.c_dim
        if cfg.gen_strategy in ("conv", "causal_conv"):
            # Unpadded convs: the codes at any time are equally good, however long the video.
            # Causal ones (StyleInV): code j depends on codes <= j only, and code 0 is learned.
            causal = cfg.gen_strategy == "causal_conv"
            if causal:
                self.frame_0_const = nn.Parameter(torch.randn([cfg.z_dim]))
            self.conv = nn.Sequential(
                Conv1dLayer(in_dim, cfg.z_dim, cfg.kernel_size, activation="lrelu", lr_multiplier=0.01, causal=causal),
                Conv1dLayer(cfg.z_dim, cfg.v_dim, cfg.kernel_size, activation="lrelu", lr_multiplier=0.01,
                            causal=causal),
            )
        else:
            self.rnn = nn.LSTM(input_size=in_dim, hidden_size=cfg.z_dim, batch_first=True)
        if cfg.fourier:
            self.time_encoder = AlignedTimeEncoder(cfg.v_dim, cfg.time_enc_dim, cfg.min_period_len, cfg.max_period_len)
        else:
            self.mapping = MappingNetwork(MappingConfig(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.v_dim, num_ws=None,
                                                        num_layers=2, w_avg_beta=None))

    @property
    def out_dim(self) -> int:
        return self.config.out_dim

    def num_codes(self, t_max: float) -> int:
        """Motion codes ``motion_z`` must hold for times up to ``t_max``."""
        cfg = self.config
        reach = max(cfg.max_num_frames - 1, float(t_max))
        return math.ceil(reach / cfg.motion_z_distance) + 2 + cfg.num_additional_codes

    def sample_motion_z(self, batch_size: int, t_max: float, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None) -> torch.Tensor:
        """Motion noise ``[batch_size, num_codes(t_max), z_dim]``, drawn on the generator's device."""
        shape = [batch_size, self.num_codes(t_max), self.config.z_dim]
        draw_on = generator.device if generator is not None else (device or "cpu")
        return torch.randn(shape, generator=generator, device=draw_on).to(device or draw_on)

    def trajectories(self, motion_z: torch.Tensor, c: torch.Tensor | None = None, first_code: int = 0) -> torch.Tensor:
        """Motion noise ``[B, L, z_dim]`` -> trajectory codes ``[B, L - num_additional_codes, D]``.

        ``first_code``: the index of ``motion_z[:, 0]`` in the whole sequence. With
        ``causal_conv`` code 0 of the sequence is replaced by ``frame_0_const``, and a window that
        starts later gives correct codes from its ``2 * (kernel_size // 2)``-th on.
        """
        x = motion_z
        if self.config.gen_strategy == "causal_conv" and first_code == 0:
            x = torch.cat([repeat(self.frame_0_const.to(x.dtype), "d -> b 1 d", b=x.shape[0]), x[:, 1:]], dim=1)
        if self.config.c_dim > 0:
            x = torch.cat([x, repeat(c, "b c -> b l c", l=x.shape[1])], dim=2)
        if self.config.gen_strategy != "autoregressive":
            return rearrange(self.conv(rearrange(x, "b l c -> b c l")), "b c l -> b l c")
        return self.rnn(x)[0]

    def forward(self, t: torch.Tensor, c: torch.Tensor | None = None, motion_z: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Time embeddings for frames at times ``t``.

        Args:
            t: ``[B, T]`` frame times in frames (float; any value >= 0).
            c: ``[B, c_dim]`` labels (only when ``c_dim > 0``).
            motion_z: ``[B, >= num_codes(t.max()), z_dim]`` motion noise; drawn from ``generator``
                when None.

        Returns:
            ``[B, T, out_dim]``.
        """
        cfg = self.config
        if t.ndim != 2:
            raise ValueError(f"t must be [batch, frames], got {tuple(t.shape)}")
        if (t < 0).any():
            raise ValueError("t must be >= 0")
        batch_size, num_frames = t.shape
        if cfg.c_dim > 0 and (c is None or c.shape != (batch_size, cfg.c_dim)):
            raise ValueError(f"c must be [{batch_size}, {cfg.c_dim}], got {None if c is None else tuple(c.shape)}")
        t_max = t.max().item()
        needed = self.num_codes(t_max)
        if motion_z is None:
            motion_z = self.sample_motion_z(batch_size, t_max, generator, t.device)
        if motion_z.ndim != 3 or motion_z.shape[0] < batch_size or motion_z.shape[1] < needed or motion_z.shape[2] < cfg.z_dim:
            raise ValueError(f"motion_z must be [{batch_size}, >= {needed}, {cfg.z_dim}] for t up to "
                             f"{t_max:g}, got {tuple(motion_z.shape)}")
        # Neighbouring codes of each frame and the blend between them.
        d = cfg.motion_z_distance
        left = (t / d).floor().long()
        motion_z = motion_z[:batch_size, :needed, :cfg.z_dim].to(t.device)
        first = start = 0
        if cfg.gen_strategy != "autoregressive":
            # Trajectory code j sees only motion_z[j : j + num_additional_codes + 1] (unpadded convs),
            # or motion_z[j - 2 * (kernel_size // 2) : j + 1] (causal ones), so compute just the codes
            # these frames use: a chunk of a long video costs the same as a short video, wherever it lies.
            first, last = int(left.min().item()), int(left.max().item()) + 1
            if cfg.gen_strategy == "causal_conv":
                start = max(0, first - 2 * (cfg.kernel_size // 2))
                motion_z = motion_z[:, start:last + 1]
            else:
                start = first
                motion_z = motion_z[:, first:last + cfg.num_additional_codes + 1]
        trajs = self.trajectories(motion_z, c, first_code=start)[:, first - start:]
        batch_idx = repeat(torch.arange(batch_size, device=t.device), "b -> b f", f=num_frames)
        u_left, u_right = trajs[batch_idx, left - first], trajs[batch_idx, left + 1 - first]
        t_left = t - t % d
        alpha = ((t % d) / d).unsqueeze(2).to(torch.float32)
        if cfg.fourier:
            flat = lambda x: rearrange(x, "b f ... -> (b f) ...")  # noqa: E731
            v = self.time_encoder(flat(t), flat(u_left), flat(u_right), flat(t_left), flat(t_left + d), flat(alpha))
        else:
            u = (u_left * (1 - alpha) + u_right * alpha).reshape(batch_size * num_frames, -1).float()
            cc = c.repeat_interleave(num_frames, dim=0) if cfg.c_dim > 0 else None
            v = self.mapping(u, cc)
        return rearrange(v, "(b f) d -> b f d", b=batch_size)

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        t = torch.rand([batch_size, 3], generator=generator) * 2 * self.config.max_num_frames
        c = torch.randn([batch_size, self.config.c_dim], generator=generator) if self.config.c_dim else None
        return {"t": t, "c": c, "motion_z": self.sample_motion_z(batch_size, t.max().item(), generator, "cpu")}


@dataclass
class StyleGANVSynthesisConfig(SynthesisConfig):
    """Config of :class:`StyleGANVSynthesisNetwork`: StyleGAN2 synthesis plus the time-embedding width."""

    use_noise: bool = False
    motion_v_dim: int = config_field(512, min=0, help="time embedding channels next to the 4x4 const")

    presets = {
        # The released StyleGAN-V at 256x256 ("auto" config: half the channels below 512x512).
        "styleganv-256": {"w_dim": 512, "img_resolution": 256, "channel_base": 16384, "num_fp16_res": 4,
                          "conv_clamp": 256.0},
        "tiny": {"w_dim": 32, "img_resolution": 16, "channel_base": 512, "channel_max": 32, "motion_v_dim": 12},
    }


@register("synthesis", "styleganv")
class StyleGANVSynthesisNetwork(SynthesisNetwork):
    """StyleGAN-V synthesis: ``ws [B, num_ws, w_dim]`` + ``motion_v [B, T, D]`` -> frames ``[B, T, C, H, W]``."""

    config_class = StyleGANVSynthesisConfig

    @classmethod
    def extra_input_channels(cls, cfg: SynthesisConfig) -> int:
        return cfg.motion_v_dim  # type: ignore[attr-defined]

    def forward(self, ws: torch.Tensor, motion_v: torch.Tensor, noise_mode: str = "random",  # type: ignore[override]
                fused_modconv: bool | None = None, force_fp32: bool | None = None,
                generator: torch.Generator | None = None, channels_last: bool | None = None) -> torch.Tensor:
        """Frames of ``B`` videos at ``T`` times each; one w per video, one time embedding per frame.

        The frames of a video share their styles, so every layer modulates its weights once per
        video (not once per frame); outputs equal running each frame with its own copy of w.
        """
        if motion_v.ndim != 3 or motion_v.shape[0] != ws.shape[0]:
            raise ValueError(f"motion_v must be [{ws.shape[0]}, frames, {self.config.motion_v_dim}], "
                             f"got {tuple(motion_v.shape)}")
        num_frames = motion_v.shape[1]
        frames = super().forward(
            ws, noise_mode=noise_mode, fused_modconv=fused_modconv, force_fp32=force_fp32, generator=generator,
            extra_input=rearrange(motion_v, "b f d -> (b f) d"), frames_per_w=num_frames,
            channels_last=channels_last,
        )
        return rearrange(frames, "(b f) c h w -> b f c h w", f=num_frames)

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        ws = torch.randn([batch_size, self.num_ws, self.w_dim], generator=generator)
        motion_v = torch.randn([batch_size, 3, self.config.motion_v_dim], generator=generator)
        return {"ws": ws, "motion_v": motion_v, "noise_mode": "const"}
