"""`vgz eval` end to end: a tiny StyleGAN-V, the synthetic dataset, random-weight detectors loaded
from files as users load the real ones (StyleGAN-V's TorchScript I3D signature, a state-dict
Inception), the JSON result, the model card, and `vgz info` reading it back."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from vgz.cli.main import app
from vgz.metrics.detectors import DetectorError, TorchScriptDetector, load_detector, randomize_

DATA = "synthetic:shapes?num_videos=6&num_frames=16"
runner = CliRunner()


@pytest.fixture(scope="module")
def detector_files(tmp_path_factory):
    """Random-weight detectors as files: a TorchScript I3D with StyleGAN-V's call signature and a
    safetensors FID Inception state dict."""
    from safetensors.torch import save_file

    from vgz.metrics.i3d import I3DDetector, export_torchscript
    from vgz.metrics.inception import InceptionDetector

    root = tmp_path_factory.mktemp("detectors")
    i3d = export_torchscript(randomize_(I3DDetector(), seed=0), root / "i3d_torchscript.pt")
    inception = root / "inception.safetensors"
    weights = randomize_(InceptionDetector(), seed=1).net.state_dict()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(inception))
    return i3d, inception


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from vgz.pipelines.styleganv import StyleGANVPipeline

    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("model") / "tiny-styleganv"
    StyleGANVPipeline.from_preset("tiny").save_pretrained(folder)
    return folder


def test_detectors_load_by_content(detector_files):
    i3d, inception = detector_files
    video = load_detector(i3d)
    assert isinstance(video, TorchScriptDetector) and video.kind == "video" and len(video.sha256) == 64
    clips = torch.randint(0, 256, (2, 16, 3, 32, 32), dtype=torch.uint8)
    assert video(clips).shape == (2, 400)
    image = load_detector(inception, kind="image")
    assert image.name == "inception" and image(clips[:, 0]).shape == (2, 2048)
    with pytest.raises(DetectorError, match="expected a video detector"):
        load_detector(inception, kind="video")


def test_detector_errors_name_the_file(tmp_path):
    bad = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with pytest.raises(DetectorError, match=r"weights\.pt: expected the state dict of an I3D"):
        load_detector(bad)
    pkl = tmp_path / "inception-2015-12-05.pkl"
    pkl.write_bytes(b"\x80\x04.")
    with pytest.raises(DetectorError, match="runs the code stored in it"):
        load_detector(pkl)
    with pytest.raises(DetectorError, match="expected a file, a folder or a Hub repo id"):
        load_detector(tmp_path / "missing.pt")


def run_eval(model_dir, detector_files, cache, *extra, metrics="fvd16,fid"):
    i3d, inception = detector_files
    result = runner.invoke(app, ["eval", str(model_dir), "--data", DATA, "--metrics", metrics,
                                 "--detector", str(i3d), "--detector", str(inception), "--num-videos", "3",
                                 "--cache-dir", str(cache), "--num-workers", "0", "--quiet", *extra])
    assert result.exit_code == 0, result.output
    return result


def test_vgz_eval_writes_json_and_card_and_repeats_exactly(model_dir, detector_files, tmp_path):
    cache = tmp_path / "cache"
    first = run_eval(model_dir, detector_files, cache)
    report = json.loads((model_dir / "eval_results.json").read_text())
    assert set(report["results"]) == {"fvd16", "fid"}
    fvd = report["protocols"]["fvd16"]
    assert fvd["official_name"] == "fvd2048_16f" and fvd["num_frames"] == 16 and fvd["resolution"] == 16
    assert fvd["real_taken"]["items"] == 3 and fvd["fake_taken"]["items"] == 3 and fvd["comparable"] is False
    assert fvd["detector"]["sha256"] == load_detector(detector_files[0]).sha256
    assert report["protocols"]["fid"]["fake_taken"]["items"] == 48  # 3 videos x frames 0..15
    assert report["protocols"]["fid"]["real_taken"]["items"] == 48  # every frame of the first 3 videos
    assert all(v > 0 for v in report["results"].values())
    assert report["environment"]["vgz"] and report["dataset"]["fingerprint"]
    assert "fvd16: " in first.output and len(list(cache.glob("*.npz"))) == 2

    second = run_eval(model_dir, detector_files, cache, "--out", str(tmp_path / "again.json"))
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["results"] == report["results"]  # same seed, same numbers (real statistics from the cache)
    assert again["protocols"]["fvd16"]["real_taken"]["cached"]
    other = run_eval(model_dir, detector_files, cache, "--seed", "1", "--out", str(tmp_path / "seed1.json"),
                     "--no-card", metrics="fvd16")
    assert json.loads((tmp_path / "seed1.json").read_text())["results"]["fvd16"] != report["results"]["fvd16"]
    del first, second, other

    # The card: Hub model-index metadata plus the protocol in the text; vgz info reads it back.
    from huggingface_hub import ModelCard

    card = ModelCard.load(model_dir / "README.md")
    assert card.data.library_name == "vgz"
    by_metric = {r.metric_config: r for r in card.data.eval_results}
    assert set(by_metric) == {"fvd2048_16f", "fid50k_full"}  # the repeat replaced, not duplicated
    assert by_metric["fvd2048_16f"].metric_value == pytest.approx(report["results"]["fvd16"], abs=1e-4)
    assert by_metric["fvd2048_16f"].metric_args["detector_sha256"] == fvd["detector"]["sha256"]
    assert "StyleGAN-V's protocol" in card.text and "not comparable" in card.text
    info = runner.invoke(app, ["info", str(model_dir)])
    assert info.exit_code == 0, info.output
    assert "FVD16 (fvd2048_16f)" in info.output and "reduced sample count" in info.output
    info_json = json.loads(runner.invoke(app, ["info", str(model_dir), "--json"]).output)
    assert {e["metric"] for e in info_json["evaluation"]} == {"fvd2048_16f", "fid50k_full"}


def test_vgz_eval_between_two_folders_of_videos(model_dir, detector_files, tmp_path):
    import vgz
    from vgz.pipelines import VideoPipeline

    fake = tmp_path / "fake"
    pipe = VideoPipeline.from_pretrained(model_dir)
    for seed in range(4):
        vgz.export_video(pipe(num_frames=16, generator=seed).frames[0], fake / f"{seed}.mp4", fps=25)
    result = runner.invoke(app, ["eval", str(fake), "--data", DATA, "--metrics", "fvd2048_16f",
                                 "--detector", str(detector_files[0]), "--num-videos", "4", "--no-cache",
                                 "--num-workers", "0", "--quiet", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["generation"]["source"] == "videos" and report["protocols"]["fvd16"]["resolution"] == 16
    assert report["protocols"]["fvd16"]["fake_taken"]["items"] == 4


def test_vgz_eval_without_a_detector_says_what_to_pass(model_dir):
    result = runner.invoke(app, ["eval", str(model_dir), "--data", DATA, "--metrics", "fvd16"])
    assert result.exit_code == 1
    assert "fvd16 needs a video detector (I3D)" in result.output and "i3d_torchscript.pt" in result.output


def test_detectors_load_from_the_hub_cache_offline(detector_files, tmp_path, monkeypatch):
    import shutil

    from conftest import populate_hub_cache

    folder = tmp_path / "repo"
    folder.mkdir()
    shutil.copy(detector_files[0], folder / "i3d_torchscript.pt")
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "vgz-test/i3d", folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected = load_detector(detector_files[0]).sha256
    by_repo = load_detector("vgz-test/i3d", cache_dir=cache)
    by_file = load_detector("vgz-test/i3d/i3d_torchscript.pt", cache_dir=cache)
    assert by_repo.kind == by_file.kind == "video" and by_repo.sha256 == by_file.sha256 == expected
    assert by_repo.source == "vgz-test/i3d"
    with pytest.raises(DetectorError, match="vgz-test/other"):
        load_detector("vgz-test/other", cache_dir=cache)


def test_real_statistics_cache_is_keyed_by_content(tmp_path):
    """The dataset fingerprint follows the content, not the sampling or the flips."""
    import numpy as np
    from PIL import Image

    from vgz.data.datasets import open_dataset
    from vgz.data.sampling import ClipSamplingConfig

    root = tmp_path / "frames"
    for v in range(2):
        (root / f"v{v}").mkdir(parents=True)
        for j in range(4):
            Image.fromarray(np.full((8, 8, 3), j * 10 + v, np.uint8)).save(root / f"v{v}" / f"{j}.png")

    def fingerprint(**kw):
        return open_dataset(root, resolution=8, **kw).fingerprint()

    base = fingerprint(sampling=ClipSamplingConfig.from_preset("image"))
    assert fingerprint(sampling=ClipSamplingConfig.from_preset("image"), xflip=True, seed=5) == base
    assert open_dataset(root, resolution=16, sampling=ClipSamplingConfig.from_preset("image")).fingerprint() != base
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / "v1" / "2.png")
    assert fingerprint(sampling=ClipSamplingConfig.from_preset("image")) != base
    shapes = "synthetic:shapes?num_videos=4&num_frames=8"
    assert open_dataset(shapes, resolution=8).fingerprint() == open_dataset(shapes, resolution=8).fingerprint()
    assert open_dataset(shapes, resolution=8, seed=1).fingerprint() != open_dataset(shapes, resolution=8).fingerprint()


def test_card_keeps_each_results_own_data(tmp_path):
    """Two reports on different data of the same type (the built-in model's FID on 16-frame
    synthetic videos, its FVD16 on the default ones) keep their own data spec and fingerprint in
    the card: huggingface_hub would otherwise merge them under one dataset entry."""
    from huggingface_hub import ModelCard

    from vgz.cards import write_eval_results
    from vgz.hub import builtin_model
    from vgz.metrics.evaluation import EvalReport

    shipped = builtin_model()
    (tmp_path / "model_index.json").write_bytes((shipped / "model_index.json").read_bytes())
    reports = [EvalReport.load(shipped / name) for name in ("eval_fid.json", "eval_fvd16.json")]
    for report in reports:
        write_eval_results(tmp_path, report)
    results = {r.metric_config: r for r in ModelCard.load(tmp_path / "README.md").data.eval_results}
    for report in reports:
        entry = results[report.protocols[next(iter(report.results))]["official_name"]]
        assert entry.dataset_name == report.data
        assert entry.dataset_args["fingerprint"] == report.dataset["fingerprint"][:16]
    assert results["fid50k_full"].dataset_name == "synthetic:shapes?num_frames=16"


def test_a_new_result_replaces_the_same_metric_of_the_same_mode_only(tmp_path):
    """A newer result of the same metric, data, resolution and sampling mode replaces the older (one
    written before the modes existed counts as vgz's default mode); another mode is kept beside it."""
    import copy

    from huggingface_hub import ModelCard

    from vgz.cards import write_eval_results
    from vgz.hub import builtin_model
    from vgz.metrics.evaluation import EvalReport

    shipped = builtin_model()
    (tmp_path / "model_index.json").write_bytes((shipped / "model_index.json").read_bytes())
    new = EvalReport.load(shipped / "eval_fvd16.json")
    old = copy.deepcopy(new)
    for key in ("offsets", "order", "resolution_rule"):
        old.protocols["fvd16"].pop(key)
    old.results["fvd16"] = 99.0
    official = copy.deepcopy(new)
    official.protocols["fvd16"].update(offsets="official", order="plain", offset_workers=3)
    official.results["fvd16"] = 42.0
    for report in (old, new, official):
        write_eval_results(tmp_path, report)
    values = sorted(r.metric_value for r in ModelCard.load(tmp_path / "README.md").data.eval_results)
    assert values == sorted([round(new.results["fvd16"], 4), 42.0])
    assert "official (torch seed 0, 3 workers), plain, model" in (tmp_path / "README.md").read_text()
