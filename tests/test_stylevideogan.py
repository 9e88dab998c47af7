"""StyleVideoGAN: the GRU motion generator in W+, its critic and losses, the offset trick, the pipeline,
and training on latents that `vgz invert` wrote (real mp4 files, the real command line)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vgz
from vgz.generators.stylevideogan import MotionGenerator, MotionGeneratorConfig, gru_cell
from vgz.pipelines import VideoPipeline
from vgz.pipelines.stylevideogan import StyleVideoGANPipeline


def _vgz(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vgz", *args], capture_output=True, text=True, timeout=300)


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


def test_training_and_generation_make_the_same_trajectories(gen):
    """Training runs the GRU cells in plain operations (a batching rule exists for them, so the angle
    penalty's vectorised Jacobians stay fast on CUDA), generation the fused cells: same trajectories,
    and the plain cells give the fused ones' gradients."""
    g = torch.Generator().manual_seed(2)
    i, s = torch.randn([3, 8], generator=g), torch.randn([3, 11, 8], generator=g)
    with torch.no_grad():
        fused = gen(i, s)
    plain = gen(i, s)
    torch.testing.assert_close(plain.detach(), fused, atol=1e-5, rtol=1e-5)
    cell = gen.P[1]
    x, h = torch.randn([4, cell.input_size], generator=g), torch.randn([4, cell.hidden_size], generator=g)
    grads = [torch.autograd.grad(out.square().sum(), list(cell.parameters()))
             for out in (gru_cell(cell, x, h), cell(x, h))]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_registered_with_the_papers_sizes():
    cfg = vgz.create("motion", "stylevideogan", preset="paper").config
    assert (cfg.z_dim, cfg.w_dim, cfg.num_ws) == (32, 512, 18)
    net = MotionGenerator(MotionGeneratorConfig.from_preset("tiny"))
    assert [cell.hidden_size for cell in net.P] == [16, 16, 16, 8]  # the top cell holds i
    # The top cell's update gate starts mostly closed: l_0 = i fades over the steps instead of being
    # mostly replaced at the first one.
    g = torch.Generator().manual_seed(0)
    i, s = torch.randn([16, 8], generator=g), torch.randn([16, 24, 8], generator=g)
    steps = []
    for bias in (3.0, 0.0):
        torch.manual_seed(0)
        with torch.no_grad():
            l, _ = MotionGenerator(MotionGeneratorConfig.from_preset("tiny", memory_gate_bias=bias)).codes(i, s)
        steps.append((l[:, 1:4] - l[:, :3]).norm(dim=-1).mean(0))
    assert (steps[0] < 0.5 * steps[1]).all() and steps[0][0] < 0.1 * i.norm(dim=1).mean(), steps


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


# ----------------------------------------------------------------------------- the offset trick and the pipeline


@pytest.fixture(scope="module")
def pipe() -> StyleVideoGANPipeline:
    """A tiny pipeline whose subject PCA is fitted to its own trajectories: their W+ lie in the 32-d affine
    image of the per-layer maps (T's output is 32-d), which 32 components hold exactly."""
    torch.manual_seed(0)
    pipe = StyleVideoGANPipeline.from_preset("tiny")
    pipe.motion.fit_subject(list(pipe.latents(16, 40, generator=100)))
    return pipe


def test_start_at_subject_needs_the_subjects_pca():
    torch.manual_seed(0)
    motion = MotionGenerator(MotionGeneratorConfig.from_preset("tiny"))
    latents = [torch.randn([12, 6, 32])]
    with pytest.raises(ValueError, match="call fit_subject first"):
        motion.start_at_subject(latents)
    motion.fit_subject(latents)
    motion.start_at_subject(latents)
    with torch.no_grad():
        ws = motion(torch.randn([4, 8]), torch.randn([4, 5, 8]))
    assert (ws - motion.project_subject(ws)).abs().max() < 1e-4  # 11 components span every frame it makes


def test_offset_trick_moves_a_trajectory_onto_a_new_subject(pipe):
    motion = pipe.motion
    basis = motion.subject_basis.flatten(1)
    torch.testing.assert_close(basis @ basis.T, torch.eye(32), atol=1e-5, rtol=0)
    # A new subject: the training subject in the state w_0(i_true), plus an identity orthogonal to its PCA.
    g = torch.Generator().manual_seed(5)
    i_true, s = torch.randn([2, 8], generator=g), torch.randn([2, 64, 8], generator=g)
    with torch.no_grad():
        motion_true = motion(i_true, s[:, :24])  # [2, 25, 6, 32]
    identity = torch.randn([2, 6 * 32], generator=g)
    identity = (identity - identity @ basis.T @ basis).view(2, 6, 32)
    w_new = motion_true[:, 0] + identity
    torch.testing.assert_close(motion.project_subject(w_new), motion_true[:, 0], atol=1e-5, rtol=0)
    # From another content code, the start is fitted: the first frame is the new subject's state, the
    # motion the generator's from there, moved by the identity.
    i_other = torch.randn([2, 8], generator=g)
    moved = pipe.latents(2, 25, z=i_other, motion_z=s, identity=w_new)
    torch.testing.assert_close(moved[:, 0], w_new, atol=1e-4, rtol=0)
    torch.testing.assert_close(moved, motion_true + identity.unsqueeze(1), atol=1e-4, rtol=0)
    # The paper's plain shift keeps the sampled start (its first frame is w_0 + Delta, another state)...
    shifted = pipe.latents(2, 25, z=i_other, motion_z=s, identity=w_new, fit_start=False)
    with torch.no_grad():
        own = motion(i_other, s[:, :24])
    torch.testing.assert_close(shifted, own + identity.unsqueeze(1), atol=1e-4, rtol=0)
    assert (shifted[:, 0] - w_new).abs().amax() > 0.1
    # ...and the naive ablation moves the sampled start onto w_new with the whole difference.
    naive = pipe.latents(2, 25, z=i_other, motion_z=s, identity=w_new, offset="naive")
    torch.testing.assert_close(naive, own + (w_new - own[:, 0]).unsqueeze(1), atol=1e-5, rtol=0)
    # Subjects as W (repeated over the layers) and one for every video; bad requests name the problem.
    one = pipe.latents(3, 4, generator=0, identity=w_new[0, 0], fit_start=False)
    torch.testing.assert_close(one[:, 0] - pipe.latents(3, 4, generator=0)[:, 0],
                               (w_new[0, 0] - motion.project_subject(w_new[0, 0].expand(6, -1))).expand(3, -1, -1),
                               atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="offset must be one of 'pca', 'naive'"):
        pipe.latents(1, 4, generator=0, identity=w_new[:1], offset="pcaa")
    with pytest.raises(ValueError, match="2 subjects for 3 videos"):
        pipe.latents(3, 4, generator=0, identity=w_new)
    fresh = StyleVideoGANPipeline.from_preset("tiny")
    with pytest.raises(ValueError, match="no PCA of its training subject"):
        fresh.latents(1, 4, generator=0, identity=w_new[:1])
    with pytest.warns(UserWarning, match="no pSp encoder"):
        pipe.latents(1, 4, generator=0, identity=7)


def test_pipeline_streams_any_length_and_rate_and_renders_its_latents(pipe, tmp_path):
    out = pipe(2, 30, generator=0)
    assert out.frames.shape == (2, 30, 3, 16, 16) and out.fps == 25
    # Chunks carry the GRU state: a stream equals one call, and a longer video extends a shorter one.
    streamed = torch.cat([c.frames for c in pipe.stream(2, 30, generator=0, chunk_size=7)], dim=1)
    torch.testing.assert_close(streamed, out.frames, atol=1e-6, rtol=0)
    torch.testing.assert_close(pipe(2, 100, generator=0, chunk_size=33).frames[:, :30], out.frames, atol=1e-6, rtol=0)
    # The frames are the latents rendered; 2x the rate is the same motion with W+ interpolated between steps.
    ws = pipe.latents(2, 30, generator=0)
    rendered = pipe.synthesis(ws.flatten(0, 1), noise_mode="const")
    torch.testing.assert_close(((rendered + 1) / 2).clamp(0, 1), out.frames.flatten(0, 1), atol=1e-5, rtol=0)
    slow = pipe(2, 59, fps=50, generator=0)
    torch.testing.assert_close(slow.frames[:, ::2], out.frames, atol=1e-5, rtol=0)
    halfway = pipe.synthesis((ws[:, :1] + ws[:, 1:2]).flatten(0, 1) / 2, noise_mode="const")
    torch.testing.assert_close(slow.frames[:, 1], ((halfway + 1) / 2).clamp(0, 1), atol=1e-5, rtol=0)
    # Backwards timestamps restart the trajectory and still give the same frames.
    back = pipe(2, timestamps=[1.16, 0.0, 0.4], generator=0)
    torch.testing.assert_close(back.frames[:, [1, 2, 0]], out.frames[:, [0, 10, 29]], atol=1e-5, rtol=0)
    # Grids: content code per row, step noise per column.
    grid = pipe.content_motion_grid([0, 1], [0, 1], num_frames=6)
    torch.testing.assert_close(grid.frames[0], out.frames[0, :6], atol=1e-6, rtol=0)
    torch.testing.assert_close(grid.frames[3], out.frames[1, :6], atol=1e-6, rtol=0)
    # Saved and loaded with its PCA; the components must fit.
    pipe.save_pretrained(tmp_path / "svg")
    loaded = VideoPipeline.from_pretrained(tmp_path / "svg")
    assert isinstance(loaded, StyleVideoGANPipeline) and int(loaded.motion.subject_frames) == 640
    torch.testing.assert_close(loaded(2, 30, generator=0).frames, out.frames, atol=0, rtol=0)
    with pytest.raises(ValueError, match="motion generator emits 18 ws of 32, the synthesis takes 6"):
        StyleVideoGANPipeline(mapping=pipe.mapping, synthesis=pipe.synthesis, motion=MotionGenerator(
            MotionGeneratorConfig.from_preset("tiny", num_ws=18)))
    with pytest.raises(ValueError, match="unconditional"):
        pipe(1, 4, c=[0])


# ----------------------------------------------------------------------------- training on `vgz invert` latents


@pytest.fixture(scope="module")
def latents(tmp_path_factory) -> Path:
    """`vgz invert` of three 40-frame mp4 files and one of 6 frames (shorter than the tiny window of 9),
    with a tiny pSp pipeline (a 16x16 StyleGAN2, 6 ws of 32)."""
    root = tmp_path_factory.mktemp("stylevideogan")
    shapes = vgz.create("dataset", "synthetic-shapes", resolution=32, num_videos=4, num_frames=40)
    (root / "videos").mkdir()
    for k, length in enumerate((40, 40, 40, 6)):
        vgz.export_video(shapes.read_frames(k, range(length)), root / "videos" / f"take{k}.mp4", fps=25)
    torch.manual_seed(0)
    vgz.create("pipeline", "psp", preset="tiny").save_pretrained(root / "psp")
    out = _vgz("invert", str(root / "psp"), "--data", str(root / "videos"), "--out", str(root / "latents"), "-q")
    assert out.returncode == 0, out.stderr
    return root / "latents"


def _train(latents: Path, run: Path, *extra: str) -> subprocess.CompletedProcess:
    return _vgz("train", "--recipe", "stylevideogan", "--preset", "tiny", "--data", str(latents), "--outdir", str(run),
                "--num-workers", "0", "--progress", "false", "--log-every", "2", *extra)


def test_trains_on_inverted_latents_resumes_and_generates_ten_windows(latents, tmp_path):
    from safetensors.torch import load_file

    from vgz.data.video import read_video

    run = tmp_path / "run"
    out = _train(latents, run, "--steps", "4", "--checkpoint-every", "2", "--sample-every", "4")
    assert out.returncode == 0, out.stderr
    assert "3 videos" in out.stdout and "skipped 1 of 4 videos" in out.stderr and "6 frames, shorter than the 9" \
        in out.stderr
    last = [json.loads(line) for line in (run / "logs" / "stats.jsonl").read_text().splitlines()][-1]
    assert {"loss/D/wasserstein", "loss/D/gp", "loss/G/adv", "loss/G/gap", "gap/phi", "lr/G", "lr/D"} <= set(last)
    assert all(np.isfinite(v) for v in last.values() if isinstance(v, float))
    assert (run / "samples" / "step-00000004.mp4").is_file()  # the trajectories rendered
    # The GAP's running statistics are checkpointed with G; the subject's PCA with the motion generator.
    G = load_file(str(run / "checkpoints" / "step-00000004" / "G.safetensors"))
    assert G["gap.running_mean"].abs().sum() > 0 and int(G["motion.subject_frames"]) == 120
    pipe = VideoPipeline.from_pretrained(run / "pipeline")
    assert isinstance(pipe, StyleVideoGANPipeline) and pipe.encoder is not None and pipe.config.fps == 25
    resumed = _train(latents, run, "--steps", "6", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "steps from step 4" in resumed.stdout and "done: step 6" in resumed.stdout
    # 250 frames, ten times the paper's window, streamed to an mp4, of the subject of seed 3 (rendered,
    # re-embedded with the run's pSp encoder) moved by the offset trick; then a photo's subject.
    out = _vgz("generate", str(run), "-n", "250", "--seeds", "0-1", "--identity", "3", "-o", str(tmp_path / "long.mp4"),
               "-q")
    assert out.returncode == 0, out.stderr
    video, fps = read_video(tmp_path / "long.mp4")
    assert video.shape == (250, 3, 16, 32) and fps == 25
    from PIL import Image

    Image.fromarray(video[0, :, :, :16].permute(1, 2, 0).numpy()).save(tmp_path / "photo.png")
    out = _vgz("generate", str(run), "-n", "20", "--image", str(tmp_path / "photo.png"), "--offset", "naive",
               "--seeds", "0-1", "-o", str(tmp_path / "photo.mp4"), "-q")
    assert out.returncode == 0, out.stderr
    assert read_video(tmp_path / "photo.mp4")[0].shape == (20, 3, 16, 32)
    out = _vgz("generate", str(run), "--offset", "naive", "-o", str(tmp_path / "x.mp4"))
    assert out.returncode == 1 and "give one of them" in out.stderr


def test_recipe_settings_and_data_errors(latents, tmp_path):
    recipe = vgz.create("recipe", "stylevideogan", preset="paper")
    cfg = recipe.config
    assert (cfg.num_frames, cfg.lambda_gp, cfg.lambda_gap, cfg.ema_momentum, cfg.epochs, cfg.z_dim) == \
        (25, 50.0, 100.0, 0.995, 350.0, 32)
    assert (cfg.lr_g, tuple(cfg.betas), cfg.n_critic, cfg.batch_size) == (1e-4, (0.0, 0.9), 5, 64)
    assert recipe.ema_beta(0) == 0.995 and recipe.ema_beta(25 * 64) == 1.0  # EMA per generator update
    # Videos (not latents), a window longer than every sequence, and a generator of another latent shape.
    out = _train("synthetic:shapes", tmp_path / "r1", "--steps", "1")
    assert out.returncode == 1 and "must be a latent folder written by vgz invert" in out.stderr
    out = _train(latents, tmp_path / "r2", "--steps", "1", "--num-frames", "41")
    assert out.returncode == 1 and "shorter than the 41" in out.stderr and "Traceback" not in out.stderr
    from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork
    from vgz.pipelines.stylegan2 import StyleGAN2Pipeline

    synthesis = SynthesisNetwork(SynthesisConfig.from_preset("tiny", w_dim=16))
    other = StyleGAN2Pipeline(mapping=MappingNetwork(MappingConfig.from_preset("tiny", w_dim=16)), synthesis=synthesis)
    other.save_pretrained(tmp_path / "g16")
    out = _train(latents, tmp_path / "r3", "--steps", "1", "--generator", str(tmp_path / "g16"))
    assert out.returncode == 1 and "latents are W+ [6, 32], the generator takes [6, 16]" in out.stderr
    # One epoch is every window of 9 steps once: 3 x 32 windows in batches of 8.
    from vgz.data.datasets import open_dataset

    tiny = vgz.create("recipe", "stylevideogan", preset="tiny")
    dataset = open_dataset(latents, sampling=tiny.sampling())
    assert tiny.windows(dataset) == 96 and tiny.default_steps(dataset) == 20 * 12
    # The generator step runs every n_critic steps but is not a lazy regularizer: its loss is not scaled.
    from vgz.training import build_trainer

    trainer = build_trainer("stylevideogan", preset="tiny", data=str(latents), outdir=tmp_path / "r4",
                            run_overrides={"steps": 1, "num_workers": 0, "progress": False, "sample_seeds": []})
    try:
        # The first trajectories lie in the subject's PCA subspace, spread along it as the subject's frames.
        motion = trainer.G.motion
        with torch.no_grad():
            fake = motion(torch.randn([64, 8]), torch.randn([64, 8, 8]))
        assert (fake - motion.project_subject(fake)).abs().max() < 1e-4
        basis = motion.subject_basis.flatten(1)
        real = torch.cat([dataset.read_latents(v) for v in range(dataset.num_videos)])
        centred = [x.flatten(1) - motion.subject_mean.flatten() for x in (real, fake.flatten(0, 1))]
        spread = [(x @ basis[:4].T).std(0) for x in centred]
        assert ((spread[1] / spread[0]).log().abs() < 0.7).all(), spread
        losses = trainer.train_step()
    finally:
        trainer.close()
    assert set(losses) == {"Dmain", "Gmain"}
    assert losses["Gmain"] == pytest.approx(float(trainer.stats["loss/G"][0]), rel=1e-5)


def test_lazy_gap_on_every_gap_interval_th_generator_update(latents, tmp_path):
    from vgz.training import build_trainer

    # tiny: n_critic 2, so G updates on steps 0, 2, 4, 6; with gap_interval 2 the GAP comes on 0 and 4.
    trainer = build_trainer("stylevideogan", preset="tiny", data=str(latents), outdir=tmp_path / "r",
                            overrides={"gap_interval": 2},
                            run_overrides={"steps": 7, "num_workers": 0, "progress": False, "sample_seeds": []})
    try:
        recipe = trainer.recipe
        assert [recipe.gap_due(step) for step in range(8)] == [True, True, False, False] * 2
        seen = []
        for step in range(7):
            trainer.stats.clear()
            losses = trainer.train_step()
            seen.append(("Gmain" in losses, "gap/phi" in trainer.stats))
            assert ("scores/real_still" in trainer.stats) == ("Gmain" in losses)
            if "gap/phi" in trainer.stats:  # weighted gap_interval times on the updates that take it
                adv, gap = (float(trainer.stats[k][0]) for k in ("loss/G/adv", "loss/G/gap"))
                assert gap > 0 and losses["Gmain"] == pytest.approx(adv + 100 * 2 * gap, rel=1e-4)
            elif "Gmain" in losses:
                assert losses["Gmain"] == pytest.approx(float(trainer.stats["loss/G/adv"][0]), rel=1e-5)
    finally:
        trainer.close()
    assert seen == [(True, True), (False, False), (True, False), (False, False), (True, True), (False, False),
                    (True, False)]
    # Logged with each generator update: the critic's score on real windows held still.
    ws = torch.randn([3, 5, 2, 4])
    still = recipe.still(ws)
    assert still.shape == ws.shape and torch.equal(still, ws[:, 2:3].expand(-1, 5, -1, -1))
    with pytest.raises(ValueError, match="gap_interval"):
        vgz.create("recipe", "stylevideogan", gap_interval=0)


def test_still_negatives_teach_the_critic_that_stillness_is_fake():
    from vgz.discriminators.stylevideogan import Critic, CriticConfig
    from vgz.training.losses import PhaseContext

    recipe = vgz.create("recipe", "stylevideogan", preset="tiny", still_negatives=0.5)
    real, fake = torch.randn([8, 9, 2, 4]), torch.randn([8, 9, 2, 4])
    mixed = recipe.with_still_negatives(real, fake)
    assert torch.equal(mixed[:4], recipe.still(real[:4])) and torch.equal(mixed[4:], fake[4:])
    assert torch.equal(recipe.with_still_negatives(real[:1], fake[:1]), fake[:1])  # round(0.5) = 0 of 1

    def still_margin(share: float) -> float:
        """The critic's ``mean C(real) - mean C(real held still)`` after 150 of its steps against fixed
        fakes: real windows circle in W+ (each its own direction and phase), fakes are noise around them."""
        torch.manual_seed(0)
        t = torch.arange(9.0)[None, :, None, None] * 0.4 + 6 * torch.rand([64, 1, 1, 1])
        a, b = torch.randn([2, 64, 1, 2, 4])
        windows = a * t.sin() + b * t.cos()
        noise = windows.mean(1, keepdim=True) + torch.randn([64, 9, 2, 4])
        recipe = vgz.create("recipe", "stylevideogan", preset="tiny", still_negatives=share)
        critic = Critic(CriticConfig(num_ws=2, w_dim=4, window=9, e_layers=3, e_hidden=32, feature_dim=8,
                                     channels=(16, 32)))
        opt = torch.optim.Adam(critic.parameters(), lr=3e-3, betas=(0.0, 0.9))
        grad = lambda out, x: torch.autograd.grad(out, x, create_graph=True)[0]  # noqa: E731
        for step in range(150):
            batch = torch.arange(16) + 16 * (step % 4)
            ctx = PhaseContext(nets={"G": lambda i, s: (noise[batch], None), "D": critic},
                               real={"ws": windows[batch]}, gen={"i": None, "s": None}, grad=grad)
            opt.zero_grad()
            recipe.d_main(ctx).backward()
            opt.step()
        with torch.no_grad():
            return float(critic(windows).mean() - critic(recipe.still(windows)).mean())

    off, on = still_margin(0.0), still_margin(0.5)
    # Seeded, so deterministic: 0.164 against 0.018 (with the negatives off, nothing tells it apart).
    assert on > off + 0.1, (off, on)


# ----------------------------------------------------------------------------- evaluation: short and long sets


def _pool_detector(kind: str):
    """A cheap deterministic detector (pooled colours and their changes) in place of I3D/Inception."""
    from vgz.metrics.features import FeatureDetector

    class Pool(FeatureDetector):
        feature_dim = 24

        def features(self, x):
            x = x.float() / 255
            if kind == "image":
                return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1).repeat(1, 2)
            pooled = torch.nn.functional.adaptive_avg_pool2d(x.flatten(0, 1), 2).view(*x.shape[:2], 12)
            return torch.cat([pooled.mean(1), (pooled[:, 1:] - pooled[:, :-1]).abs().mean(1)], dim=1)

    Pool.kind = kind
    return Pool()


def test_short_and_long_sets_against_the_rendered_embedding(latents, tmp_path):
    from vgz.data.base import DatasetError
    from vgz.data.datasets import open_dataset
    from vgz.metrics import create_metric, evaluate
    from vgz.metrics.protocol import _clip_seeds
    from vgz.pipelines.base import raw_to_uint8
    from vgz.metrics.windows import real_random_frames, real_windows

    psp = VideoPipeline.from_pretrained(latents.parent / "psp")
    torch.manual_seed(0)
    pipe = StyleVideoGANPipeline(mapping=psp.mapping, synthesis=psp.synthesis, motion=MotionGenerator(
        MotionGeneratorConfig.from_preset("tiny")))
    # The reference "W+ embedding rendered": windows are consecutive latents of the footage, rendered.
    data = open_dataset(latents, sampling=vgz.create("recipe", "stylevideogan", preset="tiny").sampling())
    rendered = data.rendered(pipe.synthesis)
    clips = torch.cat(list(real_windows(rendered, num_clips=5, window=4, num_workers=0)))
    every = {(v, o): raw_to_uint8(pipe.synthesis(data.read_latents(v, range(o, o + 4)), noise_mode="const"))
             for v in range(data.num_videos) for o in range(data.video_lengths[v] - 3)}
    near = lambda a, b: (a.int() - b.int()).abs().max() <= 1  # noqa: E731 - batches round differently
    assert clips.shape == (5, 4, 3, 16, 16) and all(any(near(c, w) for w in every.values()) for c in clips)
    frames = torch.cat(list(real_random_frames(rendered, num_frames=7, num_workers=0)))
    assert frames.shape == (7, 3, 16, 16) and rendered.fingerprint() != data.fingerprint()
    with pytest.raises(DatasetError, match="made for the generator"):
        data.rendered(StyleVideoGANPipeline.from_preset("tiny").synthesis)
    # Long clips are a long video cut back to back; FID frames are frames of the same videos.
    long = create_metric("fvd_long", window=5, num_fake=6, windows_per_video=3)
    fake = torch.cat(list(long.fake_samples(pipe, seed=0, batch_size=2)))
    videos = pipe(2, 15, generator=_clip_seeds(0, 0, 2), output_type="uint8").frames
    # (window by window, each over the batch's videos)
    torch.testing.assert_close(fake, videos.view(2, 3, 5, 3, 16, 16).transpose(0, 1).reshape(6, 5, 3, 16, 16),
                               atol=1, rtol=0)
    fid = create_metric("fid_long", num_fake=6, num_videos=2, video_frames=15)
    assert all(any(near(f, g) for g in videos.flatten(0, 1)) for f in torch.cat(list(fid.fake_samples(pipe, seed=0))))
    # End to end against the rendered embedding and against the original footage.
    metrics = ["fvd_short", "fvd_long", "fid_short", "fid_long"]
    for reference in (latents, latents.parent / "videos"):
        report = evaluate(pipe, str(reference), metrics, detectors=[_pool_detector("video"), _pool_detector("image")],
                          num_videos=4, cache_dir=False, progress=False, num_workers=0)
        assert set(report.results) == set(metrics) and all(np.isfinite(v) and v > 0 for v in report.results.values())
        assert report.protocols["fvd_short"]["real_taken"]["clips"] == 4
        metrics = ["fvd_short", "fid_short"]  # the footage itself: the same code past the reading
    assert report.protocols["fid_short"]["real_taken"]["frames_total"] == 126  # every frame of the 4 videos
