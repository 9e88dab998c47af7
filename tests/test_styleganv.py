"""StyleGAN-V generator parts: motion codes and time-conditioned synthesis (behaviour)."""

from __future__ import annotations

import pytest
import torch

import vgz
from vgz.configs import ConfigError
from vgz.generators.styleganv import MotionConfig, MotionMappingNetwork, linspaced_frequencies


@pytest.fixture
def motion() -> MotionMappingNetwork:
    torch.manual_seed(0)
    net = vgz.create("motion", "styleganv", preset="tiny").eval()
    with torch.no_grad():  # larger weights so that codes differ visibly
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net


def test_same_noise_same_motion_whatever_the_chunking(motion):
    t = torch.arange(0, 200, dtype=torch.float32).reshape(1, -1).repeat(2, 1) * 0.75
    z = motion.sample_motion_z(2, t.max().item(), torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = motion(t, motion_z=z)
        parts = torch.cat([motion(t[:, i:i + 37], motion_z=z) for i in range(0, t.shape[1], 37)], dim=1)
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-6)


def test_embedding_is_continuous_across_code_boundaries(motion):
    d = motion.config.motion_z_distance
    eps = 1e-3
    t = torch.tensor([[k * d - eps for k in range(1, 8)] + [k * d + eps for k in range(1, 8)]])
    z = motion.sample_motion_z(1, t.max().item(), torch.Generator().manual_seed(2))
    with torch.no_grad():
        v = motion(t, motion_z=z)[0]
    before, after = v[:7], v[7:]
    assert (before - after).abs().max() < 0.05
    # Away from the boundaries the embedding moves much more.
    with torch.no_grad():
        far = motion(t + d / 2, motion_z=z)[0]
    assert (far[:7] - v[:7]).abs().max() > 0.2


def test_embedding_equals_aligner_at_code_positions(motion):
    d = motion.config.motion_z_distance
    t = torch.tensor([[0.0, d, 3 * d]])
    z = motion.sample_motion_z(1, t.max().item(), torch.Generator().manual_seed(3))
    with torch.no_grad():
        v = motion(t, motion_z=z)[0]
        codes = motion.trajectories(z[:, : motion.num_codes(t.max().item())])[0]
        aligners = motion.time_encoder.aligners_predictor(codes[[0, 1, 3]])
    torch.testing.assert_close(v, aligners, atol=1e-5, rtol=1e-5)


def test_frequencies_span_the_periods():
    freqs = linspaced_frequencies(4, 16, 1024)[0]
    torch.testing.assert_close(2 * torch.pi / freqs, torch.tensor([1024.0, 256.0, 64.0, 16.0]))


def test_motion_input_errors(motion):
    t = torch.tensor([[0.0, 40.0]])
    with pytest.raises(ValueError, match=r"motion_z must be \[1, >= 16, 8\] for t up to 40, got \(1, 5, 8\)"):
        motion(t, motion_z=torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match="t must be >= 0"):
        motion(torch.tensor([[-1.0]]))
    with pytest.raises(ValueError, match=r"t must be \[batch, frames\]"):
        motion(torch.tensor([1.0]))
    conditional = vgz.create("motion", "styleganv", preset="tiny", c_dim=2)
    with pytest.raises(ValueError, match=r"c must be \[1, 2\], got None"):
        conditional(t)


def test_motion_variants_build_and_run():
    t = torch.tensor([[0.0, 5.5, 17.0]])
    for kwargs, dim in [({"gen_strategy": "autoregressive"}, 12), ({"fourier": False}, 8),
                        ({"c_dim": 3}, 12)]:
        net = vgz.create("motion", "styleganv", preset="tiny", **kwargs)
        c = torch.randn(1, 3) if kwargs.get("c_dim") else None
        assert net(t, c, generator=torch.Generator().manual_seed(0)).shape == (1, 3, dim)
    with pytest.raises(ConfigError, match=r"MotionConfig\.v_dim: expected z_dim \(8\)"):
        MotionConfig.from_preset("tiny", gen_strategy="autoregressive", v_dim=6)


