"""Training under faults: signals to the whole process group, exit codes, damaged checkpoints, a full
disk, resuming with other settings, failed starts, two runs in one folder, duplicated logs."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vgz.cli.main import app
from vgz.hub import ModelNotFoundError, model_folder
from vgz.training import CheckpointError, CheckpointWarning, RunFolderError, build_trainer

# The smallest StyleGAN-V that trains: 16x16, 2 clips a step (a step takes well under a second on a CPU).
SMALL = {"batch_size": 2, "mbstd_group_size": 2, "resolution": 16}
RUN = {"num_workers": 0, "progress": False, "sample_every": 1000, "sample_seeds": [0], "sample_frames": 2,
       "log_every": 1, "checkpoint_every": 2}
DATA = "synthetic:shapes?num_videos=8&num_frames=40"
CLI_RUN = ["--preset", "tiny", "--batch-size", "2", "--mbstd-group-size", "2", "--resolution", "16",
           "--progress", "false", "--sample-every", "1000", "--sample-seeds", "0", "--log-every", "1"]


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _build(outdir, steps=4, resume=False, **kwargs):
    """A new run of SMALL on DATA, or (resume) the run in ``outdir`` with only ``steps`` changed."""
    kwargs.setdefault("recipe", None if resume else "styleganv")
    kwargs.setdefault("data", None if resume else DATA)
    kwargs.setdefault("preset", None if resume else "tiny")
    kwargs.setdefault("overrides", None if resume else SMALL)
    run = {**({} if resume else RUN), "steps": steps, **kwargs.pop("run", {})}
    return build_trainer(outdir=outdir, run_overrides=run, resume=resume, **kwargs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run of 4 steps with checkpoints at steps 2 and 4 (tests copy it)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    run = tmp_path_factory.mktemp("trained") / "run"
    trainer = _build(run)
    assert trainer.train() == "done"
    AcceleratorState._reset_state(reset_partial_state=True)
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def _checkpoint_names(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


# ----------------------------------------------------------------------------- signals and exit codes


def _wait_for_log(run: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    start = time.time()
    stats = run / "logs" / "stats.jsonl"
    while not (stats.is_file() and stats.read_text().strip()):
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stderr.read()}")
        if time.time() - start > timeout:
            proc.kill()
            raise AssertionError("no step was logged")
        time.sleep(0.1)


def _stop_group_and_check(proc: subprocess.Popen, run: Path) -> str:
    """SIGTERM to the whole process group, as scancel or `kill -TERM -- -PGID` sends it; the run must
    save, say so and exit 143 within seconds (the data-loader workers must not die first)."""
    sent = time.time()
    os.killpg(proc.pid, signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert time.time() - sent < 20, "stopping took too long"
    assert proc.returncode == 143, stderr[-2000:]
    assert "DataLoader worker" not in stderr and "Traceback" not in stderr, stderr[-2000:]
    assert "Stopped by a signal at step" in stdout
    step = int(stdout.split("Stopped by a signal at step ")[1].split(";")[0])
    assert (run / "checkpoints" / f"step-{step:08d}" / "trainer_state.json").is_file()
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    return step


def test_sigterm_to_the_process_group_saves_and_exits_143(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "vgz", "train", "--recipe", "styleganv", "--data", DATA,
                             "--outdir", str(run), *CLI_RUN, "--steps", "10000", "--num-workers", "2",
                             "--checkpoint-every", "10000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_log(run, proc)
    step = _stop_group_and_check(proc, run)
    resumed = _build(run, steps=step + 1, resume=True, run={"num_workers": 0})
    assert resumed.step == step
    assert resumed.train() == "done" and resumed.step == step + 1


# Workers that take a while to start, so that the signal arrives before they ignore it (with the
# spawn start method, or a slow import, this window lasts seconds).
SLOW_WORKERS = """
import os, sys, time
import vgz.data.datasets as datasets
original = datasets._worker_init
def slow_init(worker_id):
    open(os.path.join(os.environ["VGZ_TEST_MARKS"], str(os.getpid())), "w").close()
    time.sleep(3)
    original(worker_id)
