"""Adaptive discriminator augmentation (ADA) for images and video clips.

:class:`AugmentPipe` is the differentiable augmentation pipeline of "Training Generative
Adversarial Networks with Limited Data" (Karras et al., 2020), for clips ``[B, T, C, H, W]`` as
StyleGAN-V uses it: every transform's parameters are drawn once per clip and applied to all of
its frames, so D never sees augmentation flicker it could learn to tell apart from real motion.

Stages, in order (each transform applied to a clip with probability ``multiplier * p``):

1. pixel blitting: x-flip, 90-degree rotations, integer translation;
2. general geometry: isotropic scale, pre-rotation, anisotropic scale, post-rotation, fractional
   translation; executed as reflect padding, 2x upsampling with the sym6 wavelet filter, bilinear
   resampling and 2x downsampling (one resampling for the whole composed transform);
3. colour: brightness, contrast, luma flip, hue rotation, saturation, as one 4x4 matrix;
4. image-space filtering: random gains of four octave bands;
5. corruptions: additive Gaussian noise, cutout.

``p`` is a buffer that the trainer's ADA heuristic adjusts. Random numbers are drawn with the
same calls, shapes and order as NVlabs' ``AugmentPipe`` (batch size = number of clips), so under
the same seed the output equals the official one on a clip reshaped to ``[B, T*C, H, W]`` (the
way StyleGAN-V's loss feeds its pipe); ``tests/test_augment.py`` checks this against a fixture.
Additive noise is therefore drawn per pixel of every frame (its strength per clip), as there.
Grey clips (``C = 1``) get the official grey-image colour formula per frame (StyleGAN-V's
reshape would take ``T`` grey frames for RGB channels when ``T`` is a multiple of 3).

Double backward (R1 on augmented reals) works: resampling goes through :func:`grid_sample`,
whose input gradient is itself differentiable; every other op is plain autograd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from vgz.configs import ComponentConfig, config_field
from vgz.layers.upfirdn2d import downsample2d, setup_filter, upsample2d

__all__ = ["AugmentConfig", "AugmentPipe", "grid_sample", "AUGMENT_PRESETS"]

# Low-pass taps of two symlet wavelets (standard coefficients, as listed by PyWavelets).
_SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
_SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
         0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
         -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)

#: The probability multipliers (fields of AugmentConfig), in pipeline order.
_MULTIPLIERS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout")
_GEOMETRIC = _MULTIPLIERS[:7]

_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)

#: Named pipelines of StyleGAN2-ADA / StyleGAN-V (``--augpipe``).
AUGMENT_PRESETS: dict[str, dict[str, Any]] = {
    "blit": _BLIT,
    "geom": _GEOM,
    "color": _COLOR,
    "filter": dict(imgfilter=1),
    "noise": dict(noise=1),
    "cutout": dict(cutout=1),
    "bg": {**_BLIT, **_GEOM},
    "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcf": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1},
    "bgcfn": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1},
    "bgcfnc": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1, "cutout": 1},
    "easy": dict(xflip=1, xint=1, scale=1, rotate=0.5, rotate_max=0.1, xfrac=1, noise=0.1, cutout=1, cutout_size=0.25),
    "bgc_norgb": {**_BLIT, **_GEOM, "cutout": 1},
}


def _mult(default: float = 0.0, what: str = "") -> Any:
    return config_field(default, min=0, help=f"probability multiplier of {what} (applied with multiplier * p)")


@dataclass
class AugmentConfig(ComponentConfig):
    """Config of :class:`AugmentPipe`: probability multipliers (0 = off) and strengths.

    Names and defaults are those of the official ``AugmentPipe``; every transform is off by
    default, the presets are the official ``augpipe`` specs (``"bgc"`` is the ADA default).
    """

    # Pixel blitting.
    xflip: float = _mult(what="x-flip")
    rotate90: float = _mult(what="90-degree rotations")
    xint: float = _mult(what="integer translation")
    xint_max: float = config_field(0.125, min=0, max=1, help="integer translation range, relative to the size")
    # General geometry.
    scale: float = _mult(what="isotropic scaling")
    rotate: float = _mult(what="arbitrary rotation (pre or post)")
    aniso: float = _mult(what="anisotropic scaling")
    xfrac: float = _mult(what="fractional translation")
    scale_std: float = config_field(0.2, min=0, help="log2 std of isotropic scaling")
    rotate_max: float = config_field(1.0, min=0, help="rotation range, 1 = full circle")
    aniso_std: float = config_field(0.2, min=0, help="log2 std of anisotropic scaling")
    xfrac_std: float = config_field(0.125, min=0, help="std of fractional translation, relative to the size")
    # Colour.
    brightness: float = _mult(what="brightness")
    contrast: float = _mult(what="contrast")
    lumaflip: float = _mult(what="luma flip")
    hue: float = _mult(what="hue rotation")
    saturation: float = _mult(what="saturation")
    brightness_std: float = config_field(0.2, min=0, help="std of the brightness offset")
    contrast_std: float = config_field(0.5, min=0, help="log2 std of contrast")
    hue_max: float = config_field(1.0, min=0, help="hue rotation range, 1 = full circle")
    saturation_std: float = config_field(1.0, min=0, help="log2 std of saturation")
    # Image-space filtering.
    imgfilter: float = _mult(what="image-space filtering")
    imgfilter_bands: tuple[float, float, float, float] = config_field(
        (1.0, 1.0, 1.0, 1.0), min=0, help="multipliers of the four frequency bands, lowest first")
    imgfilter_std: float = config_field(1.0, min=0, help="log2 std of a band's gain")
    # Corruptions.
    noise: float = _mult(what="additive RGB noise")
    cutout: float = _mult(what="cutout")
    noise_std: float = config_field(0.1, min=0, help="std of the noise strength")
    cutout_size: float = config_field(0.5, min=0, max=1, help="cutout square size, relative to the size")

    presets = AUGMENT_PRESETS


# ------------------------------------------------------------------------------------ grid_sample


class _GridSample(torch.autograd.Function):
    """Bilinear, zero-padded, ``align_corners=False`` sampling of ``x`` at a constant grid."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, grid: Tensor) -> Tensor:
        ctx.save_for_backward(x, grid)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, None]:
        x, grid = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            raise RuntimeError("vgz.training.augment.grid_sample: the grid gets no gradient; detach it")
        if not ctx.needs_input_grad[0]:
            return None, None
        # x enters the input gradient only through its shape (the op is linear in x): detach it.
        return _GridSampleInputGrad.apply(grad_out, x.detach(), grid), None


