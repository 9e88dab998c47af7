"""`vgz generate` under hostile use: many seeds in bounded memory, impossible frame rates, NaN, unwritable
outputs, missing plugins and devices. Run in-process (typer's CliRunner) so that they stay fast; a
`typer.Exit` shows up as SystemExit, any other exception would be a traceback for a user."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import vgz
from vgz.cli.main import app
from vgz.generators.styleganv import StyleGANVSynthesisNetwork
from vgz.pipelines import StyleGANVPipeline, VideoPipeline

runner = CliRunner()


def generate(*args: str):
    return runner.invoke(app, ["generate", *map(str, args), "-q", "--device", "cpu"])


def assert_error_line(result, *fragments: str) -> None:
    """Exit status 1, one `error:` line naming ``fragments``, and no traceback (no exception but the exit)."""
    assert result.exit_code == 1, result.output
    assert type(result.exception) is SystemExit, result.exception  # anything else is a traceback for a user
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    pipe = vgz.create("pipeline", "styleganv", preset="tiny")
    with torch.no_grad():  # livelier weights, so that videos differ visibly
        for module in pipe.components.values():
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    return pipe, pipe.save_pretrained(tmp_path_factory.mktemp("pipe") / "tiny")


class SynthesisCalls:
    """Records, at every synthesis call, how many videos it synthesises and how many unfinished
    (temporary) video files exist in ``folder``: a real measure of what is held at once."""

    def __init__(self, folder: Path):
        self.folder, self.videos, self.open_files = folder, [], []

    def __enter__(self):
        def hook(module, args):
            if isinstance(module, StyleGANVSynthesisNetwork):
                self.videos.append(args[0].shape[0])
                self.open_files.append(sum(p.name.endswith(".tmp") for p in self.folder.iterdir()))

        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _read(path: Path) -> torch.Tensor:
    return vgz.read_video(path)[0].float() / 255


# ----------------------------------------------------------------------------- many seeds (issue 13, item 2)

def test_per_seed_files_are_generated_batch_by_batch_with_the_same_videos(tiny, tmp_path):
    pipe, folder = tiny
    with SynthesisCalls(tmp_path) as calls:
        result = generate(folder, "-n", 5, "--seeds", "0-6", "--lossless", "--batch-size", 3,
                          "--out", tmp_path / "s{seed}.mkv")
    assert result.exit_code == 0, result.output
    assert max(calls.videos) == 3 and max(calls.open_files) == 3  # one batch of writers at a time
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"s{s}.mkv" for s in range(7)]
    for seed in (0, 4, 6):  # a video depends only on its seed, not on its batch
        expected = pipe(num_frames=5, generator=seed).frames[0]
        assert (_read(tmp_path / f"s{seed}.mkv") - expected).abs().max() <= 1 / 255 + 1e-6
    assert "wrote 7 videos (5 frames, 16x16" in result.stdout


def test_the_default_batch_on_cpu_is_one_video(tiny, tmp_path):
    _, folder = tiny
    with SynthesisCalls(tmp_path) as calls:
        result = generate(folder, "-n", 3, "--seeds", "0-3", "--out", tmp_path / "s{seed}.mp4")
    assert result.exit_code == 0, result.output
    assert set(calls.videos) == {1} and max(calls.open_files) == 1


def test_tiled_videos_and_grids_synthesise_batch_by_batch(tiny, tmp_path):
    """A tiled video or a grid is one file whose frames hold every seed: each chunk is made batch by batch."""
    pipe, folder = tiny
    with SynthesisCalls(tmp_path) as calls:
        result = generate(folder, "-n", 4, "--seeds", "0-3", "--lossless", "--batch-size", 3, "--out",
                          tmp_path / "t.mkv")
    assert result.exit_code == 0, result.output
    assert calls.videos == [3, 1]
    expected = vgz.tile_videos(pipe(num_videos=4, num_frames=4, generator=[0, 1, 2, 3]).frames, rows=2)
    assert (_read(tmp_path / "t.mkv") - expected).abs().max() <= 1 / 255 + 1e-6
    with SynthesisCalls(tmp_path) as calls:
        result = generate(folder, "-n", 3, "--seeds", "1,2", "--grid", "--lossless", "--batch-size", 3, "--out",
                          tmp_path / "g.mkv")
    assert result.exit_code == 0, result.output
    assert calls.videos == [3, 1]
    grid = pipe.content_motion_grid([1, 2], [1, 2], num_frames=3).frames
    assert (_read(tmp_path / "g.mkv") - vgz.tile_videos(grid, rows=2)).abs().max() <= 1 / 255 + 1e-6


def test_pipeline_batch_size_gives_the_same_frames(tiny):
    pipe, _ = tiny
    whole = pipe(num_videos=5, num_frames=3, generator=[3, 1, 4, 1, 5]).frames
    torch.testing.assert_close(pipe(num_videos=5, num_frames=3, generator=[3, 1, 4, 1, 5], batch_size=2).frames,
                               whole, atol=1e-4, rtol=0)


def test_duplicate_seeds_are_refused_for_per_seed_files_only(tiny, tmp_path):
    _, folder = tiny
    assert_error_line(generate(folder, "--seeds", "1,1,2-3,3", "--out", tmp_path / "s{seed}.mp4"),
                      "--seeds lists 1, 3 more than once")
    assert list(tmp_path.iterdir()) == []
    result = generate(folder, "-n", 2, "--seeds", "1,1", "--out", tmp_path / "tiled.mp4")  # a tile may repeat
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------- frame rates (items 4 and 13)

def test_motion_noise_that_cannot_fit_is_refused_before_it_is_drawn(tiny):
    pipe, _ = tiny
    with pytest.raises(ValueError, match=r"num_frames=4 at fps=1e-09 \(a span of 3e\+09 s.*motion noise would need "
                                         r"[\d,]+ codes of 8 values per video.*GiB"):
        pipe(num_frames=4, fps=1e-9)  # before the fix: ~16 minutes of allocation until the OOM killer
    with pytest.raises(ValueError, match="motion noise would need"):
        pipe.sample_latents(vgz.pipelines.base.as_generators(0, 1), 1e12)
    with pytest.raises(ValueError, match="timestamps up to 1e\\+10 s"):
        pipe(timestamps=[0.0, 1e10])
    with pytest.raises(ValueError, match=r"a 40x40 content/motion grid"):
        pipe.grid_latents(range(40), range(40), 4e6)
    # Long videos within the limit still work: an hour at 25 fps needs 22,528 codes (0.7 MiB) here.
    assert pipe.last_frame_time(90_000, 25) == 89_999


@pytest.mark.parametrize("fps", [float("inf"), float("nan"), 0.0, -25.0])
def test_non_finite_or_non_positive_fps_is_refused(tiny, fps):
    pipe, _ = tiny
    with pytest.raises(ValueError, match="fps must be > 0 and finite"):
        pipe(num_frames=2, fps=fps)


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1"])
def test_cli_fps_gives_an_error_line(tiny, tmp_path, value):
    _, folder = tiny
    assert_error_line(generate(folder, "-n", 2, f"--fps={value}", "--out", tmp_path / "v.mp4"), "--fps must be > 0")
    assert list(tmp_path.iterdir()) == []


def test_cli_fps_too_low_for_the_motion_noise(tiny, tmp_path):
    _, folder = tiny
    result = generate(folder, "-n", 4, "--fps", "1e-9", "--out", tmp_path / "v.mp4")  # the command
    assert_error_line(result, "num_frames=4 at fps=1e-09", "motion noise would need")
    result = generate(folder, "-n", 1000, "--fps", "0.01", "--slowmo", "0.001", "--out", tmp_path / "v.mp4")
    assert_error_line(result, "num_frames=1000 at fps=1e-05", "motion noise would need")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- NaN (issue 14)

def test_nan_truncation_is_refused_up_front(tiny, tmp_path):
    pipe, folder = tiny
    assert_error_line(generate(folder, "--truncation-psi", "nan", "--out", tmp_path / "v.mp4"),
                      "--truncation-psi must be a finite number, got nan")
    with pytest.raises(ValueError, match="truncation_psi must be a finite number, got nan"):
        pipe(num_frames=1, truncation_psi=float("nan"))


@pytest.fixture(scope="module")
def nan_model(tiny, tmp_path_factory):
    pipe, _ = tiny
    broken = StyleGANVPipeline.from_pretrained(tiny[1])
    with torch.no_grad():
        next(iter(broken.synthesis.parameters())).fill_(float("nan"))
    return broken, broken.save_pretrained(tmp_path_factory.mktemp("nan") / "nan-model")


def test_non_finite_output_is_an_error_naming_the_seeds(nan_model, tmp_path):
    pipe, folder = nan_model
    with pytest.raises(vgz.pipelines.base.NonFiniteOutputError, match=r"seeds 7, 8 \(frames 0-1\).*not finite"):
        pipe(num_videos=2, num_frames=2, generator=7)
    result = generate(folder, "-n", 2, "--seeds", "3-4", "--out", tmp_path / "s{seed}.mp4")
    assert_error_line(result, "NaN or infinite values for seed 3 (frames 0-1)", "not finite")
    result = generate(folder, "-n", 2, "--seeds", "3-4", "--out", tmp_path / "tiled.mp4")
    assert_error_line(result, "values for seed 3 (frames 0-1)", "tiled.mp4 was not written")  # the first batch
    result = generate(folder, "-n", 2, "--seeds", "3-4", "--grid", "--out", tmp_path / "grid.mp4")
    assert_error_line(result, "grid cells content 3/motion 3", "grid.mp4")
    assert list(tmp_path.iterdir()) == []  # no black video, no temporary file


def test_stylegan2_pipeline_refuses_bad_counts_and_nan(tmp_path):
    from vgz.pipelines.stylegan2 import StyleGAN2Pipeline

    synthesis = vgz.create("synthesis", "stylegan2", preset="tiny")
    mapping = vgz.create("mapping", "stylegan2", preset="tiny", w_dim=synthesis.w_dim, num_ws=synthesis.num_ws)
    pipe = StyleGAN2Pipeline(mapping=mapping, synthesis=synthesis).eval()
    with pytest.raises(TypeError, match="num_images must be an integer"):
        pipe(num_images=1.5)
    with torch.no_grad():
        next(iter(pipe.synthesis.parameters())).fill_(float("inf"))
    with pytest.raises(vgz.pipelines.base.NonFiniteOutputError, match="seed 5"):
        pipe(generator=5)


# ----------------------------------------------------------------------------- outputs, devices, plugins (item 13)

def test_unwritable_output_location_is_an_error_line(tiny):
    _, folder = tiny
    assert_error_line(generate(folder, "-n", 2, "--out", "/proc/x.mp4"), "/proc/x.mp4")
    assert_error_line(generate(folder, "-n", 2, "--seeds", "0-1", "--out", "/proc/vgz/s{seed}.mp4"), "/proc/vgz/s0.mp4")


def test_a_failing_file_in_a_later_batch_is_named_and_earlier_files_stay_complete(tiny, tmp_path):
    _, folder = tiny
    (tmp_path / "s2.mp4").mkdir()  # the third seed's file cannot be put in place
    result = generate(folder, "-n", 2, "--seeds", "0-3", "--batch-size", 2, "--out", tmp_path / "s{seed}.mp4")
    assert_error_line(result, f"{tmp_path / 's2.mp4'}: ", "(2 complete files of earlier seeds kept)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0.mp4", "s1.mp4", "s2.mp4"]  # no s3, no temporary file
    assert vgz.read_video(tmp_path / "s1.mp4")[0].shape[0] == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_an_error_line(tiny, tmp_path):
    _, folder = tiny
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert_error_line(generate(folder, "-n", 2, "--out", locked / "v.mp4"), str(locked / "v.mp4"))


def test_full_output_device_is_an_error_line_and_leaves_nothing(tiny, tmp_path):
    """A file-size limit makes the encoder's writes fail as on a full disk (EFBIG instead of ENOSPC)."""
    _, folder = tiny

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([sys.executable, "-m", "vgz", "generate", str(folder), "-n", "64", "--lossless", "-q",
                             "--device", "cpu", "--seeds", "0-3", "--out", str(out / "big.mkv")],
                            capture_output=True, text=True, preexec_fn=limit, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and "big.mkv" in result.stderr, result.stderr
    assert list(out.iterdir()) == []


def test_cuda_without_a_gpu_is_an_error_line(tiny, tmp_path, monkeypatch):
    _, folder = tiny
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(app, ["generate", str(folder), "--device", "cuda", "--out", str(tmp_path / "v.mp4")])
    assert_error_line(result, "--device cuda: no CUDA GPU is usable here")


def _swap_component(src: Path, dst: Path, attr: str, **config_changes) -> Path:
    import shutil

    shutil.copytree(src, dst)
    config = json.loads((dst / attr / "config.json").read_text())
    (dst / attr / "config.json").write_text(json.dumps({**config, **config_changes}))
    return dst


def test_model_needing_a_missing_plugin_says_what_to_install(tiny, tmp_path, monkeypatch):
    from conftest import make_plugin_dist
    from vgz import registry

    _, folder = tiny
    model = _swap_component(folder, tmp_path / "needs-plugin", "synthesis", _vgz_name="fancy-synthesis")
    result = generate(model, "--out", tmp_path / "v.mp4")
    assert_error_line(result, "No synthesis component named 'fancy-synthesis'",
                      "synthesis/config.json needs synthesis 'fancy-synthesis': install the vgz plugin package")
    index = json.loads((folder / "model_index.json").read_text())
    (model / "model_index.json").write_text(json.dumps({**index, "_vgz_pipeline": "stylegan-xl"}))
    assert_error_line(generate(model, "--out", tmp_path / "v.mp4"), "No pipeline component named 'stylegan-xl'",
                      "model_index.json needs pipeline 'stylegan-xl'")
    # A plugin that is installed but broken is named, with its error.
    bad = make_plugin_dist(tmp_path / "site", "vgz-fancy", "vgz_fancy", "import not_a_module_xyz\n")
    monkeypatch.syspath_prepend(str(bad))
    with pytest.warns(RuntimeWarning, match="failed to load"):
        registry.reload_plugins()
    try:
        with pytest.raises(vgz.UnknownComponentError, match=r"failed to load: vgz_fancy from vgz-fancy "
                                                            r"\(ModuleNotFoundError"):
            VideoPipeline.from_pretrained(model)
    finally:
        monkeypatch.undo()
        registry.reload_plugins()
    assert list(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4") == []


def test_more_frames_than_memory_are_refused_by_call_but_stream_lazily(tiny):
    pipe, _ = tiny
    with pytest.raises(ValueError, match=r"1 video of 1,000,000,000,000 frames at 16x16 are .* TiB of frames, more "
                                         r"than the .* of memory of cpu: use stream\(\)"):
        pipe(num_frames=10**12, fps=1e9)  # before: a 8 TB tensor of frame times first
    chunks = pipe.stream(num_frames=10**12, fps=1e9, chunk_size=4)  # times are made chunk by chunk
    first = next(chunks)
    assert first.frames.shape == (1, 4, 3, 16, 16)
    torch.testing.assert_close(first.timestamps, torch.arange(4, dtype=torch.float64)[None] / 1e9)


def test_pipelines_that_make_no_videos_are_named(tmp_path):
    vgz.create("pipeline", "psp", preset="tiny").save_pretrained(tmp_path / "psp")
    assert_error_line(generate(tmp_path / "psp", "--out", tmp_path / "v.mp4"), "'psp' pipeline, not a video generator",
                      "vgz invert")
    from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork
    from vgz.pipelines.stylegan2 import StyleGAN2Pipeline

    StyleGAN2Pipeline(mapping=MappingNetwork(MappingConfig.from_preset("tiny")),
                      synthesis=SynthesisNetwork(SynthesisConfig.from_preset("tiny"))).save_pretrained(tmp_path / "sg2")
    assert_error_line(generate(tmp_path / "sg2", "--out", tmp_path / "v.mp4"), "'stylegan2' pipeline", "num_images")
    assert not (tmp_path / "v.mp4").exists()
