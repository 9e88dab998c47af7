"""The trainer: real tiny runs on synthetic and real video data, checkpoints, resume, signals, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import vgz
from vgz.training import RunFolderError, Trainer, TrainingDiverged, build_trainer

# Small enough for a 2-core CPU: a tiny StyleGAN-V at 32x32, 4 clips per step.
TINY = {"batch_size": 4, "mbstd_group_size": 2}
RUN = {"num_workers": 0, "progress": False, "sample_seeds": [0, 1], "sample_frames": 4, "log_every": 1}
DATA = "synthetic:shapes?num_videos=16&num_frames=48"


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    # Accelerate keeps one process-wide state; tests build trainers with different settings.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _trainer(outdir, steps=2, resume=False, recipe="styleganv", **run):
    return build_trainer(recipe, preset="tiny", data=DATA, outdir=outdir, overrides=TINY,
                         run_overrides={**RUN, "steps": steps, "checkpoint_every": 2, "sample_every": 2, **run},
                         resume=resume)


def _vgz(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "vgz", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kwargs)


# ----------------------------------------------------------------------------- recipes


def test_recipes_are_registered_with_official_hyperparameters():
    assert {e.name for e in vgz.list_components("recipe")} >= {"stylegan2", "styleganv"}
    paper = vgz.create("recipe", "styleganv", preset="paper").config
    # universome/stylegan-v src/train.py cfg=auto at 256x256, batch 64 (configs/training/base.yaml)
    assert paper.r1_gamma_value() == pytest.approx(0.0002 * 256 ** 2 / 64)
    assert paper.ema_kimg_value() == 20 and paper.ema_rampup is None and paper.ada_kimg == 100
    assert (paper.lr, paper.betas, paper.batch_size, paper.channels) == (0.0025, (0.0, 0.99), 64, 16384)
    assert (paper.augment, paper.augpipe, paper.ada_target, paper.num_fp16_res, paper.conv_clamp) == \
        ("ada", "bgc", 0.6, 4, 256.0)
    assert (paper.num_frames, paper.max_dist, paper.pl_weight, paper.style_mixing_prob) == (3, 32, 0.0, 0.0)
    sg2 = vgz.create("recipe", "stylegan2", preset="paper").config  # stylegan2-ada --cfg=paper256
    assert (sg2.r1_gamma_value(), sg2.ema_kimg_value(), sg2.mapping_layers, sg2.pl_weight) == (1.0, 20.0, 8, 2.0)
    with pytest.raises(vgz.ConfigError, match="resolution"):
        vgz.create("recipe", "styleganv", preset="tiny", resolution=48)


def test_lazy_regularization_scales_adam_like_the_official_loop():
    recipe = vgz.create("recipe", "styleganv", preset="paper")
    w = torch.nn.Parameter(torch.zeros(1))
    g, d = recipe.optimizer("G", [w]).defaults, recipe.optimizer("D", [w]).defaults
    assert g["lr"] == pytest.approx(0.0025 * 4 / 5) and g["betas"][1] == pytest.approx(0.99 ** (4 / 5))
    assert d["lr"] == pytest.approx(0.0025 * 16 / 17) and d["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    names = [(p.name, p.interval) for p in recipe.phases()]
    assert names == [("Gmain", 1), ("Dmain", 1), ("Dreg", 16)]  # no path-length reg for StyleGAN-V
    sg2 = vgz.create("recipe", "stylegan2", preset="paper")
    assert [(p.name, p.interval) for p in sg2.phases()] == [("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16)]


def test_r1_penalty_matches_its_definition():
    from vgz.training.losses import PhaseContext, StyleGAN2Loss

    weight = torch.randn(3, 4, 4)
    run_D = lambda D, frames, c, t: (frames.square() * weight).sum([1, 2, 3, 4])  # noqa: E731
    loss = StyleGAN2Loss(None, run_D, r1_gamma=10.0)
    frames = torch.randn(2, 5, 3, 4, 4)
    ctx = PhaseContext(nets={"D": None}, real={"frames": frames, "c": None, "t": None}, gen={},
                       grad=lambda out, x: torch.autograd.grad(out, x, create_graph=True)[0])
    value = loss.d_r1(ctx)
    grads = 2 * frames * weight  # d/dx sum(w x^2)
    expected = grads.square().sum([2, 3, 4]).mean(1).mean() * 5.0  # mean over frames, gamma / 2
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_override_parsing():
    from vgz.cli.main import parse_overrides

    assert parse_overrides(["--r1-gamma", "0.5", "--betas=0,0.9", "--xflip", "false", "--batch-gpu", "none",
                            "--augment", "noaug"]) == \
        {"r1_gamma": 0.5, "betas": [0, 0.9], "xflip": False, "batch_gpu": None, "augment": "noaug"}
    with pytest.raises(ValueError, match="--lr needs a value"):
        parse_overrides(["--lr"])


# ----------------------------------------------------------------------------- runs


def test_tiny_run_writes_samples_checkpoints_and_a_pipeline(tmp_path):
    trainer = _trainer(tmp_path / "run", steps=2)
    assert trainer.train() == "done" and trainer.step == 2
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"] == "styleganv" and config["recipe_config"]["batch_size"] == 4
    assert (run / "checkpoints" / "step-00000002" / "trainer_state.json").is_file()
    assert (run / "samples" / "step-00000002.mp4").stat().st_size > 0
    frames, _ = vgz.read_video(run / "samples" / "step-00000002.mp4")
    assert frames.shape == (4, 3, 32, 64)  # 2 seeds side by side, sample_frames=4
    stats = [json.loads(line) for line in (run / "logs" / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["step"] == 2 and {"loss/G", "loss/D", "augment/p", "lr/G"} <= set(stats[-1])
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "logs").iterdir())
    pipe = vgz.VideoPipeline.from_pretrained(run / "pipeline")
    ema = load_file(run / "checkpoints" / "step-00000002" / "ema.safetensors")
    assert torch.equal(pipe.synthesis.state_dict()["b4.const"], ema["synthesis.b4.const"])
    assert pipe(num_videos=1, num_frames=3, generator=0).frames.shape == (1, 3, 3, 32, 32)
    # Checkpoints hold no pickles: resuming reads safetensors and JSON only.
    assert {p.suffix for p in (run / "checkpoints" / "step-00000002").iterdir()} == {".safetensors", ".json"}
    with pytest.raises(RunFolderError, match="already holds a run .*pass --resume"):
        _trainer(run, steps=2)


def test_logged_seconds_per_step_are_the_mean_since_the_last_log(tmp_path):
    """Steps differ in length (a phase every k-th step): the log gives their mean, not the last one's."""
    trainer = _trainer(tmp_path / "run", steps=4, log_every=2, checkpoint_every=100, sample_every=100)
    plain, durations = trainer.train_step, []

    def step():
        start = time.perf_counter()
        if trainer.step % 2 == 0:  # the first step of each logged pair is a second longer
            time.sleep(1.0)
        out = plain()
        durations.append(time.perf_counter() - start)
        return out

    trainer.train_step = step
    assert trainer.train() == "done"
    stats = [json.loads(line) for line in (tmp_path / "run" / "logs" / "stats.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["progress/sec_per_step"] for r in stats}
    for at in (2, 4):
        mean = sum(durations[at - 2:at]) / 2
        assert abs(logged[at] - mean) < 0.2, f"step {at}: logged {logged[at]:.3f} s, steps {durations[at - 2:at]}"

def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    acc = trainer.accelerator
    out = {f"G.{k}": v for k, v in acc.unwrap_model(trainer.G).state_dict().items()}
    out.update({f"D.{k}": v for k, v in acc.unwrap_model(trainer.D).state_dict().items()})
    out.update({f"ema.{k}": v for k, v in trainer.G_ema.state_dict().items()})
    for name, opt in (("optG", trainer.opt_G), ("optD", trainer.opt_D)):
        for i, s in opt.state_dict()["state"].items():
            out.update({f"{name}.{i}.{k}": v for k, v in s.items() if torch.is_tensor(v)})
    return out


def test_resume_continues_exactly(tmp_path):
    # Steps 0..2 in one go, and 0..1 then a resumed 2: bit-identical weights, EMA and Adam state (same
    # data position, latents, augmentations and regularization schedule). R1 every 2 steps.
    # (ADA's colour transforms draw from the RNGs like the others, and cost little on a CPU.)
    common = dict(ada_interval=1, augment_p=0.5, d_reg_interval=2, augpipe="color")
    straight = build_trainer("styleganv", preset="tiny", data=DATA, outdir=tmp_path / "a", overrides={**TINY, **common},
                             run_overrides={**RUN, "steps": 3, "checkpoint_every": 2, "sample_every": 100})
    straight.train()
    first = build_trainer("styleganv", preset="tiny", data=DATA, outdir=tmp_path / "b", overrides={**TINY, **common},
                          run_overrides={**RUN, "steps": 2, "checkpoint_every": 2, "sample_every": 100})
    first.train()
    resumed = build_trainer("styleganv", preset="tiny", data=DATA, outdir=tmp_path / "b", resume=True,
                            run_overrides={"steps": 3})
    assert resumed.step == 2 and resumed.nimg == first.nimg
    resumed.train()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"differs after resume: {different[:5]}"
    assert float(straight.augment_pipe.p) == float(resumed.augment_pipe.p) > 0
    with pytest.raises(RunFolderError, match="recipe settings"):
        build_trainer("styleganv", preset="tiny", data=DATA, outdir=tmp_path / "b", resume=True,
                      overrides={"lr": 0.1})


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path / "run", steps=6)
    original = trainer.phases[0].loss
    calls = {"n": 0}

    def poisoned(ctx):
        calls["n"] += 1
        return original(ctx) * (float("nan") if calls["n"] > 3 else 1.0)

    trainer.phases[0] = type(trainer.phases[0])("Gmain", "G", 1, poisoned)
    with pytest.raises(TrainingDiverged, match=r"step 4: Gmain loss nan.*step-00000002"):
        trainer.train()
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["step-00000002"]


def test_ada_moves_p_towards_the_target(tmp_path):
    trainer = _trainer(tmp_path / "run", steps=1)
    recipe, cfg = trainer.recipe, trainer.recipe.config
    trainer.stats["signs/real"] = [torch.ones(8)]  # D is sure every real clip is real: overfitting
    trainer.step = cfg.ada_interval
    recipe.end_step(trainer)
    step = cfg.batch_size * cfg.ada_interval / (cfg.ada_kimg * 1000)
    assert float(trainer.augment_pipe.p) == pytest.approx(step)
    trainer.stats["signs/real"] = [-torch.ones(8)]
    recipe.end_step(trainer)
    recipe.end_step(trainer)
    assert float(trainer.augment_pipe.p) == 0.0  # clamped at 0


def test_stylegan2_recipe_trains_with_path_length_reg_and_exports_an_image_pipeline(tmp_path):
    trainer = build_trainer("stylegan2", preset="tiny", data=DATA, outdir=tmp_path / "run",
                            overrides=TINY, run_overrides={**RUN, "steps": 1})
    assert trainer.train() == "done"
    assert trainer.recipe.loss.pl_mean > 0  # the G reg phase ran at step 0
    assert (tmp_path / "run" / "samples" / "step-00000001.png").is_file()
    pipe = vgz.VideoPipeline.from_pretrained(tmp_path / "run" / "pipeline")
    assert type(pipe).__name__ == "StyleGAN2Pipeline"
    assert pipe(num_images=2, generator=0).frames.shape == (2, 1, 3, 32, 32)


def test_bf16_mixed_precision_on_cpu(tmp_path):
    # Augmentations on (p 0.5): R1 then differentiates twice through the pipe's resampling in bf16.
    trainer = build_trainer("styleganv", preset="tiny", data=DATA, outdir=tmp_path / "run",
                            overrides={**TINY, "d_reg_interval": 1, "augment_p": 0.5},
                            run_overrides={**RUN, "steps": 1, "mixed_precision": "bf16"})
    losses = trainer.train_step()
    assert set(losses) == {"Gmain", "Dmain", "Dreg"} and all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    with pytest.raises(ValueError, match="fp16' needs a GPU"):
        build_trainer("styleganv", preset="tiny", data=DATA, outdir=tmp_path / "fp16", overrides=TINY,
                      run_overrides={**RUN, "mixed_precision": "fp16", "cpu": True})


# ----------------------------------------------------------------------------- the command line


def test_cli_dry_run_and_bad_settings(tmp_path):
    out = _vgz("train", "--recipe", "styleganv", "--data", "synthetic:shapes", "--resolution", "128",
               "--r1-gamma", "0.5", "--checkpoint-every", "7", "--dry-run")
    assert out.returncode == 0, out.stderr
    resolved = json.loads(out.stdout)
    assert resolved["recipe_config"]["resolution"] == 128 and resolved["derived"]["r1_gamma"] == 0.5
    assert resolved["run"]["checkpoint_every"] == 7
    bad = _vgz("train", "--recipe", "styleganv", "--data", "synthetic:shapes", "--r1-gama", "1", "--dry-run")
    assert bad.returncode == 1 and "--r1-gama is not a setting" in bad.stderr and "--r1-gamma" in bad.stderr
    missing = _vgz("train", "--recipe", "styleganv", "--data", str(tmp_path / "nope"), "--outdir", str(tmp_path / "r"))
    assert missing.returncode == 1 and str(tmp_path / "nope") in missing.stderr
    assert not (tmp_path / "r").exists()  # failed before building anything


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    start = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stderr.read()}")
        if time.time() - start > timeout:
            proc.kill()
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_cli_interrupt_and_resume(tmp_path, how):
    run = tmp_path / "run"
    args = ["train", "--recipe", "styleganv", "--data", DATA, "--preset", "tiny", "--outdir", str(run),
            "--batch-size", "4", "--mbstd-group-size", "2", "--num-workers", "0", "--progress", "false",
            "--checkpoint-every", "2", "--sample-every", "1000", "--sample-seeds", "0"]
    # Its own process group, signalled as a whole like Ctrl-C in a terminal: the data-loader worker
    # gets the SIGINT too and must not break the checkpoint.
    proc = subprocess.Popen([sys.executable, "-m", "vgz", *args, "--steps", "1000", "--num-workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(run / "checkpoints" / "step-00000002", proc)
    os.killpg(proc.pid, getattr(signal, how))
    stdout, stderr = proc.communicate(timeout=120)
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step-"))
    latest = int(checkpoints[-1].split("-")[1])
    if how == "SIGINT":
        assert proc.returncode == 130, stderr  # saved, and non-zero as after any interrupted command
        assert f"Stopped by a signal at step {latest}" in stdout
    assert not any(p.name.endswith(".tmp") for p in (run / "checkpoints").iterdir()) or how == "SIGKILL"
    resumed = _vgz(*args, "--steps", str(latest + 1), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"steps from step {latest}" in resumed.stdout
    assert f"done: step {latest + 1}" in resumed.stdout


# ----------------------------------------------------------------------------- datasets with bad files


def test_bad_videos_are_skipped_and_reported(tmp_path):
    from vgz.data.video import export_video

    data = tmp_path / "videos"
    data.mkdir()
    gen = torch.Generator().manual_seed(0)
    for i in range(3):
        export_video(torch.rand(40, 3, 36, 36, generator=gen), data / f"good{i}.mp4", fps=25)
    export_video(torch.rand(2, 3, 36, 36, generator=gen), data / "short.mp4", fps=25)  # < 3 frames
    (data / "empty.mp4").write_bytes(b"")
    (data / "corrupt.mp4").write_bytes(os.urandom(4096))
    with pytest.warns(UserWarning, match="3 "):
        trainer = build_trainer("styleganv", preset="tiny", data=str(data), outdir=tmp_path / "run",
                                overrides=TINY, run_overrides={**RUN, "steps": 1})
    assert len(trainer.dataset) == 3
    assert trainer.train() == "done"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"]["skipped"] == 3


# ----------------------------------------------------------------------------- multi-process


def test_ddp_two_processes_keep_identical_weights(tmp_path):
    # Two real processes (gloo on CPU) train 3 steps; afterwards every rank holds the same weights.
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "VGZ_TEST_OUT": str(tmp_path)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(worker)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rank{i}.safetensors") for i in range(2)]
    assert ranks[0].keys() == ranks[1].keys() and len(ranks[0]) > 10
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["world_size"] == 2 and info["step"] == 3 and info["rounds"] == 1
    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000003"
    assert (checkpoint / "rank-1.json").is_file() and (checkpoint / "G_optimizer.safetensors").is_file()