class _GridSampleInputGrad(torch.autograd.Function):
    """``grad_out -> d(grid_sample(x, grid))/dx^T grad_out``; linear in ``grad_out``."""

    @staticmethod
    def forward(ctx: Any, grad_out: Tensor, x: Tensor, grid: Tensor) -> Tensor:
        ctx.save_for_backward(grid)
        # Under autocast the gradient can arrive in half precision while x and the grid are float32:
        # the op takes one dtype, x's (the gradient of x has x's dtype anyway).
        # interpolation 0 = bilinear, padding 0 = zeros; output_mask skips the grid gradient.
        grad_x, _ = torch.ops.aten.grid_sampler_2d_backward(grad_out.to(x.dtype), x, grid.to(x.dtype), 0, 0, False,
                                                            [True, False])
        return grad_x

    @staticmethod
    def backward(ctx: Any, grad_grad_x: Tensor) -> tuple[Tensor | None, None, None]:
        (grid,) = ctx.saved_tensors
        # The adjoint of the adjoint is the sampling itself.
        if not ctx.needs_input_grad[0]:
            return None, None, None
        return _GridSample.apply(grad_grad_x, grid.to(grad_grad_x.dtype)), None, None


def grid_sample(x: Tensor, grid: Tensor) -> Tensor:
    """``F.grid_sample(x, grid, 'bilinear', 'zeros', align_corners=False)`` with gradients of any
    order with respect to ``x`` (PyTorch's own op has long lacked a double backward, and its
    backward also computes the grid gradient, never needed here). ``grid`` must not require grad.

    Args:
        x: ``[N, C, H_in, W_in]``.
        grid: ``[N, H_out, W_out, 2]`` sampling positions in ``[-1, 1]``, same dtype as ``x``.

    Returns:
        ``[N, C, H_out, W_out]``.
    """
    if x.ndim != 4 or grid.ndim != 4:
        raise ValueError(f"grid_sample expects x [N, C, H, W] and grid [N, H, W, 2], "
                         f"got {tuple(x.shape)} and {tuple(grid.shape)}")
    return _GridSample.apply(x, grid)


