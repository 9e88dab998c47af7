"""StyleVideoGAN's motion generator (Fox et al., BMVC 2021): W+ trajectories from a GRU stack.

Kind ``motion``, name ``stylevideogan``. StyleVideoGAN never renders frames while training: its
generator emits sequences of W+ latents of a frozen StyleGAN2, one per step::

    i ~ N(0, I)^z_dim                      content code          s_k ~ N(0, I)^z_dim, one per step after the first
    (h_0, h_1, h_2) = H(i), h_3 = i        initial memories of the stack of 4 GRU cells P
    h_{k+1} = P(s_k, h_k)                  cell 0 reads s_k, cell j reads cell j-1's new state
    l_k = h_{k,3}  (so l_0 = i)            the top cell's state, z_dim wide
    w_k[n] = A_n(T(l_k))                   T: an MLP z_dim -> w_dim, A_n: one affine map per W+ layer

The paper fixes the 4 cells, ``i``, ``s_k`` and ``l_k`` in R^32, the top cell starting from ``i``,
T's output of 512 and one affine map per W+ layer; it leaves the other sizes open
(docs/notes/stylevideogan-paper.md, section 7). vgz's choices, all configurable: hidden cells of 256
(wide enough for the memory of a 25-step window, small next to the 9216-d output), H and T as
equalized-lr lrelu MLPs of 2 and 4 layers (T like StyleGAN's mapping network, as the paper likens it),
``l_k`` as the top cell's state (which makes ``l_0 = i``, both 32-d), and that cell's update gate
initialised mostly closed (``memory_gate_bias``: from PyTorch's init, step noise half replaces the
state every step and ``l_0 = i``, far larger than the states after it, is a lone outlier). Recurrent,
so it runs for any number of steps; :meth:`MotionGenerator.forward` returns its state
(``return_state=True``) so that a long trajectory streams chunk by chunk and equals the same
trajectory made at once.

The module also keeps the training subject's W+ PCA (buffers ``subject_mean``, ``subject_basis``,
``subject_frames``; :meth:`MotionGenerator.fit_subject`), which the offset trick projects onto
(:meth:`MotionGenerator.project_subject`, :class:`~vgz.pipelines.stylevideogan.StyleVideoGANPipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from vgz.configs import ComponentConfig, config_field
from vgz.layers import FullyConnectedLayer
from vgz.modeling import ModelMixin
from vgz.registry import register

__all__ = ["MotionGeneratorConfig", "MotionGenerator"]


def gru_cell(cell: nn.GRUCell, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``cell(x, h)``, in plain operations where gradients are taken (PyTorch's gate order and formula,
    the cell's own parameters); the fused cell otherwise (generation: fewer kernels).

    Training takes the Jacobians of whole trajectories in one vectorised backward pass (the gradient
    angle penalty, ``vgz.training.wgan.jacobian_norm``). CUDA's fused GRU cell has no batching rule, so
    that pass fell back to a loop of small kernels: 2.9 s per generator step on an H200, 0.45 s in
    plain operations (BENCHMARKS.md). The two agree to float rounding (2e-7).
    """
    if not torch.is_grad_enabled():
        return cell(x, h)
    r_i, z_i, n_i = F.linear(x, cell.weight_ih, cell.bias_ih).chunk(3, dim=1)
    r_h, z_h, n_h = F.linear(h, cell.weight_hh, cell.bias_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(r_i + r_h), torch.sigmoid(z_i + z_h)
    n = torch.tanh(n_i + r * n_h)
    return torch.lerp(n, h, z)  # (1 - z) n + z h


@dataclass
class MotionGeneratorConfig(ComponentConfig):
    """Config of :class:`MotionGenerator` (the paper's sizes where it gives them)."""

    z_dim: int = config_field(32, min=1, help="size of i, of each s_k and of l_k (paper: 32)")
    hidden_dim: int = config_field(256, min=1, help="hidden size of GRU cells 0-2 (open in the paper)")
    h_layers: int = config_field(2, min=1, help="layers of the MLP H: i -> initial memories of cells 0-2")
    t_layers: int = config_field(4, min=1, help="layers of the MLP T: l_k -> R^w_dim")
    w_dim: int = config_field(512, min=1, help="the StyleGAN2's w size")
    num_ws: int = config_field(18, min=1, help="W+ layers of the StyleGAN2 (18 at 1024x1024, 14 at 256x256)")
    lr_multiplier: float = config_field(1.0, min=1e-8, help="lr multiplier of H's and T's layers")
    pca_components: int = config_field(32, min=1, help="principal components of the training subject's W+ latents "
                                                       "kept for the offset trick (paper: 32)")
    memory_gate_bias: float = config_field(3.0, help="added at init to the bias of the top cell's update gate: at 3 "
                                                     "the cell keeps ~95% of l per step (vgz; 0: PyTorch's init)")

    presets = {
        "paper": {},
        "paper256": {"num_ws": 14},
        "tiny": {"z_dim": 8, "hidden_dim": 16, "t_layers": 2, "w_dim": 32, "num_ws": 6, "pca_components": 32},
    }


def _mlp(dims: list[int], lr_multiplier: float) -> nn.Sequential:
    return nn.Sequential(*(FullyConnectedLayer(a, b, activation="lrelu", lr_multiplier=lr_multiplier)
                           for a, b in zip(dims[:-1], dims[1:])))


@register("motion", "stylevideogan")
class MotionGenerator(ModelMixin):
    """StyleVideoGAN's generator: ``i [B, z_dim]``, ``s [B, T - 1, z_dim]`` -> W+ ``[B, T, num_ws, w_dim]``."""

    config_class = MotionGeneratorConfig

    def __init__(self, config: MotionGeneratorConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        cfg: MotionGeneratorConfig = self.config
        self.H = _mlp([cfg.z_dim] * cfg.h_layers + [3 * cfg.hidden_dim], cfg.lr_multiplier)
        sizes = [cfg.hidden_dim] * 3 + [cfg.z_dim]
        self.P = nn.ModuleList(nn.GRUCell(inp, hid) for inp, hid in zip([cfg.z_dim] + sizes[:-1], sizes))
        with torch.no_grad():
            # PyTorch orders the gates (r, z, n); h' = (1 - z) n + z h. A mostly closed top gate makes the
            # first trajectories smooth and lets l_0 = i fade over steps instead of being replaced at once.
            top = self.P[-1]
            top.bias_ih[top.hidden_size:2 * top.hidden_size] += cfg.memory_gate_bias
        self.T = _mlp([cfg.z_dim] + [cfg.w_dim] * cfg.t_layers, cfg.lr_multiplier)
        # One affine map per W+ layer, stored together: affine_weight[n] maps T's output to layer n.
        self.affine_weight = nn.Parameter(torch.randn([cfg.num_ws, cfg.w_dim, cfg.w_dim]) / cfg.w_dim ** 0.5)
        self.affine_bias = nn.Parameter(torch.zeros([cfg.num_ws, cfg.w_dim]))
        # The training subject's W+ PCA (the offset trick), set by fit_subject from the training latents:
        # its mean, orthonormal components (zero rows where fewer exist) and the frames it was fitted on.
        self.register_buffer("subject_mean", torch.zeros([cfg.num_ws, cfg.w_dim]))
        self.register_buffer("subject_basis", torch.zeros([cfg.pca_components, cfg.num_ws, cfg.w_dim]))
        self.register_buffer("subject_frames", torch.zeros([], dtype=torch.int64))

    def initial_state(self, i: torch.Tensor) -> list[torch.Tensor]:
        """The GRU memories at step 0: ``H(i)`` for cells 0-2, ``i`` itself for the top cell."""
        cfg = self.config
        if i.ndim != 2 or i.shape[1] != cfg.z_dim:
            raise ValueError(f"i must be [batch, {cfg.z_dim}], got {tuple(i.shape)}")
        return [*self.H(i).split(cfg.hidden_dim, dim=1), i]

    def to_ws(self, l: torch.Tensor) -> torch.Tensor:
        """``l [B, T, z_dim]`` -> W+ latents ``[B, T, num_ws, w_dim]``."""
        x = rearrange(self.T(rearrange(l, "b t d -> (b t) d")), "(b t) d -> b t d", b=l.shape[0])
        return torch.einsum("btd,nod->btno", x, self.affine_weight) + self.affine_bias

    def codes(self, i: torch.Tensor, s: torch.Tensor, state: list[torch.Tensor] | None = None
              ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The GRU outputs ``l [B, T, z_dim]`` and the state they end in (see :meth:`forward` for ``s``
        and ``state``): ``l_0 = i`` then one ``l`` per step."""
        cfg = self.config
        if s.ndim != 3 or s.shape[0] != i.shape[0] or s.shape[2] != cfg.z_dim:
            raise ValueError(f"s must be [{i.shape[0]}, steps, {cfg.z_dim}], got {tuple(s.shape)}")
        fresh = state is None
        h = self.initial_state(i) if fresh else list(state)
        ls = [h[-1]] if fresh else []  # l_0 = i
        for k in range(s.shape[1]):
            x = s[:, k]
            for j, cell in enumerate(self.P):
                h[j] = gru_cell(cell, x, h[j])
                x = h[j]
            ls.append(h[-1])
        if not ls:
            raise ValueError("no steps: pass s with at least one step to continue a trajectory")
        return torch.stack(ls, dim=1), h

    def forward(self, i: torch.Tensor, s: torch.Tensor, state: list[torch.Tensor] | None = None,
                return_state: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Trajectories (and, with ``return_state``, the state they end in).

        Args:
            i: ``[B, z_dim]`` content codes.
            s: ``[B, K, z_dim]`` step noise: K steps after the first (``T = K + 1`` latents), or, when
                continuing from ``state``, K more steps (``T = K`` latents).
            state: the memories a previous call returned, to continue its trajectory.

        Returns:
            ``ws [B, T, num_ws, w_dim]``, or ``(ws, state)`` with ``return_state``.
        """
        l, h = self.codes(i, s, state)
        ws = self.to_ws(l)
        return (ws, h) if return_state else ws

    # ----------------------------------------------------------------------------- the offset trick

    @torch.no_grad()
    def fit_subject(self, latents: Iterable[torch.Tensor], *, seed: int = 0) -> int:
        """Fit the training subject's PCA (``subject_mean``, ``subject_basis``) to W+ latents: an iterable
        of ``[T, num_ws, w_dim]`` sequences (every frame of the training videos). Returns the frame count.

        W+ is flattened (``num_ws * w_dim`` values per frame) and centred on the mean; the components
        are the top right singular vectors (randomized SVD, seeded, so refitting gives the same basis).
        """
        cfg = self.config
        frames = []
        for ws in latents:
            if ws.ndim != 3 or tuple(ws.shape[1:]) != (cfg.num_ws, cfg.w_dim):
                raise ValueError(f"latents must be [T, {cfg.num_ws}, {cfg.w_dim}], got {tuple(ws.shape)}")
            frames.append(ws.reshape(ws.shape[0], -1).to(torch.float32))
        if not frames:
            raise ValueError("no latents to fit the subject's PCA to")
        x = torch.cat(frames).to(self.subject_mean.device)
        mean = x.mean(dim=0)
        centred = x - mean
        k = min(cfg.pca_components, max(x.shape[0] - 1, 0), x.shape[1])
        basis = torch.zeros([cfg.pca_components, x.shape[1]], device=x.device)
        if k > 0:
            with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
                torch.manual_seed(seed)
                _, _, v = torch.svd_lowrank(centred, q=min(k + 10, *centred.shape), niter=6)
            basis[:k] = v[:, :k].T
        self.subject_mean.copy_(mean.view(cfg.num_ws, cfg.w_dim))
        self.subject_basis.copy_(basis.view(cfg.pca_components, cfg.num_ws, cfg.w_dim))
        self.subject_frames.fill_(x.shape[0])
        return x.shape[0]

    @torch.no_grad()
    def start_at_subject(self, latents: Iterable[torch.Tensor], *, seed: int = 0, samples: int = 256) -> None:
        """Initialise the affine maps so that the first trajectories lie on the training subject (vgz's choice;
        the paper does not say how G starts): every frame ``w = mean + U^T diag(spread) z``, in the span of
        the fitted PCA (:meth:`fit_subject` first), with the subject's spread along each component, where
        ``z`` is T's output projected on random directions and scaled to unit variance (measured over
        ``samples`` random trajectories of 25 steps). ``latents`` are the ``[T, num_ws, w_dim]`` sequences
        :meth:`fit_subject` took."""
        cfg = self.config
        if int(self.subject_frames) == 0:
            raise ValueError("start_at_subject needs the subject's PCA: call fit_subject first")
        basis = self.subject_basis.flatten(1)  # [K, num_ws * w_dim]
        coords = torch.cat([(ws.to(basis).flatten(1) - self.subject_mean.flatten()) @ basis.T for ws in latents])
        spread = coords.std(dim=0) if coords.shape[0] > 1 else torch.zeros(basis.shape[0]).to(basis)
        g = torch.Generator().manual_seed(seed)
        i = torch.randn([samples, cfg.z_dim], generator=g).to(basis)
        s = torch.randn([samples, 24, cfg.z_dim], generator=g).to(basis)
        x = self.T(rearrange(self.codes(i, s)[0], "b t d -> (b t) d"))
        directions = F.normalize(torch.randn([basis.shape[0], cfg.w_dim], generator=g), dim=1).to(basis)
        centre = x.mean(dim=0)
        scale = ((x - centre) @ directions.T).std(dim=0).clamp_min(1e-8)
        weight = basis.T @ (directions * (spread / scale)[:, None])  # [num_ws * w_dim, w_dim]
        self.affine_weight.copy_(weight.view(cfg.num_ws, cfg.w_dim, cfg.w_dim))
        self.affine_bias.copy_(self.subject_mean - (weight @ centre).view(cfg.num_ws, cfg.w_dim))

    def project_subject(self, ws: torch.Tensor) -> torch.Tensor:
        """``w' = mean + U U^T (w - mean)``: W+ latents ``[..., num_ws, w_dim]`` projected onto the training
        subject's PCA subspace (the training subject in the same state)."""
        if int(self.subject_frames) == 0:
            raise ValueError("this motion generator has no PCA of its training subject (subject_frames is 0): the "
                             "offset trick needs one; fit it with fit_subject(training latents)")
        basis = self.subject_basis.flatten(1)  # [K, num_ws * w_dim]
        centred = (ws - self.subject_mean).flatten(-2)
        return (centred @ basis.T @ basis).view_as(ws) + self.subject_mean

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        cfg = self.config
        return {"i": torch.randn([batch_size, cfg.z_dim], generator=generator),
                "s": torch.randn([batch_size, 4, cfg.z_dim], generator=generator)}
