"""benchmarks/gpu_suite.py runs every part at smoke sizes and writes every field (so it is ready whenever a GPU is lent)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.py"
VARIANTS = {"fp32", "mixed", "bf16", "fp16", "channels-last"}


def _suite(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SUITE), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path_factory.mktemp("suite") / "r.json"
    proc = _suite("--smoke", "--device", "cpu", "--jobs", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_every_part_runs_and_reports(smoke):
    _, result = smoke
    assert result["smoke"] is True and result["format"] == 1
    for key in ("device", "device_name", "torch", "cuda", "vgz", "vgz_commit", "python", "cpu_count"):
        assert key in result["machine"], key
    assert len(result["machine"]["vgz_commit"]) == 40  # git rev-parse of this checkout
    statuses = {name: part["status"] for name, part in result["parts"].items()}
    assert statuses == {"generate": "ok", "compile": "ok", "train": "ok", "fp16": "ok", "detectors": "ok",
                        "inversion": "ok", "styleinv": "ok", "styleinv-train": "ok", "stylevideogan": "ok",
                        "official": "skipped"}
    for name, part in result["parts"].items():
        assert 0 < part["wall_s"] <= part["budget_s"] or name == "official"  # skipped without a process


def _records(result: dict, part: str, what: str) -> list[dict]:
    return [r for r in result["parts"][part]["records"] if r.get("what") == what]


def test_generation_records(smoke):
    _, result = smoke
    gen = _records(result, "generate", "generate")
    assert {(r["variant"], r["frames"], r["batch"]) for r in gen} == {
        (v, f, b) for v in VARIANTS for f, b in [(4, 1), (8, 2)]}
    for r in gen:
        assert r["frames_per_s"] > 0 and r["iters"] >= 1 and r["peak_mib"] is None  # no CUDA: no peak
        assert 0 <= r["max_diff_vs_fp32"] < 0.2
        # A CPU runs the release's fp16 blocks in fp32, so only a cast changes the frames.
        assert (r["max_diff_vs_fp32"] > 0) == (r["variant"] in ("bf16", "fp16"))
    (compiled,) = _records(result, "compile", "generate")
    assert compiled["variant"] == "compile" and compiled["backend"] == "eager"
    assert compiled["max_diff_vs_fp32"] < 1e-5 and compiled["first_call_s"] > compiled["s_per_call"]


def test_training_records(smoke):
    _, result = smoke
    train = _records(result, "train", "train")
    assert [r["precision"] for r in train] == ["no", "bf16"]
    for r in train:
        assert r["steps"] == 1 and r["clips_per_s"] > 0 and r["params"]["G"] > 0 and r["params"]["D"] > 0
    (fp16,) = _records(result, "fp16", "fp16")
    assert fp16["ok"] and all(fp16["checks"].values()) and set(fp16["checks"]) == {
        "steps", "final_losses_finite", "few_nonfinite_losses", "scaler_working", "parameters_finite", "r1_unscaled"}
    assert fp16["optimizer_steps"] == 2 * fp16["steps"] + math.ceil(fp16["steps"] / 16)  # G, D and every 16th Dreg
    assert fp16["r1"]["scale"] == 2**16 and fp16["r1"]["rel_diff"] < 1e-4 and fp16["r1"]["r1_plain"] > 0


def test_detector_records(smoke):
    _, result = smoke
    det = _records(result, "detectors", "detector")
    assert {(r["detector"], r["channels_last"]) for r in det} == {(d, c) for d in ("i3d", "inception")
                                                                  for c in (False, True)}
    assert all(r["per_s"] > 0 and r["max_diff_vs_contiguous"] < 1e-4 for r in det)


def test_inversion_records(smoke):
    _, result = smoke
    enc = _records(result, "inversion", "encoder")
    assert {(r["encoder"], r["precision"]) for r in enc} == {(e, p) for e in ("psp", "psp-w") for p in ("fp32", "bf16")}
    assert all(r["images_per_s"] > 0 for r in enc)
    assert all((r["max_diff_vs_fp32"] == 0) == (r["precision"] == "fp32") for r in enc)
    (pipe,) = _records(result, "inversion", "pipeline")
    assert pipe["images_per_s"] > 0 and pipe["resolution"] == 16


def test_printed_tables(smoke):
    proc, result = smoke
    for heading in ("Generation", "Training step", "fp16 loss scaling", "Detectors", "Inversion", "| variant |"):
        assert heading in proc.stdout
    assert "official not measured: no --official PATH" in proc.stdout


def test_a_part_past_its_budget_is_stopped_and_the_rest_runs(tmp_path):
    out = tmp_path / "r.json"
    proc = _suite("--smoke", "--device", "cpu", "--out", str(out), "--parts", "generate,official",
                  "--part-budget", "generate=0.5")
    assert proc.returncode == 1 and "generate timeout" in proc.stderr
    result = json.loads(out.read_text())
    assert result["parts"]["generate"]["status"] == "timeout" and result["parts"]["generate"]["wall_s"] < 10
    assert result["parts"]["official"]["status"] == "skipped"


def test_bad_arguments_are_clear_errors(tmp_path):
    proc = _suite("--smoke", "--out", str(tmp_path / "r.json"), "--parts", "generate,warp")
    assert proc.returncode == 2 and "unknown part(s) warp" in proc.stderr
    proc = _suite("--smoke")
    assert proc.returncode == 2 and "--out PATH is required" in proc.stderr
    if not _has_cuda():
        proc = _suite("--out", str(tmp_path / "r.json"))
        assert proc.returncode == 2 and "add --smoke" in proc.stderr


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_styleinv_records(smoke):
    proc, result = smoke
    gen = _records(result, "styleinv", "styleinv-generate")
    assert {(r["variant"], r["batch"]) for r in gen} == {(v, b) for v in ("fp32", "mixed") for b in (1, 2)}
    assert all(r["frames_per_s"] > 0 and r["max_diff_vs_fp32"] == 0 for r in gen)  # a CPU runs fp16 blocks in fp32
    (train,) = _records(result, "styleinv-train", "styleinv-train")
    assert train["batch"] == 2 and train["s_per_step"] > 0 and train["phases"] == ["Gmain", "Dmain", "Dreg"]
    assert "StyleInV generation" in proc.stdout and "StyleInV training step" in proc.stdout


def test_stylevideogan_records(smoke):
    proc, result = smoke
    train = _records(result, "stylevideogan", "stylevideogan-train")
    assert [r["phase"] for r in train] == ["Dmain", "Gmain"] and all(r["s_per_call"] > 0 for r in train)
    (schedule,) = _records(result, "stylevideogan", "stylevideogan-schedule")
    assert schedule["paper_steps"] == 350 * 234 and schedule["sequences_per_s"] > 0
    gen = _records(result, "stylevideogan", "stylevideogan-generate")
    assert {r["batch"] for r in gen} == {1, 2} and all(r["frames_per_s"] > 0 for r in gen)
    assert "StyleVideoGAN generation" in proc.stdout and "paper's schedule" in proc.stdout


def test_official_plugins_are_found_once_built(monkeypatch):
    """The official ``custom_ops`` imports each plugin by name after ``cpp_extension.load`` built it;
    current PyTorch does not register the module, so without the shim the official code always ran its
    fallbacks (the H200 run of 2026-11-29). The shim registers what ``load`` returns."""
    import importlib
    import types

    from torch.utils import cpp_extension

    monkeypatch.syspath_prepend(str(SUITE.parent))
    from bench_styleganv_generate import register_built_extensions

    built = types.ModuleType("vgz_test_plugin")
    monkeypatch.setattr(cpp_extension, "load", lambda name, **kwargs: built)
    monkeypatch.delitem(sys.modules, "vgz_test_plugin", raising=False)
    cpp_extension.load(name="vgz_test_plugin", sources=[])
    with pytest.raises(ModuleNotFoundError):  # what the official code met
        importlib.import_module("vgz_test_plugin")
    register_built_extensions()
    register_built_extensions()  # idempotent: one wrapper
    assert cpp_extension.load(name="vgz_test_plugin", sources=[]) is built
    assert importlib.import_module("vgz_test_plugin") is built
    monkeypatch.delitem(sys.modules, "vgz_test_plugin")