# ------------------------------------------------------------------------------------ matrices
#
# Homogeneous transforms, one per clip: every entry is a [B] tensor or a number. The geometric
# matrices map *output* pixels to *input* pixels (inverse transforms). Entries are computed with
# exactly the float32 operations of the official pipe: the padding it derives is a ceil() of
# transformed corners, which a 1-ulp difference can move.


def _matrix(rows: Sequence[Sequence[Tensor | float]], ref: Tensor) -> Tensor:
    """Rows of per-clip entries ``[B]`` (or numbers) -> ``[B, rows, cols]``."""
    entries = [e if isinstance(e, Tensor) else torch.full_like(ref, e) for row in rows for e in row]
    return rearrange(torch.stack(entries, dim=-1), "... (r c) -> ... r c", r=len(rows))


def _const(rows: Sequence[Sequence[float]], device: torch.device) -> Tensor:
    """A constant matrix ``[rows, cols]`` (float32)."""
    return torch.as_tensor(np.asarray(rows, dtype=np.float64), dtype=torch.float32, device=device)


def _translate2d(tx: Tensor, ty: Tensor) -> Tensor:
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], ref=tx)


def _scale2d(sx: Tensor, sy: Tensor | float) -> Tensor:
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], ref=sx)


def _rotate2d(theta: Tensor) -> Tensor:
    """Counter-clockwise rotation by ``theta`` (``-sin`` as ``sin(-theta)``, as the official)."""
    cos, sin = torch.cos(theta), torch.sin(theta)
    return _matrix([[cos, torch.sin(-theta), 0], [sin, cos, 0], [0, 0, 1]], ref=theta)


def _const_scale2d(sx: float, sy: float, device: torch.device) -> Tensor:
    return _const([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], device)


def _const_translate2d(tx: float, ty: float, device: torch.device) -> Tensor:
    return _const([[1, 0, tx], [0, 1, ty], [0, 0, 1]], device)


def _translate3d(t: Tensor) -> Tensor:
    """Add ``t`` to all three colour channels: ``[B, 4, 4]``."""
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], ref=t)


def _scale3d(s: Tensor) -> Tensor:
    """Scale all three colour channels by ``s``: ``[B, 4, 4]``."""
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], ref=s)


