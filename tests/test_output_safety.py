"""What vgz writes gets the permissions any other tool's file would (umask respected, a replaced
file keeps its mode), and replacing an output folder never deletes what vgz did not write."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import vgz
from test_conversion import styleganv_snapshot
from vgz.cli.main import app
from vgz.conversion.snapshots import convert_styleganv
from vgz.metrics.evaluation import EvalReport
from vgz.metrics.frechet import FeatureStats
from vgz.pipelines import StyleGANVPipeline
from vgz.utils import OutputFolderError, atomic_dir, atomic_write_text, current_umask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    path = tmp_path_factory.mktemp("snap") / "network-snapshot-000004.pkl"
    path.write_bytes(styleganv_snapshot())
    return path


def _tree_modes(root: Path) -> dict[str, int]:
    """Mode of every file and folder under ``root`` (itself included), by relative path."""
    out = {".": mode(root)}
    for p in root.rglob("*"):
        out[p.relative_to(root).as_posix()] = mode(p)
    return out


def test_current_umask_reads_without_changing(umask022):
    assert current_umask() == 0o022
    os.umask(0o027)
    assert current_umask() == 0o027
    assert current_umask() == 0o027  # reading did not reset it


def test_atomic_text_follows_umask_and_keeps_a_replaced_files_mode(tmp_path, umask022):
    path = tmp_path / "a.json"
    atomic_write_text(path, "1")
    assert mode(path) == 0o644
    os.chmod(path, 0o640)  # the user's choice survives a rewrite
    atomic_write_text(path, "2")
    assert mode(path) == 0o640 and path.read_text() == "2"
    os.umask(0o077)
    atomic_write_text(tmp_path / "b.json", "1")
    assert mode(tmp_path / "b.json") == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_saved_pipeline_videos_stats_reports_and_cards_are_world_readable(tmp_path, umask022):
    pipe = StyleGANVPipeline.from_preset("tiny")
    folder = pipe.save_pretrained(tmp_path / "pipe")
    modes = _tree_modes(folder)
    assert modes["model_index.json"] == 0o644 and modes["synthesis/model.safetensors"] == 0o644
    assert {m for p, m in modes.items() if (folder / p).is_dir()} == {0o755}
    assert {m for p, m in modes.items() if (folder / p).is_file()} == {0o644}

    video = vgz.export_video(torch.rand(4, 3, 16, 16), tmp_path / "v.mp4", fps=8)
    assert mode(video) == 0o644
    os.chmod(video, 0o664)
    vgz.export_video(torch.rand(4, 3, 16, 16), video, fps=8)
    assert mode(video) == 0o664

    stats = FeatureStats()
    stats.append(torch.randn(8, 4))
    stats.save(tmp_path / "cache" / "s.npz")
    assert mode(tmp_path / "cache" / "s.npz") == 0o644

    report = EvalReport(results={"fvd16": 1.0}, protocols={}, model="m", data="d", seed=0)
    assert mode(report.save(tmp_path / "eval.json")) == 0o644


def test_converted_folder_and_its_replacement_are_world_readable(snapshot, tmp_path, umask022):
    out = convert_styleganv(snapshot, tmp_path / "pipe")
    modes = _tree_modes(out)
    assert modes["."] == 0o755 and modes["synthesis"] == 0o755 and modes["synthesis/config.json"] == 0o644
    os.chmod(out, 0o750)  # replacing keeps the folder's own mode
    out = convert_styleganv(snapshot, tmp_path / "pipe", overwrite=True, discriminator=True)
    assert mode(out) == 0o750 and (out / "discriminator").is_dir()


def test_overwrite_refuses_folders_holding_other_files(snapshot, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "mine.txt").write_text("precious")
    with pytest.raises(OutputFolderError, match="mine.txt"):
        convert_styleganv(snapshot, mine, overwrite=True)
    assert (mine / "mine.txt").read_text() == "precious"

    # A vgz folder the user put a file into is refused as well, naming the file.
    out = convert_styleganv(snapshot, tmp_path / "pipe")
    (out / "synthesis" / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match="synthesis/notes.txt"):
        convert_styleganv(snapshot, out, overwrite=True)
    assert (out / "synthesis" / "notes.txt").is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_overwrite_refuses_the_working_directory_and_its_parents(snapshot, tmp_path, monkeypatch):
    work = tmp_path / "work" / "inner"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    runner = CliRunner()
    for target in (".", "..", str(tmp_path)):
        result = runner.invoke(app, ["convert", "styleganv", str(snapshot), target, "--overwrite"])
        assert result.exit_code == 1, result.output
        assert "error:" in result.output and "working directory" in result.output
    leftovers = [p for p in tmp_path.rglob(".*")]
    assert leftovers == [] and work.is_dir()


def test_atomic_dir_restores_the_old_folder_when_the_swap_fails(tmp_path, monkeypatch):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("old")
    real_replace = os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new folder cannot be moved in
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError):
        with atomic_dir(target, overwrite=True) as tmp:
            (tmp / "config.json").write_text("new")
    monkeypatch.undo()
    assert (target / "config.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_training_run_folder_is_world_readable(tmp_path, umask022):
    from accelerate.state import AcceleratorState

    from vgz.training import build_trainer

    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        trainer = build_trainer("styleganv", preset="tiny", data="synthetic:shapes?num_videos=8&num_frames=16",
                                outdir=tmp_path / "run", overrides={"batch_size": 2, "mbstd_group_size": 2},
                                run_overrides={"steps": 1, "num_workers": 0, "progress": False,
                                               "sample_seeds": [0], "sample_frames": 2})
        trainer.train()
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    modes = _tree_modes(tmp_path / "run")
    private = {p: oct(m) for p, m in modes.items() if not m & 0o044}
    assert not private, f"not readable by group/others: {private}"
    for name in ("config.json", "pipeline/model_index.json", "pipeline/synthesis/model.safetensors",
                 "samples/step-00000001.mp4"):
        assert modes[name] == 0o644, (name, oct(modes[name]))
    assert modes["pipeline"] == 0o755 and modes["checkpoints"] == 0o755
