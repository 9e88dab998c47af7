"""`vgz eval` as a hostile user runs it: a read-only model folder, detectors whose output cannot give
a distance, real data with too few or too short videos, and the generation batch size. Detectors are
small TorchScript files with the official call signatures (StyleGAN-V's I3D, StyleGAN2-ADA's
Inception), so that each evaluation here takes a second, not minutes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from typer.testing import CliRunner

import vgz.metrics.evaluation
import vgz.utils
from vgz.cli.main import app
from vgz.metrics.evaluation import EvaluationError, evaluate
from vgz.metrics.frechet import FewSamplesWarning
from vgz.metrics.protocol import FVD

DATA = "synthetic:shapes?num_videos=3&num_frames=16"
runner = CliRunner()


class PooledClips(nn.Module):
    """Video features: each clip pooled to 2 x 4 x 4 cells per channel (96 numbers)."""

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = True) -> torch.Tensor:
        return F.adaptive_avg_pool3d(x.float() / 255, [2, 4, 4]).flatten(1)  # x: [B, C, T, H, W]


class PooledImages(nn.Module):
    """Image features: each image pooled to 4 x 4 cells per channel (48 numbers)."""

    def forward(self, x: torch.Tensor, return_features: bool = True) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.float() / 255, [4, 4]).flatten(1)


class ConstantClips(nn.Module):
    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = True) -> torch.Tensor:
        return torch.zeros([x.shape[0], 400])


class OneFeature(nn.Module):
    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = True) -> torch.Tensor:
        return x.float().mean(dim=[1, 2, 3, 4]).unsqueeze(1)


class NotFinite(nn.Module):
    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = True) -> torch.Tensor:
        return torch.full([x.shape[0], 400], float("nan"))


def script(module: nn.Module, path: Path) -> Path:
    torch.jit.script(module).save(str(path))
    return path


@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    root = tmp_path_factory.mktemp("detectors")
    return script(PooledClips(), root / "i3d_torchscript.pt"), script(PooledImages(), root / "inception-2015-12-05.pt")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from vgz.pipelines.styleganv import StyleGANVPipeline

    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("model") / "tiny-styleganv"
    StyleGANVPipeline.from_preset("tiny").save_pretrained(folder)
    return folder


@pytest.fixture
def model_dir(saved_model, tmp_path):
    """A fresh copy per test: evaluations write into it."""
    return Path(shutil.copytree(saved_model, tmp_path / "model"))


def eval_args(model, *detector_files, metrics="fvd16", data=DATA, extra=()):
    args = ["eval", str(model), "--data", data, "--metrics", metrics, "--no-cache", "--num-workers", "0", "--quiet"]
    for path in detector_files:
        args += ["--detector", str(path)]
    return args + list(extra)


def frame_folders(root: Path, lengths, size=8) -> Path:
    """Real PNG frame folders: video i has lengths[i] frames of noise."""
    rng = np.random.default_rng(0)
    for i, length in enumerate(lengths):
        folder = root / f"video{i}"
        folder.mkdir(parents=True)
        for j in range(length):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{j}.png")
    return root


# --------------------------------------------------------------------------------- read-only output


def test_results_are_printed_before_a_failing_write(model_dir, detectors, monkeypatch):
    """The model folder turns out read-only only when the results are written (a write that fails
    with EROFS, as on a read-only mount; root passes any permission check up front)."""
    real_write = vgz.utils.atomic_write_text

    def read_only_model_folder(path, text):
        if Path(path).resolve().parent == model_dir.resolve():
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_write(path, text)

    monkeypatch.setattr(vgz.utils, "atomic_write_text", read_only_model_folder)
    result = runner.invoke(app, eval_args(model_dir, detectors[0], extra=["--num-videos", "3"]))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    values = [i for i, line in enumerate(lines) if line.startswith("fvd16: ")]
    assert values and float(lines[values[0]].split()[1]) > 0
    last = lines[-1]
    assert values[0] < len(lines) - 1 and last.startswith("error: ")
    # Both files named, why (vgz.utils.describe_os_error's words), and what to pass instead.
    json_part, card_part = last[len("error: "):].split("; pass --out FILE to save the results elsewhere; ")
    assert str(model_dir / "eval_results.json") in json_part and "read-only file system" in json_part.lower()
    assert str(model_dir / "README.md") in card_part and "read-only file system" in card_part.lower()
    assert card_part.endswith("; pass --no-card to skip the model card (the results printed above were computed)")
    assert not (model_dir / "eval_results.json").exists()


def test_an_unwritable_model_folder_is_refused_before_evaluating(model_dir, detectors, tmp_path, monkeypatch):
    real_access = os.access

    def access(path, mode, *args, **kwargs):  # what a user without write permission is told
        if Path(path).resolve() == model_dir.resolve() and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    def not_now(*args, **kwargs):
        raise AssertionError("evaluate() ran although its result could not be saved")

    monkeypatch.setattr(os, "access", access)
    with monkeypatch.context() as m:
        m.setattr(vgz.metrics.evaluation, "evaluate", not_now)
        result = runner.invoke(app, eval_args(model_dir, detectors[0], extra=["--num-videos", "3"]))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: cannot write {model_dir / 'eval_results.json'}: the folder {model_dir} is not "
                           "writable; pass --out FILE in a writable folder")
    assert f"cannot write the model card {model_dir / 'README.md'}" in line and "pass --no-card" in line
    assert line.endswith("(nothing was evaluated)")
    # Where it was told to go, it goes.
    out = tmp_path / "results" / "eval.json"
    result = runner.invoke(app, eval_args(model_dir, detectors[0], extra=["--num-videos", "3", "--no-card",
                                                                          "--out", str(out)]))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["results"]["fvd16"] > 0 and not (model_dir / "README.md").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_model_folder_by_permissions(model_dir, detectors):
    model_dir.chmod(0o555)
    try:
        result = runner.invoke(app, eval_args(model_dir, detectors[0], extra=["--num-videos", "3"]))
    finally:
        model_dir.chmod(0o755)
    assert result.exit_code == 1 and "is not writable; pass --out FILE" in result.output


def test_out_under_a_file_is_refused_at_once(model_dir, detectors, tmp_path):
    (tmp_path / "taken").write_text("a file")
    result = runner.invoke(app, eval_args(model_dir, detectors[0], extra=["--out", str(tmp_path / "taken" / "r.json"),
                                                                          "--no-card"]))
    assert result.exit_code == 1
    assert "is a file, not a folder; pass --out FILE in a writable folder" in result.output


# --------------------------------------------------------------------------------- degenerate detectors


@pytest.mark.parametrize("module, message", [
    (ConstantClips(), "expected features that change with the input, found the same 400 features for a black "
                      "and a noise clip"),
    (OneFeature(), "expected at least 2 features per item"),
    (NotFinite(), "expected finite features, found NaN or infinite values"),
])
def test_a_degenerate_detector_is_refused_by_name(model_dir, tmp_path, module, message):
    """Constant features made FVD 0.0 (and NaN ones a traceback) after the whole evaluation."""
    path = script(module, tmp_path / f"{type(module).__name__}.pt")
    result = runner.invoke(app, eval_args(model_dir, path, extra=["--num-videos", "3"]))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {path}: {message}")
    assert not (model_dir / "eval_results.json").exists()


# --------------------------------------------------------------------------------- too few real videos


def test_no_video_long_enough_fails_before_anything_is_generated(model_dir, detectors, tmp_path, monkeypatch):
    data = frame_folders(tmp_path / "short", [5, 12, 9])

    def not_now(*args, **kwargs):
        raise AssertionError("samples were taken although no real video is long enough")

    monkeypatch.setattr(FVD, "real_samples", not_now)
    monkeypatch.setattr(FVD, "fake_samples", not_now)
    result = runner.invoke(app, eval_args(model_dir, detectors[0], data=str(data)))
    assert result.exit_code == 1, result.output
    assert (f"error: fvd16: real data {data}: expected videos of at least 16 frames (the metric's clip length), "
            "found none among its 3 videos (shortest 5 frames, longest 12)") in result.output
    result = runner.invoke(app, eval_args(model_dir, detectors[0], metrics="fvd128_subsample8"))
    assert "expected videos of at least 128 frames" in result.output
    assert "shortest 16 frames, longest 16" in result.output


def test_fewer_real_videos_than_the_protocol_warns_before_sampling(saved_model, detectors, tmp_path, monkeypatch):
    data = frame_folders(tmp_path / "few", [20, 5, 16, 18])

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(FVD, "real_samples", stop)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Stop):
            evaluate(saved_model, str(data), ["fvd16"], detectors=[detectors[0]], cache_dir=False, progress=False,
                     num_workers=0)
    (warning,) = [w for w in caught if issubclass(w.category, FewSamplesWarning)]
    assert str(warning.message) == (f"fvd16: real data {data} gives 3 clips, the protocol takes 2048 (1 of its 4 "
                                    "videos are shorter than 16 frames); with fewer than 400 the value is not "
                                    "comparable to published ones")
    # Asking for fewer (--num-videos) is not a surprise: no warning for it.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Stop):
            evaluate(saved_model, str(data), ["fvd16"], detectors=[detectors[0]], cache_dir=False, progress=False,
                     num_workers=0, num_videos=3)
    assert not [w for w in caught if issubclass(w.category, FewSamplesWarning)]


# --------------------------------------------------------------------------------- generation batch size


def test_the_generation_batch_size_changes_nothing_but_memory(saved_model, detectors):
    from vgz.metrics.detectors import load_detector

    dets = [load_detector(path) for path in detectors]
    reports = {}
    for batch_size in (1, 3, None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FewSamplesWarning)
            reports[batch_size] = evaluate(saved_model, DATA, ["fvd16", "fid"], detectors=dets, num_videos=3,
                                           cache_dir=False, progress=False, num_workers=0, batch_size=batch_size)
    for batch_size, report in reports.items():
        # The same clips (seeds), the same detector batches: the same statistics. Batched
        # convolutions of the generator may round a pixel differently, hence no bitwise equality.
        assert report.results == pytest.approx(reports[None].results, rel=1e-6, abs=1e-9)
        assert report.generation["batch_size"] == batch_size
        taken = report.protocols["fvd16"]["fake_taken"]
        assert taken["batch_size"] == (batch_size or 8) and taken["items"] == 3 and taken["seed"] == 0
        assert report.protocols["fid"]["fake_taken"]["batch_size"] == (batch_size or 2)
    with pytest.raises(EvaluationError, match="batch_size: expected a number of videos >= 1, found 0"):
        evaluate(saved_model, DATA, ["fvd16"], detectors=dets, batch_size=0, cache_dir=False, progress=False)


def test_vgz_eval_batch_size_option(model_dir, detectors, tmp_path):
    out = tmp_path / "r.json"
    result = runner.invoke(app, eval_args(model_dir, *detectors, metrics="fvd16,fid",
                                          extra=["--num-videos", "3", "--batch-size", "2", "--out", str(out),
                                                 "--no-card"]))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["generation"]["batch_size"] == 2
    assert report["protocols"]["fvd16"]["fake_taken"]["batch_size"] == 2
    assert report["protocols"]["fid"]["fake_taken"]["batch_size"] == 2
    result = runner.invoke(app, eval_args(model_dir, *detectors, extra=["--batch-size", "0"]))
    assert result.exit_code != 0 and "--batch-size" in result.output