def _rotate_about(v: Tensor, theta: Tensor) -> Tensor:
    """Rotation by ``theta [B]`` about the unit axis ``v [4]`` (Rodrigues): ``[B, 4, 4]``."""
    vx, vy, vz = v[0], v[1], v[2]
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _matrix([
        [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
        [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
        [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
        [0, 0, 0, 1],
    ], ref=theta)


# ------------------------------------------------------------------------------------ filters


def _octave_filter_bank(taps: Sequence[float], num_bands: int = 4) -> np.ndarray:
    """Symmetric 1-D filters splitting a signal into octave bands, lowest first: ``[bands, taps']``.

    Built from an orthogonal wavelet's low-pass ``h``: band filters are the power-complementary
    half-band pair ``h(z)h(1/z)/2`` (low) and ``h(-z)h(-1/z)/2`` (high) iterated on the low band,
    so the bands sum to a unit impulse (unit gains = identity).
    """
    lo = np.asarray(taps, dtype=np.float64)
    hi = lo * (-1.0) ** np.arange(lo.size)
    lo2, hi2 = np.convolve(lo, lo[::-1]) / 2, np.convolve(hi, hi[::-1]) / 2
    bands = [np.ones(1)]
    for _ in range(num_bands - 1):
        # Move the existing bands one octave down (dilate by 2, then low-pass) and add the new top band.
        dilated = [np.stack([b, np.zeros_like(b)], axis=-1).reshape(-1)[:-1] for b in bands]
        bands = [np.convolve(b, lo2) for b in dilated]
        bands.append(np.pad(hi2, (bands[0].size - hi2.size) // 2))
    return np.stack(bands)


# ------------------------------------------------------------------------------------ the pipe


class AugmentPipe(nn.Module):
    """ADA augmentation of clips ``[B, T, C, H, W]`` (or images ``[N, C, H, W]``) in ``[-1, 1]``.

    Build from a config, a preset name or config fields::

        pipe = AugmentPipe(AugmentConfig.from_preset("bgc"))
        pipe = AugmentPipe("bgc", xflip=0)
        pipe.p.fill_(0.2)   # ADA's overall probability (starts at 1, like the official pipe)

    Buffers: ``p`` (scalar float32, saved in the state dict), the two fixed filters (not saved).
    """

    def __init__(self, config: AugmentConfig | dict | str | None = None, **overrides: Any):
        super().__init__()
        if config is None:
            config = AugmentConfig(**overrides)
        elif isinstance(config, str):
            config = AugmentConfig.from_preset(config, **overrides)
        elif isinstance(config, dict):
            config = AugmentConfig.from_dict({**config, **overrides})
        elif isinstance(config, AugmentConfig):
            config = config.replace(**overrides) if overrides else config
        else:
            raise TypeError(f"AugmentPipe takes an AugmentConfig, a dict or a preset name, got {type(config).__name__}")
        self.config: AugmentConfig = config
        self.register_buffer("p", torch.ones([]))
        # Orthogonal low-pass for the 2x up/down sampling around the geometric resampling.
        self.register_buffer("geom_filter", setup_filter(_SYM6), persistent=False)
        self.register_buffer("band_filters", torch.as_tensor(_octave_filter_bank(_SYM2), dtype=torch.float32),
                             persistent=False)

    def extra_repr(self) -> str:
        on = [name for name in _MULTIPLIERS if getattr(self.config, name) > 0]
        return f"p={float(self.p):.4g}, transforms={on}"

    # --------------------------------------------------------------------------------- forward

    def forward(self, x: Tensor) -> Tensor:
        """Augment a batch.

        Args:
            x: ``[B, T, C, H, W]`` clips or ``[N, C, H, W]`` images, values in ``[-1, 1]``;
                colour transforms need ``C`` = 3 or 1.

        Returns:
            The same shape. Each transform's parameters are drawn once per clip (image) and applied
            identically to all ``T`` frames. With ``p == 0`` (or nothing enabled) ``x`` itself;
            reading ``p`` for that check synchronises with the device once per call.
        """
        if x.ndim == 4:
            return self.forward(x.unsqueeze(1)).squeeze(1)
        if x.ndim != 5:
            raise ValueError(f"AugmentPipe expects [B, T, C, H, W] or [N, C, H, W], got shape {tuple(x.shape)}")
        cfg = self.config
        if not any(getattr(cfg, name) > 0 for name in _MULTIPLIERS) or float(self.p) == 0:
            return x  # nothing can happen: skip the random draws and the resampling
        x = self._geometry(x)
        x = self._color(x)
        if cfg.imgfilter > 0:
            x = self._filter(x)
        return self._corrupt(x)

    # --------------------------------------------------------------------------------- stages

    def _draw_geometry(self, b: int, h: int, w: int, device: torch.device) -> Tensor | None:
        """The composed inverse transform, output pixel -> input pixel, ``[B, 3, 3]`` (None: identity)."""
        cfg, p = self.config, self.p
        if not any(getattr(cfg, k) > 0 for k in _GEOMETRIC):
            return None

        def rand(*shape: int) -> Tensor:
            return torch.rand(shape, device=device)

        def randn(*shape: int) -> Tensor:
            return torch.randn(shape, device=device)

        g = torch.eye(3, device=device)
        if cfg.xflip > 0:
            flip = torch.floor(rand(b) * 2)
            flip = torch.where(rand(b) < cfg.xflip * p, flip, torch.zeros_like(flip))
            g = g @ _scale2d((1 - 2 * flip).reciprocal(), 1.0)
        if cfg.rotate90 > 0:
            quarters = torch.floor(rand(b) * 4)
            quarters = torch.where(rand(b) < cfg.rotate90 * p, quarters, torch.zeros_like(quarters))
            g = g @ _rotate2d(np.pi / 2 * quarters)
        if cfg.xint > 0:
            t = (rand(b, 2) * 2 - 1) * cfg.xint_max
            t = torch.where(rand(b, 1) < cfg.xint * p, t, torch.zeros_like(t))
            g = g @ _translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h))

        if cfg.scale > 0:
            s = torch.exp2(randn(b) * cfg.scale_std)
            s = torch.where(rand(b) < cfg.scale * p, s, torch.ones_like(s))
            g = g @ _scale2d(s.reciprocal(), s.reciprocal())
        # Pre- and post-rotation each with p_rot, so that P(at least one) = rotate * p.
        p_rot = 1 - torch.sqrt((1 - cfg.rotate * p).clamp(0, 1))
        if cfg.rotate > 0:
            theta = (rand(b) * 2 - 1) * np.pi * cfg.rotate_max
            theta = torch.where(rand(b) < p_rot, theta, torch.zeros_like(theta))
            g = g @ _rotate2d(theta)
        if cfg.aniso > 0:
            s = torch.exp2(randn(b) * cfg.aniso_std)
            s = torch.where(rand(b) < cfg.aniso * p, s, torch.ones_like(s))
            inv = s.reciprocal()
            g = g @ _scale2d(inv, inv.reciprocal())  # 1/(1/s), not s: the official's bits
        if cfg.rotate > 0:
            theta = (rand(b) * 2 - 1) * np.pi * cfg.rotate_max
            theta = torch.where(rand(b) < p_rot, theta, torch.zeros_like(theta))
            g = g @ _rotate2d(theta)
        if cfg.xfrac > 0:
            t = randn(b, 2) * cfg.xfrac_std
            t = torch.where(rand(b, 1) < cfg.xfrac * p, t, torch.zeros_like(t))
            g = g @ _translate2d(-(t[:, 0] * w), -(t[:, 1] * h))
        return g

    def _geometry(self, x: Tensor) -> Tensor:
        b, t, c, h, w = x.shape
        dev = x.device
        g = self._draw_geometry(b, h, w, dev)
        if g is None:
            return x
        taps = self.geom_filter.shape[0]
        pad = taps // 4  # filter support at the input resolution, each side

        # Reflect-pad just enough that no output pixel samples outside the image (plus the filter's
        # support), measured on the transformed corners of all clips at once.
        cx, cy = (w - 1) / 2, (h - 1) / 2
        corners = _const([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], dev).T  # [xyz, corner]
        xy = (g @ corners)[:, :2, :]  # [B, xy, corner]
        reach = torch.cat([-xy, xy], dim=1).amax(dim=(0, 2))  # [x0, y0, x1, y1]
        reach = reach + _const([pad * 2 - cx, pad * 2 - cy] * 2, dev)
        reach = torch.minimum(reach.clamp(min=0), _const([w - 1, h - 1] * 2, dev))
        mx0, my0, mx1, my1 = (int(v) for v in reach.ceil().to(torch.int32).tolist())

        frames = rearrange(x, "b t c h w -> b (t c) h w")  # one grid per clip, shared by its frames
        frames = F.pad(frames, [mx0, mx1, my0, my1], mode="reflect")
        g = _const_translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, dev) @ g  # re-centre on the padded image

        # Resample at 2x: pixel centres move (x + 0.5) * 2 - 0.5.
        frames = upsample2d(frames, self.geom_filter, up=2)
        g = _const_scale2d(2, 2, dev) @ g @ _const_scale2d(0.5, 0.5, dev)
        g = _const_translate2d(-0.5, -0.5, dev) @ g @ _const_translate2d(0.5, 0.5, dev)

        # Output: the image plus `pad` at 2x, cropped by the downsampling. Pixel units -> [-1, 1].
        out_h, out_w = (h + pad * 2) * 2, (w + pad * 2) * 2
        in_h, in_w = frames.shape[2], frames.shape[3]
        g = _const_scale2d(2 / in_w, 2 / in_h, dev) @ g @ _const_scale2d(out_w / 2, out_h / 2, dev)
        grid = F.affine_grid(g[:, :2, :].to(frames.dtype), [b, t * c, out_h, out_w], align_corners=False)
        frames = grid_sample(frames, grid)
        frames = downsample2d(frames, self.geom_filter, down=2, padding=-pad * 2, flip_filter=True)
        return rearrange(frames, "b (t c) h w -> b t c h w", t=t)

    def _color(self, x: Tensor) -> Tensor:
        cfg, p = self.config, self.p
        b, c, dev = x.shape[0], x.shape[2], x.device
        multi = c > 1  # hue and saturation need colour
        if not (cfg.brightness > 0 or cfg.contrast > 0 or cfg.lumaflip > 0
                or (multi and (cfg.hue > 0 or cfg.saturation > 0))):
            return x

        def rand(*shape: int) -> Tensor:
            return torch.rand(shape, device=dev)

        def randn(*shape: int) -> Tensor:
            return torch.randn(shape, device=dev)

        eye = torch.eye(4, device=dev)
        m = eye  # colour_out = m @ [r, g, b, 1]
        if cfg.brightness > 0:
            shift = randn(b) * cfg.brightness_std
            shift = torch.where(rand(b) < cfg.brightness * p, shift, torch.zeros_like(shift))
            m = _translate3d(shift) @ m
        if cfg.contrast > 0:
            gain = torch.exp2(randn(b) * cfg.contrast_std)
            gain = torch.where(rand(b) < cfg.contrast * p, gain, torch.ones_like(gain))
            m = _scale3d(gain) @ m
        luma = _const(np.asarray([1, 1, 1, 0]) / np.sqrt(3), dev)  # unit luma axis
        luma_proj = torch.outer(luma, luma)
        if cfg.lumaflip > 0:
            flip = torch.floor(rand(b, 1, 1) * 2)
            flip = torch.where(rand(b, 1, 1) < cfg.lumaflip * p, flip, torch.zeros_like(flip))
            m = (eye - 2 * luma_proj * flip) @ m  # Householder reflection along the luma axis
        if cfg.hue > 0 and multi:
            theta = (rand(b) * 2 - 1) * np.pi * cfg.hue_max
            theta = torch.where(rand(b) < cfg.hue * p, theta, torch.zeros_like(theta))
            m = _rotate_about(luma, theta) @ m
        if cfg.saturation > 0 and multi:
            sat = torch.exp2(randn(b, 1, 1) * cfg.saturation_std)
            sat = torch.where(rand(b, 1, 1) < cfg.saturation * p, sat, torch.ones_like(sat))
            m = (luma_proj + (eye - luma_proj) * sat) @ m  # scale the chroma plane only

        m = m.to(x.dtype)
        if c == 3:
            return torch.einsum("bij,btjhw->btihw", m[:, :3, :3], x) + m[:, None, :3, 3, None, None]
        if c == 1:
            # Grey frames: the mean of the RGB outputs for r = g = b.
            row = m[:, :3, :].mean(dim=1)  # [B, 4]
            return x * row[:, None, None, None, None, :3].sum(dim=-1) + row[:, None, None, None, None, 3]
        raise ValueError(f"AugmentPipe colour transforms need RGB (C=3) or grey (C=1) frames, got C={c}")

    def _filter(self, x: Tensor) -> Tensor:
        cfg, p = self.config, self.p
        b, t, c, h, w = x.shape
        dev = x.device
        bank = self.band_filters.float()  # [bands, taps]; float32 even after .half()
        num_bands, taps = bank.shape
        pad = taps // 2
        if min(h, w) <= pad:
            raise ValueError(f"AugmentPipe imgfilter needs frames larger than {pad} pixels (reflect padding), "
                             f"got {h}x{w}")
        # The gains normalise the power expected of natural images (1/f spectrum: the lowest band has most).
        expected_power = _const(np.array([10, 1, 1, 1]) / 13, dev)
        gains = torch.ones([b, num_bands], device=dev)
        for i, band_mult in enumerate(cfg.imgfilter_bands):
            g_i = torch.exp2(torch.randn([b], device=dev) * cfg.imgfilter_std)
            g_i = torch.where(torch.rand([b], device=dev) < cfg.imgfilter * p * band_mult, g_i, torch.ones_like(g_i))
            one_band = torch.ones([b, num_bands], device=dev)
            one_band[:, i] = g_i
            one_band = one_band / (expected_power * one_band.square()).sum(dim=-1, keepdim=True).sqrt()
            gains = gains * one_band
        kernel = (gains @ bank).to(x.dtype)  # [B, taps], symmetric
        kernel = kernel.repeat_interleave(t * c, dim=0)  # one depthwise kernel per (clip, frame, channel)

        # Separable depthwise convolution of every frame channel with its clip's kernel.
        frames = rearrange(x, "b t c h w -> 1 (b t c) h w")
        frames = F.pad(frames, [pad] * 4, mode="reflect")
        frames = F.conv2d(frames, rearrange(kernel, "n k -> n 1 1 k"), groups=b * t * c)
        frames = F.conv2d(frames, rearrange(kernel, "n k -> n 1 k 1"), groups=b * t * c)
        return rearrange(frames, "1 (b t c) h w -> b t c h w", b=b, t=t)

    def _corrupt(self, x: Tensor) -> Tensor:
        cfg, p = self.config, self.p
        b, t, c, h, w = x.shape
        dev = x.device
        if cfg.noise > 0:
            sigma = torch.randn([b, 1, 1, 1], device=dev).abs() * cfg.noise_std
            sigma = torch.where(torch.rand([b, 1, 1, 1], device=dev) < cfg.noise * p, sigma, torch.zeros_like(sigma))
            # Drawn as [B, T*C, H, W] (StyleGAN-V's layout) to reproduce its random stream.
            noise = torch.randn([b, t * c, h, w], device=dev) * sigma
            x = x + rearrange(noise, "b (t c) h w -> b t c h w", t=t).to(x.dtype)
        if cfg.cutout > 0:
            size = torch.full([b, 2, 1, 1, 1], cfg.cutout_size, device=dev)
            size = torch.where(torch.rand([b, 1, 1, 1, 1], device=dev) < cfg.cutout * p, size, torch.zeros_like(size))
            centre = torch.rand([b, 2, 1, 1, 1], device=dev)
            # Keep a pixel when its centre is outside the square in x or in y.
            px = (torch.arange(w, device=dev).reshape(1, 1, 1, w) + 0.5) / w
            py = (torch.arange(h, device=dev).reshape(1, 1, h, 1) + 0.5) / h
            keep = ((px - centre[:, 0]).abs() >= size[:, 0] / 2) | ((py - centre[:, 1]).abs() >= size[:, 1] / 2)
            x = x * rearrange(keep, "b 1 h w -> b 1 1 h w").to(x.dtype)
        return x
