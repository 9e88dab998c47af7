"""StyleGAN-V's video discriminators (projection and hypernetwork forms): behaviour and input checks.

Numerical parity of the projection form with the official code is in test_parity_styleganv.py.
"""

from __future__ import annotations

import pytest
import torch

import vgz
from vgz.configs import ConfigError
from vgz.discriminators.styleganv import StyleGANVDiscriminator, StyleGANVHyperDiscriminator

KINDS = ["styleganv", "styleganv-hyper"]


def _disc(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return vgz.create("discriminator", name, preset="tiny", **overrides).eval()


def _inputs(disc, batch_size: int = 2, seed: int = 1) -> dict:
    return disc.example_inputs(batch_size, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("overrides", [{}, {"c_dim": 4}, {"num_frames": 2}, {"num_frames": 4},
                                       {"architecture": "orig"}, {"sampling_type": "uniform"},
                                       {"concat_res": 8, "num_frames_div_factor": 4}])
def test_output_shape(name, overrides):
    disc = _disc(name, **overrides)
    with torch.no_grad():
        out = disc(**_inputs(disc, batch_size=4))
    assert out.shape == (4, 1) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_classes_and_channel_plan():
    proj, hyper = _disc("styleganv"), _disc("styleganv-hyper")
    assert type(proj) is StyleGANVDiscriminator and type(hyper) is StyleGANVHyperDiscriminator
    # tiny: 32 channels at 8x8, halved per frame, 3 frames joined at concat_res=8.
    for disc in (proj, hyper):
        assert disc.b16.conv1.weight.shape[0] == 16
        assert disc.b8.conv0.weight.shape == (32, 48, 3, 3) and disc.b8.skip.weight.shape == (32, 48, 1, 1)
    assert hasattr(hyper.b8.conv0, "affine") and not hasattr(proj.b8.conv0, "affine")
    assert not hasattr(hyper.b16.conv0, "affine")  # the per-frame trunk is not modulated
    assert hyper.b4.conv.affine.weight.shape == (32 + 1, 32)  # w_dim 32 -> 32 channels + mbstd
    # One 16-d learned vector + 10 Fourier features per gap (max_num_frames=32: 5 frequencies).
    assert proj.time_encoder.dim == 2 * 26
    assert _disc("styleganv", sampling_type="uniform").time_encoder.dim == 26


@pytest.mark.parametrize("name", KINDS)
def test_time_gaps_change_the_logits_and_only_gaps_matter(name):
    disc = _disc(name)
    inputs = _inputs(disc)
    t = torch.tensor([[0, 2, 7], [0, 5, 21]])
    with torch.no_grad():
        base = disc(inputs["img"], inputs["c"], t)
        other = disc(inputs["img"], inputs["c"], torch.tensor([[0, 1, 2], [0, 9, 10]]))
        shifted = disc(inputs["img"], inputs["c"], t + 5)
        fractional = disc(inputs["img"], inputs["c"], t.float() + 0.3)
    assert ((base - other).abs() > 1e-4).all(), "the logits ignore the time gaps"
    torch.testing.assert_close(shifted, base, rtol=0, atol=0)
    # The table row is the rounded gap; the Fourier features see the exact gap (equal here).
    torch.testing.assert_close(fractional, base, rtol=0, atol=1e-5)


def test_hypernetwork_modulation_is_what_carries_time():
    """With every style forced to one, the hyper D's logits no longer depend on the gaps."""
    disc = _disc("styleganv-hyper")
    inputs = _inputs(disc)
    t_a, t_b = torch.tensor([[0, 2, 7], [0, 5, 21]]), torch.tensor([[0, 1, 2], [0, 9, 10]])
    with torch.no_grad():
        for name, module in disc.named_modules():
            if name.endswith("affine"):
                module.weight.zero_()  # style = bias = 1
        a, b = disc(inputs["img"], None, t_a), disc(inputs["img"], None, t_b)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", KINDS)
def test_labels_change_the_logits(name):
    disc = _disc(name, c_dim=4)
    inputs = _inputs(disc)
    with torch.no_grad():
        a = disc(**inputs)
        b = disc(inputs["img"], torch.randn(2, 4), inputs["t"])
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("name", KINDS)
def test_gradient_reaches_the_time_encoder(name):
    disc = _disc(name).train()
    inputs = _inputs(disc)
    disc(**inputs).sum().backward()
    rows = (inputs["t"][:, 1:] - inputs["t"][:, :-1]).unique()
    grad = disc.time_encoder.const_embed.weight.grad
    assert grad is not None and grad[rows].abs().sum(dim=1).gt(0).all()
    unused = torch.ones(grad.shape[0], dtype=torch.bool)
    unused[rows] = False
    assert grad[unused].abs().sum() == 0  # only the rows of the gaps that occurred
    assert disc.mapping.embed.weight.grad.abs().sum() > 0
    if name == "styleganv-hyper":
        assert disc.b8.conv1.affine.weight.grad.abs().sum() > 0


def test_hyper_fused_and_unfused_modconv_agree():
    disc = _disc("styleganv-hyper", c_dim=2)
    inputs = _inputs(disc, batch_size=4)
    with torch.no_grad():
        fused, unfused = disc(**inputs, fused_modconv=True), disc(**inputs, fused_modconv=False)
    torch.testing.assert_close(fused, unfused, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", KINDS)
def test_fp16_blocks_run_and_force_fp32(name):
    # tiny at 16x16 with num_fp16_res=2: b16 and b8 (the first block on joined frames) run in fp16.
    disc = _disc(name, num_fp16_res=2, conv_clamp=256.0)
    assert disc.b16.use_fp16 and disc.b8.use_fp16
    inputs = _inputs(disc)
    with torch.no_grad():
        half, full = disc(**inputs), disc(**inputs, force_fp32=True)
    assert half.dtype == full.dtype == torch.float32
    assert torch.isfinite(half).all() and torch.isfinite(full).all()
    assert (half - full).abs().max() < 0.05 * full.abs().max() + 1e-3
    reference = _disc(name, conv_clamp=256.0)  # same seed, same weights, no fp16 blocks
    with torch.no_grad():
        torch.testing.assert_close(reference(**inputs), full, rtol=0, atol=0)


@pytest.mark.parametrize("name", KINDS)
def test_input_errors_name_what_was_expected(name):
    disc = _disc(name, c_dim=2)
    img, c, t = (_inputs(disc)[k] for k in ("img", "c", "t"))
    with pytest.raises(ValueError, match=r"t must be \[2, 3\] \(one time per frame of img\), got \(2, 2\)"):
        disc(img, c, t[:, :2])
    with pytest.raises(ValueError, match=r"t must be \[2, 3\] .*got None"):
        disc(img, c)
    with pytest.raises(ValueError, match=r"img has 2 frames per clip, but this discriminator joins exactly "
                                         r"num_frames=3 frames' features at 8x8"):
        disc(img[:, :2], c, t[:, :2])
    with pytest.raises(ValueError, match=r"img must be \[B, 3, 3, 16, 16\] .*got \(2, 3, 3, 32, 32\)"):
        disc(torch.randn(2, 3, 3, 32, 32), c, t)
    with pytest.raises(ValueError, match=r"img must be \[B, 3, 3, 16, 16\] .*got \(6, 3, 16, 16\)"):
        disc(img.flatten(0, 1), c, t)
    with pytest.raises(ValueError, match=r"c must be \[2, 2\], got None"):
        disc(img, None, t)
    with pytest.raises(ValueError, match=r"time gaps .* must round to \[0, 31\] \(max_num_frames=32\)"):
        disc(img, c, torch.tensor([[0, 1, 40], [0, 1, 2]]))
    with pytest.raises(ValueError, match=r"time gaps"):
        disc(img, c, torch.tensor([[5, 1, 2], [0, 1, 2]]))  # unsorted: a negative gap


def test_single_frame_projection_discriminator_needs_no_times():
    disc = _disc("styleganv", num_frames=1)
    assert disc.time_encoder is None and not hasattr(disc, "mapping")
    with torch.no_grad():
        assert disc(torch.randn(2, 1, 3, 16, 16)).shape == (2, 1)


def test_freeze_layers_cover_the_joined_block():
    # b16: fromrgb, conv0, conv1, skip (layers 0-3); b8: conv0 (4), conv1 (5), skip (6).
    for name in KINDS:
        disc = _disc(name, freeze_layers=5)
        frozen = {n.rsplit(".", 1)[0] for n, p in disc.named_parameters() if not p.requires_grad}
        assert frozen >= {"b16.fromrgb", "b16.conv0", "b16.conv1", "b16.skip", "b8.conv0"}
        assert not {n for n in frozen if n.startswith(("b8.conv1", "b8.skip", "b4", "mapping", "time"))}


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("overrides,field", [
    ({"concat_res": 16}, "concat_res"),  # the first block has nothing to join
    ({"concat_res": 12}, "concat_res"),
    ({"num_frames_div_factor": 64}, "num_frames_div_factor"),
    ({"skip_small_t_freqs": 6}, "skip_small_t_freqs"),
    ({"img_resolution": 24}, "img_resolution"),
    ({"architecture": "skip"}, "architecture"),
    ({"sampling_type": "ramdom"}, "sampling_type"),
    ({"num_frames": 0}, "num_frames"),
    ({"mbstd_num_channels": 5}, "mbstd_num_channels"),
])
def test_config_validation(name, overrides, field):
    with pytest.raises(ConfigError, match=rf"\.{field}: expected"):
        vgz.create("discriminator", name, preset="tiny", **overrides)


def test_hyper_needs_gaps():
    with pytest.raises(ConfigError, match=r"num_frames: expected at least 2"):
        vgz.create("discriminator", "styleganv-hyper", preset="tiny", num_frames=1)


@pytest.mark.parametrize("name", KINDS)
def test_released_size_preset_builds(name):
    with torch.random.fork_rng(devices=[]):
        disc = vgz.create("discriminator", name, preset="styleganv-256")
    cfg = disc.config
    assert (cfg.img_resolution, cfg.channel_base, cfg.concat_res, cfg.num_frames) == (256, 16384, 16, 3)
    # 512 channels at 16x16 (16384 / 16, capped), halved per frame and joined over 3 frames.
    assert disc.b16.conv0.weight.shape == (512, 768, 3, 3) and disc.b32.conv1.weight.shape[0] == 256
    assert disc.time_encoder.dim == 2 * (256 + 20)