datasets._worker_init = slow_init
from vgz.cli.main import main
sys.argv = ["vgz", *sys.argv[1:]]
main()
"""


def test_sigterm_while_the_workers_start_does_not_kill_them(tmp_path):
    run, marks = tmp_path / "run", tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WORKERS, "train", "--recipe", "styleganv", "--data", DATA,
                             "--outdir", str(run), *CLI_RUN, "--steps", "10000", "--num-workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "VGZ_TEST_MARKS": str(marks)})
    start = time.time()
    while len(list(marks.iterdir())) < 2:
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() - start < 180, "the workers did not start"
        time.sleep(0.05)
    assert _stop_group_and_check(proc, run) == 1  # the step under way ends, is saved, and the run stops


# ----------------------------------------------------------------------------- damaged checkpoints, full disk


def test_damaged_newest_checkpoint_is_named_and_the_older_one_used(trained, tmp_path):
    run = _copy(trained, tmp_path)
    (run / "checkpoints" / "step-00000004" / "G_optimizer.safetensors").write_bytes(b"")
    with pytest.warns(CheckpointWarning, match=r"older checkpoint .*step-00000002.*G_optimizer.safetensors is empty"):
        trainer = _build(run, resume=True)
    assert trainer.step == 2 and trainer.last_checkpoint.name == "step-00000002"
    trainer.close()
    # Set aside, so it neither shadows the good one again nor counts as a kept checkpoint.
    assert _checkpoint_names(run) == ["damaged-step-00000004", "step-00000002"]

    # With nothing left to fall back on: one error line naming the file, no traceback.
    (run / "checkpoints" / "step-00000002" / "rank-0.json").write_text('{"np_rng": ')
    result = CliRunner().invoke(app, ["train", "--outdir", str(run), "--resume"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert str(run / "checkpoints" / "step-00000002" / "rank-0.json") in result.stderr
    assert "without --resume" in result.stderr


def test_full_disk_during_a_checkpoint_cleans_up_and_keeps_the_previous_one(trained, tmp_path, monkeypatch):
    import safetensors.torch

    run = _copy(trained, tmp_path)
    save_file = safetensors.torch.save_file

    def full_disk(tensors, filename, *args, **kwargs):
        if "step-00000006" in str(filename):
            raise OSError(errno.ENOSPC, "No space left on device", str(filename))
        return save_file(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    trainer = _build(run, steps=6, resume=True)
    with pytest.raises(CheckpointError, match=r"step 6 not saved: no space left on the device holding .*checkpoints"
                                              r".*step-00000004 is intact"):
        trainer.train()
    assert _checkpoint_names(run) == ["step-00000002", "step-00000004"]  # no .step-00000006.tmp left
    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    resumed = _build(run, steps=6, resume=True)
    assert resumed.step == 4
    assert resumed.train() == "done" and _checkpoint_names(run) == ["step-00000004", "step-00000006"]


# ----------------------------------------------------------------------------- resuming: settings and logs


def test_resume_uses_the_runs_settings_and_accepts_only_the_same_data(tmp_path):
    import torch

    from vgz.data.video import export_video

    videos = tmp_path / "videos"
    videos.mkdir()
    gen = torch.Generator().manual_seed(0)
    for i in range(2):
        export_video(torch.rand(40, 3, 16, 16, generator=gen), videos / f"v{i}.mp4", fps=25)
    run = tmp_path / "run"
    first = build_trainer("styleganv", preset="tiny", data=str(videos), outdir=run, overrides=SMALL,
                          run_overrides={**RUN, "steps": 2})
    assert first.train() == "done"

    with pytest.raises(RunFolderError, match="started with preset 'tiny', not --preset 'paper'"):
        _build(run, resume=True, preset="paper")
    not_the_data = re.escape(f"--data {DATA} is not the run's data") + ".*" + re.escape(str(videos))
    with pytest.raises(RunFolderError, match=not_the_data):
        _build(run, resume=True, data=DATA)
    moved = tmp_path / "moved"
    videos.rename(moved)
    with pytest.raises(RunFolderError, match=re.escape(f"run's data '{videos}'") + ".*cannot be opened.*new location"):
        _build(run, resume=True)

    # A moved copy of the same data is accepted and recorded; the banner shows what is used.
    result = CliRunner().invoke(app, ["train", "--outdir", str(run), "--resume", "--data", str(moved),
                                      "--steps", "2", "--progress", "false"])
    assert result.exit_code == 0, result.output
    assert f"training styleganv (tiny) on {moved}: 2 videos, 2 steps from step 2" in result.stdout
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"] == str(moved) and saved["preset"] == "tiny" and saved["recipe_config"]["resolution"] == 16


def test_resume_does_not_log_replayed_steps_twice(trained, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _copy(trained, tmp_path)
    shutil.rmtree(run / "checkpoints" / "step-00000004")  # steps 3 and 4 were logged, then the run died
    with open(run / "logs" / "stats.jsonl", "a") as f:
        f.write('{"step": 5, "loss/G": 0.')  # cut short by the kill
    trainer = _build(run, steps=3, resume=True)
    assert trainer.step == 2 and trainer.train() == "done"
    steps = [json.loads(line)["step"] for line in (run / "logs" / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    events = EventAccumulator(str(run / "logs"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/G")] == [1, 2, 3]


# ----------------------------------------------------------------------------- the run folder


def test_a_run_that_failed_before_its_first_checkpoint_does_not_block_its_folder(tmp_path):
    run = tmp_path / "run"
    # A start that failed before any checkpoint (e.g. out of memory at step 0) leaves only config.json.
    failed = _build(run, overrides={**SMALL, "lr": 0.1})
    failed.close()
    assert (run / "config.json").is_file() and not (run / "checkpoints").exists()
    with pytest.raises(ModelNotFoundError, match="training run folder with no exported pipeline yet"):
        model_folder(run)

    retry = _build(run)  # a fresh start, with this call's settings
    assert retry.recipe.config.lr == 0.002 and retry.step == 0
    retry.close()
    assert json.loads((run / "config.json").read_text())["recipe_config"]["lr"] == 0.002

    record = json.loads((run / "config.json").read_text())
    record["preset"], record["recipe_config"]["lr"] = "paper", 0.1
    (run / "config.json").write_text(json.dumps(record))
    again = _build(run, resume=True, preset="tiny", overrides=SMALL)  # --resume --preset tiny: no failed settings
    assert again.recipe.config.lr == 0.002 and again.settings["preset"] == "tiny" and again.step == 0
    again.close()


def test_two_runs_cannot_share_a_folder(tmp_path):
    run = tmp_path / "run"
    first = _build(run)
    in_use = re.escape(f"{run} is in use by another training process (pid {os.getpid()})")
    with pytest.raises(RunFolderError, match=in_use):
        _build(run)
    first.close()
    _build(run).close()  # free again once the first is done
