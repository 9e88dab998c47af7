"""StyleVideoGAN (issue 17, in progress): the GRU motion generator in W+."""

from __future__ import annotations

import pytest
import torch

import vgz
from vgz.generators.stylevideogan import MotionGenerator, MotionGeneratorConfig


@pytest.fixture(scope="module")
def gen() -> MotionGenerator:
    torch.manual_seed(0)
    return MotionGenerator(MotionGeneratorConfig.from_preset("tiny")).eval()


def test_trajectories_start_from_i_and_stream_like_one_call(gen):
    g = torch.Generator().manual_seed(1)
    i, s = torch.randn([2, 8], generator=g), torch.randn([2, 29, 8], generator=g)
    with torch.no_grad():
        ws = gen(i, s)
        assert ws.shape == (2, 30, 6, 32) and torch.isfinite(ws).all()
        # Step 0 is l_0 = i: the same whatever the step noise; later steps depend on it.
        other = gen(i, torch.randn_like(s))
        torch.testing.assert_close(ws[:, 0], other[:, 0], atol=0, rtol=0)
        assert (ws[:, 1:] - other[:, 1:]).abs().amax() > 1e-3
        # A trajectory made in chunks (the state carried over) equals one made at once.
        first, state = gen(i, s[:, :9], return_state=True)
        second = gen(i, s[:, 9:20], state=state, return_state=True)
        third = gen(i, s[:, 20:], state=second[1])
        torch.testing.assert_close(torch.cat([first, second[0], third], dim=1), ws, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"s must be \[2, steps, 8\]"):
        gen(i, s[..., :4])
    with pytest.raises(ValueError, match="no steps"):
        gen(i, s[:, :0], state=state)


def test_registered_with_the_papers_sizes():
    cfg = vgz.create("motion", "stylevideogan", preset="paper").config
    assert (cfg.z_dim, cfg.w_dim, cfg.num_ws) == (32, 512, 18)
    net = MotionGenerator(MotionGeneratorConfig.from_preset("tiny"))
    assert [cell.hidden_size for cell in net.P] == [16, 16, 16, 8]  # the top cell holds i


def test_critic_scores_windows_and_refuses_other_lengths():
    from vgz.discriminators.stylevideogan import Critic, CriticConfig

    assert CriticConfig().conv_length == 3  # 25 -> 12 -> 6 -> 3 (DCGAN convs, stride 2)
    torch.manual_seed(0)
    critic = Critic(CriticConfig.from_preset("tiny")).eval()
    ws = torch.randn([3, 9, 6, 32])
    scores = critic(ws)
    assert scores.shape == (3,)
    shuffled = ws[:, torch.randperm(9, generator=torch.Generator().manual_seed(0))]
    assert (critic(shuffled) - scores).abs().max() > 1e-4  # the order of the steps matters
    with pytest.raises(ValueError, match=r"windows of 9 W\+ steps"):
        critic(ws[:, :8])
    with pytest.raises(vgz.ConfigError, match="window"):
        CriticConfig(window=3)
