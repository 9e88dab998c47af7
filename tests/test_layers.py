"""Shared layers against independent references (scipy, direct formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from vgz.layers import (
    Conv2dLayer,
    FourierFeatures,
    FullyConnectedLayer,
    MinibatchStdLayer,
    bias_act,
    conv2d_resample,
    downsample2d,
    log_spaced_frequencies,
    modulated_conv2d,
    noise_input,
    normalize_2nd_moment,
    setup_filter,
    upfirdn2d,
    upsample2d,
)


def _np_upfirdn1d(a: np.ndarray, f: np.ndarray, up: int, down: int, pad: tuple[int, int]) -> np.ndarray:
    """Along the last axis: insert zeros, pad, true convolution ('valid'), keep every down-th."""
    ups = np.zeros(a.shape[:-1] + (a.shape[-1] * up,))
    ups[..., ::up] = a
    ups = np.pad(ups, [(0, 0)] * (a.ndim - 1) + [pad])
    rows = ups.reshape(-1, ups.shape[-1])
    out = np.stack([np.convolve(r, f, mode="valid") for r in rows]).reshape(ups.shape[:-1] + (-1,))
    return out[..., ::down]


def _np_upfirdn2d(x: np.ndarray, f: np.ndarray, up: int, down: int, pad: tuple[int, int]) -> np.ndarray:
    """Separable 2-D reference: the 1-D one along width, then height."""
    x = _np_upfirdn1d(x, f, up, down, pad)
    return np.swapaxes(_np_upfirdn1d(np.swapaxes(x, -1, -2), f, up, down, pad), -1, -2)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2), (2, 2), (3, 1)])
def test_numpy_reference_agrees_with_scipy_upfirdn(up, down):
    taps = np.array([1.0, 2.0, 4.0, 3.0]) / 10  # asymmetric: catches a flipped filter
    row = np.random.default_rng(1).standard_normal(9)
    ref = scipy.signal.upfirdn(taps, row, up, down)  # full convolution: front padding len(taps) - 1
    ours = _np_upfirdn1d(row, taps, up, down, (3, 3))
    n = min(len(ref), len(ours))
    assert n >= len(row) * up // down
    np.testing.assert_allclose(ours[:n], ref[:n], atol=1e-12)


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 2)), (2, 1, (2, 1)), (1, 2, (1, 1)), (2, 2, (1, 2)), (3, 1, (2, 2))])
def test_upfirdn2d_matches_reference(up, down, pad):
    taps = np.array([1.0, 2.0, 4.0, 3.0])  # asymmetric: catches a flipped filter
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 7))
    f = setup_filter(list(taps))  # normalised outer product
    ours = upfirdn2d(torch.from_numpy(x).float(), f, up=up, down=down, padding=[pad[0], pad[1], pad[0], pad[1]])
    ref = _np_upfirdn2d(x, taps / taps.sum(), up, down, pad)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)


def test_separable_filter_equals_2d():
    x = torch.randn(1, 2, 9, 9)
    taps = [1, 2, 3, 4, 4, 3, 2, 1]
    sep, full = setup_filter(taps, separable=True), setup_filter(taps, separable=False)
    assert sep.ndim == 1 and full.ndim == 2
    torch.testing.assert_close(upfirdn2d(x, sep, padding=3, down=2), upfirdn2d(x, full, padding=3, down=2))


def test_resampling_keeps_constant_images_constant():
    f = setup_filter([1, 3, 3, 1])
    x = torch.ones(1, 1, 8, 8)
    up = upsample2d(x, f)
    assert up.shape == (1, 1, 16, 16)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))
    down = downsample2d(x, f)
    assert down.shape == (1, 1, 4, 4)
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))


@pytest.mark.parametrize("up,down,k", [(1, 1, 3), (2, 1, 3), (1, 2, 3), (2, 1, 1), (1, 2, 1)])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_resample_matches_upfirdn_then_conv(up, down, k, groups):
    """The fast paths equal the plain definition: upsample+filter, conv, filter+downsample."""
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 4, 8, 8)
    w = torch.randn(6, 4 // groups, k, k)
    ours = conv2d_resample(x, w, f=f, up=up, down=down, padding=k // 2, groups=groups)
    ref = upsample2d(x, f, up=up) if up > 1 else x
    if down > 1:
        ref = F.conv2d(ref, w, padding=k // 2, groups=groups)
        ref = downsample2d(ref, f, down=down)
    else:
        ref = F.conv2d(ref, w, padding=k // 2, groups=groups)
    assert ours.shape == (2, 6, 8 * up // down, 8 * up // down)
    # Fast paths filter before/after the conv: equal in the interior, away from zero-padded borders.
    b = 3
    torch.testing.assert_close(ours[..., b:-b, b:-b], ref[..., b:-b, b:-b], atol=1e-4, rtol=1e-4)


def test_bias_act_formula():
    x, b = torch.randn(2, 3, 4, 4), torch.randn(3)
    y = bias_act(x, b, act="lrelu", clamp=0.5)
    ref = (F.leaky_relu(x + b[None, :, None, None], 0.2) * math.sqrt(2)).clamp(-0.5, 0.5)
    torch.testing.assert_close(y, ref)
    assert torch.equal(bias_act(x), x)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        bias_act(x, act="gelu")


@pytest.mark.parametrize("act", ["linear", "relu", "lrelu", "tanh"])
def test_bias_act_in_place_equals_out_of_place(act):
    x, b = torch.randn(2, 3, 4, 4), torch.randn(3)
    ref = bias_act(x, b, act=act, gain=1.3, clamp=0.7)
    y = x.clone()
    out = bias_act(y, b, act=act, gain=1.3, clamp=0.7, inplace=True)
    assert torch.equal(out, ref)
    if act != "tanh":  # activations with an in-place form overwrite their input
        assert out.data_ptr() == y.data_ptr()


def test_equalized_lr_layers_keep_unit_variance():
    torch.manual_seed(0)
    fc = FullyConnectedLayer(512, 512, activation="linear")
    x = torch.randn(4096, 512)
    assert abs(fc(x).std().item() - 1) < 0.05
    conv = Conv2dLayer(64, 64, 3)
    assert abs(conv(torch.randn(8, 64, 16, 16))[..., 1:-1, 1:-1].std().item() - 1) < 0.05
    lr = FullyConnectedLayer(8, 8, lr_multiplier=0.01)
    assert lr.weight.std() > 10  # stored scaled up by 1/lr_multiplier


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_fused_equals_unfused_and_definition(up, demodulate):
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1])
    x, w, s = torch.randn(3, 4, 8, 8), torch.randn(5, 4, 3, 3), torch.randn(3, 4)
    noise = torch.randn(3, 1, 8 * up, 8 * up)
    kw = dict(up=up, padding=1, resample_filter=f, demodulate=demodulate, flip_weight=(up == 1), noise=noise)
    fused = modulated_conv2d(x, w, s, fused_modconv=True, **kw)
    unfused = modulated_conv2d(x, w, s, fused_modconv=False, **kw)
    torch.testing.assert_close(fused, unfused, atol=1e-5, rtol=1e-5)
    # Definition, sample by sample.
    for i in range(3):
        wi = w * s[i][None, :, None, None]
        if demodulate:
            wi = wi / (wi.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        ref = conv2d_resample(x[i:i + 1], wi, f=f, up=up, padding=1, flip_weight=(up == 1)) + noise[i:i + 1]
        torch.testing.assert_close(fused[i:i + 1], ref, atol=1e-5, rtol=1e-5)


def test_minibatch_std_definition():
    x = torch.randn(8, 6, 4, 4)
    y = MinibatchStdLayer(group_size=4, num_channels=2)(x)
    assert y.shape == (8, 8, 4, 4)
    # Sample i belongs to group (i % 2); channel block j = channels 3j..3j+2.
    g = x.reshape(4, 2, 2, 3, 4, 4)
    std = (g.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [2 groups, 2 blocks]
    for i in range(8):
        torch.testing.assert_close(y[i, 6:, 0, 0], std[i % 2])
    whole = MinibatchStdLayer(group_size=None)(x)
    torch.testing.assert_close(whole[:, -1, 0, 0], (x.var(dim=0, unbiased=False) + 1e-8).sqrt().mean().expand(8))
    with pytest.raises(ValueError, match="not divisible"):
        MinibatchStdLayer(group_size=3)(x)


def test_noise_modes():
    const, strength = torch.randn(8, 8), torch.tensor(0.5)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a = noise_input("random", 2, 8, const, strength, g1)
    assert a.shape == (2, 1, 8, 8) and torch.equal(a, noise_input("random", 2, 8, const, strength, g2))
    torch.testing.assert_close(noise_input("const", 2, 8, const, strength), const * 0.5)
    assert noise_input("none", 2, 8, const, strength) is None
    with pytest.raises(ValueError, match="noise_mode must be one of 'random', 'const', 'none', got 'fixed'"):
        noise_input("fixed", 2, 8, const, strength)


def test_fourier_features():
    freqs = log_spaced_frequencies(100)  # T rounded up to 128: 7 frequencies pi * 2^k / 128
    torch.testing.assert_close(freqs, (math.pi * 2.0 ** torch.arange(7) / 128).unsqueeze(0))
    assert log_spaced_frequencies(100, skip_small_t_freqs=2).shape == (1, 5)
    enc = FourierFeatures(100)
    t = torch.tensor([[0.0, 3.0], [5.0, 64.0]])
    out = enc(t)
    assert out.shape == (2, 2, 14) and enc.dim == 14
    torch.testing.assert_close(out[1, 1, :7], torch.sin(64.0 * freqs[0]))
    torch.testing.assert_close(out[1, 1, 7:], torch.cos(64.0 * freqs[0]))
    with pytest.raises(ValueError):
        log_spaced_frequencies(0)


def test_normalize_2nd_moment():
    z = torch.randn(4, 16) * 7
    assert torch.allclose(normalize_2nd_moment(z).square().mean(dim=1), torch.ones(4), atol=1e-5)
