"""StyleGAN2 components: behaviour beyond the generic component tests, and frozen golden values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import vgz
from vgz.generators.stylegan2 import MappingNetwork, SynthesisNetwork

GOLDEN = Path(__file__).parent / "fixtures" / "golden_stylegan2_tiny.safetensors"


def _tiny_synthesis(**overrides) -> SynthesisNetwork:
    torch.manual_seed(0)
    return vgz.create("synthesis", "stylegan2", preset="tiny", **overrides).eval()


def test_truncation_moves_towards_w_avg():
    mapping = vgz.create("mapping", "stylegan2", preset="tiny").eval()
    mapping.w_avg.normal_()
    z = torch.randn(4, mapping.z_dim)
    ws = mapping(z)
    assert torch.allclose(mapping(z, truncation_psi=0), mapping.w_avg.expand_as(ws))
    half = mapping(z, truncation_psi=0.5)
    torch.testing.assert_close(half, mapping.w_avg + 0.5 * (ws - mapping.w_avg))
    cut = mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], half[:, :2])
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])


def test_w_avg_tracks_only_in_training():
    mapping = vgz.create("mapping", "stylegan2", preset="tiny")
    z = torch.randn(8, mapping.z_dim)
    mapping.eval()
    mapping(z)
    assert torch.equal(mapping.w_avg, torch.zeros_like(mapping.w_avg))
    mapping.train()
    w = mapping(z)[:, 0]
    torch.testing.assert_close(mapping.w_avg, w.detach().mean(0) * (1 - 0.995))
    before = mapping.w_avg.clone()
    mapping(z, skip_w_avg_update=True)
    assert torch.equal(mapping.w_avg, before)


def test_truncation_without_w_avg_is_a_clear_error():
    mapping = MappingNetwork(z_dim=8, w_dim=8, num_ws=None, w_avg_beta=None, num_layers=1)
    assert mapping(torch.randn(2, 8)).shape == (2, 8)
    with pytest.raises(ValueError, match="truncation needs w_avg"):
        mapping(torch.randn(2, 8), truncation_psi=0.5)


def test_mapping_input_errors():
    mapping = vgz.create("mapping", "stylegan2", preset="tiny", c_dim=3)
    with pytest.raises(ValueError, match=r"z must be \[N, 32\], got \(2, 31\)"):
        mapping(torch.randn(2, 31), torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"c must be \[N, 3\], got None"):
        mapping(torch.randn(2, 32))


def test_random_noise_follows_generator_and_modes_differ():
    net = _tiny_synthesis()
    with torch.no_grad():
        net.b8.conv0.noise_strength.fill_(1.0)
    ws = torch.randn(2, net.num_ws, net.w_dim)
    a = net(ws, noise_mode="random", generator=torch.Generator().manual_seed(5))
    b = net(ws, noise_mode="random", generator=torch.Generator().manual_seed(5))
    c = net(ws, noise_mode="random", generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(net(ws, noise_mode="const"), net(ws, noise_mode="none"))
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        net(ws, noise_mode="fixed")


def test_use_noise_false_has_no_noise_parameters():
    net = _tiny_synthesis(use_noise=False)
    assert not any("noise" in k for k in net.state_dict())
    ws = torch.randn(1, net.num_ws, net.w_dim)
    assert torch.equal(net(ws, noise_mode="random"), net(ws, noise_mode="none"))


def test_ws_shape_error():
    net = _tiny_synthesis()
    with pytest.raises(ValueError, match=r"ws must be \[N, 6, 32\], got \(2, 5, 32\)"):
        net(torch.randn(2, 5, 32))


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_fp16_blocks_are_fp32_on_cpu_and_close_on_gpu(architecture):
    net = _tiny_synthesis(num_fp16_res=2, conv_clamp=256.0, architecture=architecture)
    ws = torch.randn(2, net.num_ws, net.w_dim)
    with torch.no_grad():
        half, full = net(ws, noise_mode="const"), net(ws, noise_mode="const", force_fp32=True)
    assert half.dtype == torch.float32 and torch.equal(half, full)  # CPUs run fp16 blocks in fp32
    if torch.cuda.is_available():
        net, ws = net.cuda(), ws.cuda()
        with torch.no_grad():
            half, full = net(ws, noise_mode="const"), net(ws, noise_mode="const", force_fp32=True)
        assert half.dtype == torch.float32 and torch.isfinite(half).all()
        assert (half - full).abs().max() < 0.05 * full.abs().max()
        half = half.cpu()
    disc = vgz.create("discriminator", "stylegan2", preset="tiny", num_fp16_res=2, conv_clamp=256.0,
                      architecture=architecture)
    logits = disc(half)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_discriminator_label_conditioning_and_freeze():
    disc = vgz.create("discriminator", "stylegan2", preset="tiny", c_dim=5, freeze_layers=2)
    img, c = torch.randn(2, 3, 16, 16), torch.randn(2, 5)
    assert disc(img, c).shape == (2, 1)
    assert not torch.equal(disc(img, c), disc(img, torch.randn(2, 5)))
    frozen = [n for n, p in disc.named_parameters() if not p.requires_grad]
    assert frozen == ["b16.fromrgb.weight", "b16.fromrgb.bias", "b16.conv0.weight", "b16.conv0.bias"]
    with pytest.raises(ValueError, match=r"img must be \[N, 3, 16, 16\], got \(2, 3, 32, 32\)"):
        disc(torch.randn(2, 3, 32, 32), c)


def _golden_outputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    mapping = vgz.create("mapping", "stylegan2", preset="tiny").eval()
    synthesis = vgz.create("synthesis", "stylegan2", preset="tiny").eval()
    disc = vgz.create("discriminator", "stylegan2", preset="tiny").eval()
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(2, mapping.z_dim, generator=gen)
    with torch.no_grad():
        ws = mapping(z)
        img = synthesis(ws, noise_mode="const")
        logits = disc(img)
    return {"ws": ws, "img": img, "logits": logits}


def test_golden_values():
    """Freezes vgz's own StyleGAN2 numerics (initialisation included) at the tiny preset.

    Regenerate deliberately with ``VGZ_REGEN_GOLDEN=1 pytest tests/test_stylegan2.py -k golden``.
    """
    outputs = _golden_outputs()
    if os.environ.get("VGZ_REGEN_GOLDEN") == "1":
        save_file({k: v.contiguous() for k, v in outputs.items()}, str(GOLDEN))
    golden = load_file(str(GOLDEN))
    assert set(golden) == set(outputs)
    for key, value in outputs.items():
        torch.testing.assert_close(value, golden[key], atol=1e-5, rtol=1e-5, msg=f"golden {key} changed")


def test_channels_last_equals_contiguous():
    net = _tiny_synthesis(architecture="resnet")
    ws = torch.randn(3, net.num_ws, net.w_dim)
    with torch.no_grad():
        cl, contiguous = net(ws, noise_mode="const", channels_last=True), net(ws, noise_mode="const", channels_last=False)
    assert cl.is_contiguous()
    torch.testing.assert_close(cl, contiguous, atol=1e-5, rtol=0)


def _block_outputs(net: SynthesisNetwork, ws: torch.Tensor) -> list[torch.Tensor]:
    """Each block's conv1 output of one forward (its dtype is the block's arithmetic)."""
    seen: list[torch.Tensor] = []
    hooks = [getattr(net, f"b{res}").conv1.register_forward_hook(lambda m, i, o: seen.append(o))
             for res in net.block_resolutions]
    try:
        with torch.no_grad():
            out = net(ws, noise_mode="const")
    finally:
        for h in hooks:
            h.remove()
    assert out.dtype == torch.float32  # images leave the network in float32 whatever it ran in
    return seen


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_cast_network_runs_every_block_in_its_dtype(dtype):
    net = _tiny_synthesis(num_fp16_res=2, conv_clamp=256.0)
    ws = torch.randn(2, net.num_ws, net.w_dim)
    with torch.no_grad():
        full = net(ws, noise_mode="const")
    net.to(dtype)
    assert {o.dtype for o in _block_outputs(net, ws)} == {dtype}
    with torch.no_grad():
        low = net(ws, noise_mode="const")
    assert 0 < (low - full).abs().max() < 0.1 * full.abs().max()
    net.force_fp32 = True  # the run-time setting: float32 arithmetic on the cast weights
    assert {o.dtype for o in _block_outputs(net, ws)} == {torch.float32}


def test_runtime_settings_apply_when_forward_is_not_told():
    net = _tiny_synthesis()
    ws = torch.randn(2, net.num_ws, net.w_dim)
    told: list[tuple[bool, bool]] = []
    net.b8.register_forward_pre_hook(
        lambda m, a, kw: told.append((kw["channels_last"], kw["force_fp32"])), with_kwargs=True)

    def settings(**kwargs) -> tuple[bool, bool]:
        with torch.no_grad():
            net(ws, noise_mode="const", **kwargs)
        return told.pop()

    assert settings() == (True, False)  # CPU: channels-last, and nothing forced
    net.channels_last, net.force_fp32 = False, True
    assert settings() == (False, True)
    assert settings(channels_last=True, force_fp32=False) == (True, False)  # arguments win
