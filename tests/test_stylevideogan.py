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


def test_gradient_penalty_matches_finite_differences():
    from vgz.training.wgan import gradient_penalty

    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(20, 7), torch.nn.Tanh(),
                                 torch.nn.Linear(7, 1)).double()
    real, fake = torch.randn([3, 4, 5], dtype=torch.float64), torch.randn([3, 4, 5], dtype=torch.float64)
    penalty = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(5))
    eps = torch.rand([3, 1, 1], generator=torch.Generator().manual_seed(5)).double()
    x = eps * real + (1 - eps) * fake
    h, expected = 1e-6, []
    for b in range(3):  # central differences of C at every coordinate of sample b
        grad = torch.zeros(20, dtype=torch.float64)
        for k in range(20):
            step = torch.zeros(20, dtype=torch.float64)
            step[k] = h
            up, down = x[b:b + 1] + step.view(1, 4, 5), x[b:b + 1] - step.view(1, 4, 5)
            grad[k] = (critic(up) - critic(down)).item() / (2 * h)
        expected.append((grad.norm() - 1) ** 2)
    torch.testing.assert_close(penalty, torch.stack(expected).mean(), atol=1e-8, rtol=1e-6)


def test_gradient_angle_penalty_on_a_linear_case_with_known_angles():
    import math

    from vgz.training.wgan import GradientAnglePenalty

    torch.manual_seed(0)
    gap = GradientAnglePenalty(4).eval()  # identity statistics: d = l_last - l_first
    A = torch.randn(4, 4, dtype=torch.float64)
    for scale, phi_expected in ((1.0, math.pi / 4), (0.0, 0.0), (math.sqrt(3), math.pi / 3)):
        i = torch.randn([2, 4], dtype=torch.float64, requires_grad=True)
        s = torch.randn([2, 3, 4], dtype=torch.float64, requires_grad=True)
        # l_last - l_first = A i + B s with ||B||_F = scale * ||A||_F: phi = arctan(scale).
        B = torch.cat([A, torch.zeros(4, 8, dtype=torch.float64)], dim=1) * scale
        l_last = i @ A.t() + s.flatten(1) @ B.t()
        penalty, phi = gap(torch.zeros_like(l_last), l_last, i, s)
        torch.testing.assert_close(phi, torch.full([2], phi_expected, dtype=torch.float64))
        torch.testing.assert_close(penalty, torch.tensor(max(0.0, math.pi / 4 - phi_expected) ** 2,
                                                         dtype=torch.float64))
    # Training updates the running statistics; they are buffers (in checkpoints) and constants in the gradient.
    gap.train()
    diff = torch.randn([8, 4]) + 3
    gap.normalized_distance(torch.zeros_like(diff), diff)
    torch.testing.assert_close(gap.running_mean, 0.01 * diff.mean(0))
    assert set(gap.state_dict()) == {"running_mean", "running_var"}
