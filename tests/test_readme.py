"""The README's Python example runs as written (on a tiny pipeline saved under the README's folder name)."""

from __future__ import annotations

from pathlib import Path

import pytest

import vgz

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_pipeline_example_runs(tmp_path, monkeypatch):
    block = README.read_text().split("## Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "VideoPipeline.from_pretrained" in block
    monkeypatch.chdir(tmp_path)
    vgz.create("pipeline", "styleganv", preset="tiny").save_pretrained("sky-timelapse")
    exec(compile(block.replace("90_000", "300"), str(README), "exec"), {})  # an hour takes minutes; see benchmarks/
    assert {"grid.mp4", "hour.mp4", "my-pipeline"} <= {p.name for p in tmp_path.iterdir()}
    frames, fps = vgz.read_video(tmp_path / "hour.mp4")
    assert frames.shape == (300, 3, 16, 16) and fps == 25


def test_readme_training_example_runs(tmp_path, monkeypatch):
    from accelerate.state import AcceleratorState

    block = README.read_text().split("## Training", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "build_trainer" in block
    monkeypatch.chdir(tmp_path)
    # One small step instead of 200 (the CLI tests train further).
    block = block.replace('"steps": 200', '"steps": 1, "num_workers": 0, "progress": False, "sample_frames": 2')
    block = block.replace('"r1_gamma": 0.1', '"r1_gamma": 0.1, "batch_size": 4, "mbstd_group_size": 2')
    block = block.replace('"synthetic:shapes"', '"synthetic:shapes?num_videos=8&num_frames=40"')
    AcceleratorState._reset_state(reset_partial_state=True)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    AcceleratorState._reset_state(reset_partial_state=True)
    assert namespace["trainer"].step == 1
    assert type(namespace["pipe"]).__name__ == "StyleGANVPipeline"
    assert (tmp_path / "runs" / "shapes" / "pipeline" / "model_index.json").is_file()


def test_readme_evaluation_example_runs(tmp_path, monkeypatch):
    """The Python block of "Evaluation", with random-weight detectors saved under the README's file
    names (the real weights cannot be downloaded here) and 3 videos instead of the full protocol."""
    import torch

    from vgz.metrics.detectors import randomize_
    from vgz.metrics.i3d import I3DDetector, export_torchscript
    from vgz.metrics.inception import InceptionDetector

    block = README.read_text().split("## Evaluation", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "evaluate(" in block and "write_eval_results" in block
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VGZ_CACHE", str(tmp_path / "cache"))
    vgz.create("pipeline", "styleganv", preset="tiny").save_pretrained("runs/shapes/pipeline")
    export_torchscript(randomize_(I3DDetector()), "i3d_torchscript.pt")
    torch.save(randomize_(InceptionDetector()).net.state_dict(), "pt_inception-2015-12-05-6726825d.pth")
    block = block.replace('data="synthetic:shapes"', 'data="synthetic:shapes?num_videos=3&num_frames=16"')
    block = block.replace('metrics=["fvd16", "fid"],', 'metrics=["fvd16", "fid"], num_videos=2, num_workers=0,')
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert set(namespace["report"].results) == {"fvd16", "fid"}
    assert (tmp_path / "runs" / "shapes" / "eval.json").is_file()
    assert "model-index" in (tmp_path / "runs" / "shapes" / "pipeline" / "README.md").read_text()


def test_readme_styleinv_example_runs(tmp_path, monkeypatch):
    """The Python block of "StyleInV", on a tiny StyleInV saved into a Hub cache under the README's repo id."""
    import numpy as np
    import torch
    from PIL import Image

    from conftest import populate_hub_cache
    from vgz.encoders.psp import WEncoder, WEncoderConfig

    block = README.read_text().split("## StyleInV", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert 'from_pretrained("vgz/styleinv-ffs")' in block
    torch.manual_seed(0)
    pipe = vgz.create("pipeline", "styleinv", preset="tiny")
    pipe.inversion_encoder = WEncoder(WEncoderConfig.from_preset("tiny", start_from_latent_avg=True))
    populate_hub_cache(tmp_path / "hub", "vgz/styleinv-ffs", pipe.save_pretrained(tmp_path / "folder"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads HF_HUB_CACHE once, at import: the cache is passed as the call's cache_dir.
    block = block.replace('from_pretrained("vgz/styleinv-ffs")',
                          f'from_pretrained("vgz/styleinv-ffs", cache_dir={str(tmp_path / "hub")!r})')
    monkeypatch.chdir(tmp_path)
    Image.fromarray((np.random.default_rng(0).random([40, 40, 3]) * 255).astype(np.uint8)).save("photo.png")
    # The tiny model's latents are 32 wide and its motion codes 8, with a code every 4 frames (8 reach 21 frames).
    namespace: dict = {}
    block = block.replace("torch.randn(2, 512), torch.randn(2, 16, 512)", "torch.randn(2, 32), torch.randn(2, 64, 8)")
    block = block.replace("num_frames=128", "num_frames=16").replace("num_frames=256", "num_frames=32")  # time
    exec(compile(block.replace("num_frames=64", "num_frames=8"), str(README), "exec"), namespace)
    assert namespace["out"].frames.shape == (4, 16, 3, 32, 32)
    torch.testing.assert_close(namespace["slow"].frames[:, ::2], namespace["out"].frames[:1], atol=1e-4, rtol=0)
    assert namespace["photo"].frames.shape == (1, 8, 3, 32, 32)


def test_readme_stylevideogan_example_runs(tmp_path, monkeypatch):
    """The Python block of "StyleVideoGAN", on a tiny pipeline (its PCA fitted) saved where the README loads it."""
    import torch

    block = README.read_text().split("## StyleVideoGAN", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    torch.manual_seed(0)
    pipe = vgz.create("pipeline", "stylevideogan", preset="tiny")
    pipe.motion.fit_subject(list(pipe.latents(8, 40, generator=1)))
    pipe.save_pretrained(tmp_path / "runs" / "svg" / "pipeline")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with pytest.warns(UserWarning, match="no pSp encoder"):  # the tiny pipeline has none to re-embed seed 7
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["out"].frames.shape == (4, 250, 3, 16, 16) and namespace["ws"].shape == (64, 250, 6, 32)
    assert namespace["moved"].frames.shape == namespace["same"].frames.shape == (1, 250, 3, 16, 16)
