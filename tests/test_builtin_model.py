"""The models that ship inside vgz (``vgz generate`` with no model, ``vgz generate --model NAME``):
small, safe, documented, and trained well enough that their videos move smoothly instead of freezing
or flickering. Every shipped built-in model goes through the same checks."""

from __future__ import annotations

import json
import re

import pytest
import torch

import vgz
from vgz.hub import builtin_model, builtin_models
from vgz.pipelines import VideoPipeline

from test_cli import run_vgz

SHIPPED = list(builtin_models())


@pytest.fixture(scope="module")
def folder():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("VGZ_DEFAULT_MODEL", raising=False)
        return builtin_model()


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request):
    """``(name, folder, videos)`` of each built-in model: four seeds, 256 frames at the training frame
    rate, ``[4, 256, 3, 64, 64]`` in [0, 1]."""
    folder = builtin_model(request.param)
    pipe = VideoPipeline.from_pretrained(folder)
    videos = pipe(num_videos=4, num_frames=256, generator=[0, 1, 2, 3], output_type="pt").frames
    return request.param, folder, videos


def test_builtin_model_is_small_safetensors_with_a_card(shipped):
    name, folder, _ = shipped
    files = [p for p in folder.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert weights and not [p for p in files if p.suffix in {".bin", ".pkl", ".pt", ".pth", ".ckpt"}]
    assert sum(p.stat().st_size for p in files) <= 10 * 2**20
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_vgz_pipeline"] == name
    card = (folder / "README.md").read_text()
    assert "library_name: vgz" in card and "model-index" in card
    assert f"vgz train --recipe {name} --data " in " ".join(card.replace("\\\n", " ").split())
    assert re.search(r"\b[0-9a-f]{40}\b", card), "the card names the commit that trained the model"
    assert "random" in card.lower(), "the card says plainly that its metrics used random-weight detectors"


def _images_with_outlines(videos: torch.Tensor) -> None:
    """Images, not noise: neighbouring pixels agree far better than random pairs of pixels do. And shapes,
    not only soft blobs: outlines where a neighbour jumps by over 0.2 in some channel. The data has 2.1%
    such pixels, the shipped StyleGAN-V 0.75%, the same run 4500 steps earlier 0.01%."""
    across = (videos[..., 1:] - videos[..., :-1]).abs()  # each pixel against its right neighbour
    neighbours = across.mean()
    pixels = videos.flatten(-2)
    shuffled = pixels[..., torch.randperm(pixels.shape[-1], generator=torch.Generator().manual_seed(0))]
    random_pairs = (pixels - shuffled).abs().mean()
    assert neighbours < 0.3 * random_pairs, f"noisy: {neighbours:.4f} vs {random_pairs:.4f}"
    outlines = (across.amax(2) > 0.2).float().mean()
    assert outlines > 0.002, f"blurry: only {outlines:.2%} of pixels lie on an outline"


def test_builtin_model_videos_move_smoothly_and_differ_by_seed(shipped):
    _, _, videos = shipped
    assert videos.shape == (4, 256, 3, 64, 64)
    assert torch.isfinite(videos).all()
    videos = videos[:, :32]
    step = (videos[:, 1:] - videos[:, :-1]).abs().mean()  # frame to next frame
    drift = (videos[:, 16:] - videos[:, :-16]).abs().mean()  # frames half a clip apart
    assert drift > 0.02, f"frozen: frames half a clip apart differ by only {drift:.4f}"
    assert step < 0.4 * drift, f"flicker: consecutive frames differ by {step:.4f}, distant ones by {drift:.4f}"
    _images_with_outlines(videos)
    seeds_apart = (videos[1:] - videos[:1]).abs().mean()
    assert seeds_apart > 0.05, f"every seed draws the same video ({seeds_apart:.4f})"


def test_builtin_model_keeps_its_content_over_256_frames(shipped):
    """Ten seconds on, a video still shows its scene, as images with outlines, and still moves. Where
    seeds draw different scenes, each video's last frame is nearer its own first frame than the other
    videos' first frames (the data: 0.11 against 0.16; the shipped StyleGAN-V: 0.056 against 0.15).
    A model of one subject (StyleVideoGAN) has one scene for every seed: its last frames may be no
    further from their first than the data's are over 256 frames, and half as far again."""
    from vgz.data.datasets import open_dataset

    name, _, videos = shipped
    _images_with_outlines(videos[:, -32:])
    assert (videos[:, -1] - videos[:, -17]).abs().mean() > 0.01, "frozen by frame 256"
    # [last frame of video a, first frame of video b]: mean absolute difference
    apart = (videos[:, None, -1] - videos[None, :, 0]).abs().mean((2, 3, 4))
    own = apart.diagonal()
    if name == "stylevideogan":
        real = open_dataset("synthetic:shapes?num_videos=8", resolution=64)
        ends = torch.stack([torch.as_tensor(real.read_frames(i, [0, 255])).float() / 255 for i in range(8)])
        reference = (ends[:, 1] - ends[:, 0]).abs().mean()
        assert own.max() < 1.5 * reference, f"content lost: {own.tolist()} against the data's {reference:.4f}"
    else:
        others = (apart.sum(1) - own) / (len(own) - 1)
        assert (own < others).all(), f"content lost: last to first {own.tolist()}, to other seeds {others.tolist()}"


def test_vgz_generate_uses_the_builtin_model(tmp_path):
    env = {"VGZ_DEFAULT_MODEL": ""}  # the shipped model, whatever the caller's environment says
    result = run_vgz("generate", "--num-frames", "16", "-q", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "video.mp4") in result.stdout and str(tmp_path / "grid.mp4") in result.stdout
    video, _ = vgz.read_video(tmp_path / "video.mp4")
    grid, _ = vgz.read_video(tmp_path / "grid.mp4")
    assert video.shape == (16, 3, 64, 64) and grid.shape == (16, 3, 192, 192)


def test_builtin_models_are_listed_and_chosen_by_name(folder):
    from typer.testing import CliRunner

    from vgz.cli.main import app
    from vgz.hub import BUILTIN_MODELS, ModelNotFoundError, builtin_models

    runner = CliRunner()
    assert builtin_model("styleganv") == folder and builtin_models()["styleganv"] == folder
    listed = json.loads(runner.invoke(app, ["list", "model", "--json"]).output)
    shapes = next(r for r in listed if r["name"] == "styleganv")
    assert shapes["pipeline"] == "styleganv" and shapes["data"].startswith("synthetic:shapes")
    assert set(shapes["results"]) == {"fvd16", "fvd128", "fid"}
    assert {r["name"] for r in listed} <= set(BUILTIN_MODELS)
    with pytest.raises(ModelNotFoundError, match="no built-in model 'shapes'; the built-in models are styleganv"):
        builtin_model("shapes")
    out = runner.invoke(app, ["generate", "x", "--model", "styleganv"])
    assert out.exit_code == 1 and "not both" in out.output


def test_zoo_table_is_regenerated_from_the_cards():
    """README.md and model_cards/zoo.md carry the table model_cards/zoo.py makes from the built-in cards."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "model_cards" / "zoo.py"
    spec = importlib.util.spec_from_file_location("zoo", script)
    zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo)
    assert zoo.main(["--check"]) == 0, "the zoo table is stale: run python model_cards/zoo.py"
    names = [row["name"] for row in zoo.rows()]
    assert names[0] == "styleganv" and set(names) <= {"styleganv", "styleinv", "stylevideogan"}
    assert all(row["parameters"] > 0 for row in zoo.rows())
    # A model built on a trained StyleGAN2 counts the whole chain of runs, and says which.
    assert zoo._chain({"StyleGAN2": 2.78, "pSp": 0.3}) == " (StyleGAN2 2.8 h + pSp 0.3 h)" and zoo._chain(None) == ""


def test_vgz_eval_takes_a_builtin_model_by_name_and_leaves_its_card(folder, tmp_path):
    from fixtures.official_fvd_data import write_detector

    card = (folder / "README.md").read_bytes()
    detector = write_detector(tmp_path / "detector.pt")  # a tiny TorchScript with the I3D's call signature
    out = tmp_path / "eval.json"
    result = run_vgz("eval", "--model", "styleganv", "--data", "synthetic:shapes?num_videos=3&num_frames=20",
                     "--detector", str(detector), "--num-videos", "3", "--no-cache", "--out", str(out), "-q",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["model"] == str(folder)
    assert (folder / "README.md").read_bytes() == card and not (tmp_path / "eval_results.json").exists()
    both = run_vgz("eval", str(folder), "--model", "styleganv", "--data", "synthetic:shapes", cwd=tmp_path)
    assert both.returncode == 1 and "not both" in both.stderr