def test_synthesis_frames_of_a_video_share_w():
    torch.manual_seed(0)
    synthesis = vgz.create("synthesis", "styleganv", preset="tiny").eval()
    ws = torch.randn(2, synthesis.num_ws, synthesis.w_dim)
    v = torch.randn(2, 4, synthesis.config.motion_v_dim)
    v[:, 3] = v[:, 0]
    with torch.no_grad():
        frames = synthesis(ws, v)
        first_two = synthesis(ws, v[:, :2])
    assert frames.shape == (2, 4, 3, 16, 16)
    torch.testing.assert_close(frames[:, 3], frames[:, 0])
    torch.testing.assert_close(first_two, frames[:, :2], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(frames[:, 1], frames[:, 0])
    assert not any("noise" in k for k in synthesis.state_dict())  # noise is off in StyleGAN-V
    with pytest.raises(ValueError, match=r"motion_v must be \[2, frames, 12\]"):
        synthesis(ws, torch.randn(3, 4, 12))


def test_motion_and_synthesis_make_a_video():
    torch.manual_seed(0)
    mapping = vgz.create("mapping", "stylegan2", preset="tiny").eval()
    motion = vgz.create("motion", "styleganv", preset="tiny").eval()
    synthesis = vgz.create("synthesis", "styleganv", preset="tiny", motion_v_dim=motion.out_dim).eval()
    t = torch.arange(8, dtype=torch.float32).repeat(2, 1)
    with torch.no_grad():
        video = synthesis(mapping(torch.randn(2, mapping.z_dim)), motion(t, generator=torch.Generator().manual_seed(0)))
    assert video.shape == (2, 8, 3, 16, 16) and torch.isfinite(video).all()


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("architecture", ["skip", "resnet"])
def test_styles_once_per_video_equal_per_frame_styles(fused, architecture):
    """The shared-style path (weights modulated once per video) equals giving every frame its own w."""
    from einops import rearrange, repeat

    from vgz.generators.stylegan2 import SynthesisNetwork

    torch.manual_seed(0)
    synthesis = vgz.create("synthesis", "styleganv", preset="tiny", architecture=architecture).eval()
    ws = torch.randn(3, synthesis.num_ws, synthesis.w_dim)
    v = torch.randn(3, 5, synthesis.config.motion_v_dim)
    with torch.no_grad():
        shared = synthesis(ws, v, noise_mode="const", fused_modconv=fused)
        per_frame = SynthesisNetwork.forward(synthesis, repeat(ws, "b n w -> (b f) n w", f=5), noise_mode="const",
                                             fused_modconv=fused, extra_input=rearrange(v, "b f d -> (b f) d"))
    torch.testing.assert_close(shared, rearrange(per_frame, "(b f) c h w -> b f c h w", f=5), atol=1e-5, rtol=0)


def test_motion_window_equals_whole_trajectory(motion):
    """A chunk far into a long video computes only nearby codes, yet equals the full computation."""
    t = torch.tensor([[900.0, 901.5, 903.0], [0.0, 450.0, 910.0]])
    z = motion.sample_motion_z(2, 910.0, torch.Generator().manual_seed(3))
    with torch.no_grad():
        windowed = motion(t, motion_z=z)
        trajs = motion.trajectories(z)
        d = motion.config.motion_z_distance
        left = (t / d).floor().long()
        u_left = trajs[torch.arange(2)[:, None], left]
        reference = motion.time_encoder(t.flatten(), u_left.flatten(0, 1),
                                        trajs[torch.arange(2)[:, None], left + 1].flatten(0, 1),
                                        (t - t % d).flatten(), (t - t % d + d).flatten(),
                                        ((t % d) / d).reshape(-1, 1))
    torch.testing.assert_close(windowed.flatten(0, 1), reference, atol=1e-6, rtol=0)
