"""The ``vgz`` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import vgz

from conftest import PLUGIN_SOURCE, make_plugin_dist


def run_vgz(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vgz", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120)


def invoke_vgz(*args: str) -> subprocess.CompletedProcess:
    """``vgz ARGS`` in this process (typer's CliRunner), as :func:`run_vgz` returns it, without a fresh
    interpreter's 3 s per call. An exception the CLI did not turn into an error line is raised here."""
    from typer.testing import CliRunner

    from vgz.cli.main import app

    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["vgz", *args], result.exit_code, result.stdout, result.stderr)


def test_version():
    out = run_vgz("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"vgz {vgz.__version__}"


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from vgz.cli.main import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH_IMPORTED' if 'torch' in sys.modules else 'NO_TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Usage" in out.stdout and "list" in out.stdout and "info" in out.stdout
    assert out.stdout.strip().endswith("NO_TORCH")


def test_list_shows_stylegan2_components_with_kinds():
    out = run_vgz("list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "SOURCE", "DESCRIPTION"]
    rows = {tuple(line.split()[:3]) for line in lines[1:]}
    assert {("mapping", "stylegan2", "vgz"), ("synthesis", "stylegan2", "vgz"),
            ("discriminator", "stylegan2", "vgz")} <= rows


def test_list_kind_pattern_and_json():
    out = invoke_vgz("list", "synthesis", "--pattern", "stylegan2", "--json")
    rows = json.loads(out.stdout)
    assert [(r["kind"], r["name"]) for r in rows] == [("synthesis", "stylegan2")]
    assert rows[0]["class"] == "vgz.generators.stylegan2.SynthesisNetwork"
    names = [r["name"] for r in json.loads(invoke_vgz("list", "synthesis", "--json").stdout)]
    assert names == ["stylegan2", "styleganv"]
    out = invoke_vgz("list", "--pattern", "nothing*")
    assert out.returncode == 0 and "no components match" in out.stdout
    out = invoke_vgz("list", "synthesys")
    assert out.returncode == 1 and "Did you mean 'synthesis'" in out.stderr


def test_list_shows_installed_plugin_and_broken_plugin(tmp_path):
    good = make_plugin_dist(tmp_path / "good", "vgz-toy-plugin", "vgz_toy_plugin", PLUGIN_SOURCE)
    bad = make_plugin_dist(tmp_path / "bad", "vgz-broken-plugin", "vgz_broken_plugin", "import not_a_module_xyz\n")
    env = {"PYTHONPATH": os.pathsep.join([str(good), str(bad), os.environ.get("PYTHONPATH", "")])}
    out = run_vgz("list", env=env)
    assert out.returncode == 0, out.stderr
    rows = [line.split(None, 3) for line in out.stdout.splitlines()[1:]]
    assert ["motion", "toy-motion", "vgz-toy-plugin", "A third-party motion module (test plugin)."] in rows
    broken = [r for r in rows if r[0] == "plugin"]
    assert broken and broken[0][1:3] == ["vgz_broken_plugin", "vgz-broken-plugin"]
    assert broken[0][3].startswith("BROKEN: ModuleNotFoundError")
    assert "failed to load" in out.stderr  # the warning
    # And vgz.create builds the plugin's component in a fresh interpreter.
    code = "import vgz; m = vgz.create('motion', 'toy-motion', dim=3); print(type(m).__module__, m.config.dim)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert res.stdout.split() == ["vgz_toy_plugin", "3"], res.stderr


def test_info_reports_config_parameters_and_size(tmp_path):
    net = vgz.create("synthesis", "stylegan2", preset="tiny")
    folder = net.save_pretrained(tmp_path / "syn")
    out = invoke_vgz("info", str(folder), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert (info["kind"], info["name"]) == ("synthesis", "stylegan2")
    assert info["config"]["img_resolution"] == 16
    (weights,) = info["weights"]
    assert weights["num_parameters"] == net.num_parameters
    assert weights["num_buffer_values"] == sum(b.numel() for b in net.buffers())
    assert weights["bytes"] == (folder / "model.safetensors").stat().st_size
    text = invoke_vgz("info", str(folder)).stdout
    assert f"{net.num_parameters:,} parameters" in text and "img_resolution: 16" in text


def test_info_errors_are_clear(tmp_path):
    out = run_vgz("info", str(tmp_path / "missing"))
    assert out.returncode == 1 and "error: no folder" in out.stderr
    out = run_vgz("info", str(tmp_path))
    assert out.returncode == 1 and "has no config.json" in out.stderr


def test_info_by_repo_id_offline(tmp_path):
    from conftest import populate_hub_cache

    folder = vgz.create("mapping", "stylegan2", preset="tiny").save_pretrained(tmp_path / "m")
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "vgz-test/tiny-mapping", folder)
    out = run_vgz("info", "vgz-test/tiny-mapping", "--json", env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["kind"] == "mapping"


def test_pip_installed_plugin_package_appears_in_list(tmp_path):
    """A separate package, installed by pip, shows up in `vgz list` and builds through vgz.create."""
    from conftest import build_plugin_wheel

    wheel = build_plugin_wheel(tmp_path / "dist", "vgz-wheel-plugin", "vgz_wheel_plugin", PLUGIN_SOURCE)
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
                          str(wheel)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    assert (target / "vgz_wheel_plugin-0.1.0.dist-info" / "entry_points.txt").is_file()
    env = {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    out = run_vgz("list", "motion", env=env)
    assert out.returncode == 0, out.stderr
    assert ["motion", "toy-motion", "vgz-wheel-plugin"] in [line.split()[:3] for line in out.stdout.splitlines()]


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    torch.manual_seed(0)
    pipe = vgz.create("pipeline", "styleganv", preset="tiny")
    with torch.no_grad():
        for module in pipe.components.values():
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    return pipe, pipe.save_pretrained(tmp_path_factory.mktemp("pipe") / "tiny-styleganv")


def test_generate_writes_the_requested_video(tiny_pipeline, tmp_path):
    pipe, folder = tiny_pipeline
    out = run_vgz("generate", str(folder), "--num-frames", "20", "--fps", "10", "--seeds", "3", "--lossless",
                  "--out", str(tmp_path / "v.mp4"))
    assert out.returncode == 0, out.stderr
    assert "wrote 1 video (20 frames, 16x16, 10 fps)" in out.stdout
    assert "generating" in out.stderr and "20/20" in out.stderr  # the progress bar
    frames, fps = vgz.read_video(tmp_path / "v.mp4")
    assert frames.shape == (20, 3, 16, 16) and fps == 10
    expected = pipe(num_frames=20, fps=10, generator=3).frames[0]
    assert (frames.float() / 255 - expected).abs().max() <= 1 / 255  # lossless: only the uint8 rounding


def test_generate_seed_files_grids_and_slow_motion(tiny_pipeline, tmp_path):
    pipe, folder = tiny_pipeline
    out = run_vgz("generate", str(folder), "-n", "6", "--seeds", "0-1,5", "--out", str(tmp_path / "s{seed}.gif"), "-q")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0.gif", "s1.gif", "s5.gif"]
    assert vgz.read_video(tmp_path / "s5.gif")[0].shape == (6, 3, 16, 16)
    out = run_vgz("generate", str(folder), "-n", "4", "--seeds", "0-3", "-q", "--lossless", "--out", str(tmp_path / "t.mkv"))
    assert out.returncode == 0, out.stderr
    tiled, _ = vgz.read_video(tmp_path / "t.mkv")
    assert tiled.shape == (4, 3, 32, 32)  # 4 seeds tiled 2x2
    expected = vgz.tile_videos(pipe(num_videos=4, num_frames=4, generator=[0, 1, 2, 3]).frames, rows=2)
    assert (tiled.float() / 255 - expected).abs().max() <= 1 / 255
    out = run_vgz("generate", str(folder), "-n", "10", "--seeds", "1,2", "--grid", "--slowmo", "5", "-q", "--lossless",
                  "--out", str(tmp_path / "g.mp4"))
    assert out.returncode == 0, out.stderr
    grid, fps = vgz.read_video(tmp_path / "g.mp4")
    assert grid.shape == (10, 3, 32, 32) and fps == 25
    # Slow motion x5: frame 5 shows time 1 (training frames); the top-left cell is seed 1's own video.
    expected = pipe(num_frames=2, generator=1).frames[0, 1]
    assert (grid[5, :, :16, :16].float() / 255 - expected).abs().max() <= 1 / 255


def test_generate_errors(tiny_pipeline, tmp_path):
    _, folder = tiny_pipeline
    out = invoke_vgz("generate", str(tmp_path / "missing"), "--out", str(tmp_path / "v.mp4"))
    assert out.returncode == 1 and "no folder" in out.stderr and "Traceback" not in out.stderr
    out = invoke_vgz("generate", str(folder), "--out", str(tmp_path / "v.avi"))
    assert out.returncode == 1 and "unsupported video suffix '.avi'" in out.stderr
    out = invoke_vgz("generate", str(folder), "--seeds", "5-2")
    assert out.returncode == 2 and "expected seeds like '0-7'" in out.stderr
    out = invoke_vgz("generate", str(folder), "--grid", "--out", str(tmp_path / "{seed}.mp4"))
    assert out.returncode == 1 and "--grid writes one video" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_info_on_a_pipeline(tiny_pipeline):
    _, folder = tiny_pipeline
    out = invoke_vgz("info", str(folder))
    assert out.returncode == 0, out.stderr
    assert "pipeline 'styleganv'" in out.stdout and "motion: motion 'styleganv'" in out.stdout
    data = json.loads(invoke_vgz("info", str(folder), "--json").stdout)
    assert data["pipeline"] == "styleganv" and set(data["components"]) == {"mapping", "motion", "synthesis"}
    assert data["components"]["synthesis"]["weights"][0]["num_parameters"] > 0


def test_generate_without_a_model_writes_a_video_and_a_grid_here(tmp_path):
    """`vgz generate` alone: the default model (here a tiny one through VGZ_DEFAULT_MODEL, as the
    shipped model's own test cannot assume its weights) writes video.mp4 and grid.mp4 in the cwd."""
    from vgz.pipelines.styleganv import StyleGANVPipeline

    model = StyleGANVPipeline.from_preset("tiny").save_pretrained(tmp_path / "default-model")
    work = tmp_path / "work"
    work.mkdir()
    result = run_vgz("generate", "--num-frames", "6", "-q", env={"VGZ_DEFAULT_MODEL": str(model)}, cwd=work)
    assert result.returncode == 0, result.stderr
    assert str(work / "video.mp4") in result.stdout and str(work / "grid.mp4") in result.stdout
    assert "built-in model" in result.stdout
    video, _ = vgz.read_video(work / "video.mp4")
    grid, _ = vgz.read_video(work / "grid.mp4")
    assert video.shape == (6, 3, 16, 16) and grid.shape == (6, 3, 48, 48)  # 3x3 content/motion grid


def test_generate_without_a_model_says_when_the_builtin_one_is_missing(tmp_path):
    result = run_vgz("generate", env={"VGZ_DEFAULT_MODEL": str(tmp_path / "nothing")}, cwd=tmp_path)
    assert result.returncode == 1 and "nothing" in result.stderr


def test_help_uses_a_wide_layout_when_piped():
    """`vgz generate --help | less`: not a terminal, no COLUMNS, yet one line per short option help."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH", "LINES")}
    out = subprocess.run([sys.executable, "-m", "vgz", "generate", "--help"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Seeds, e.g. '0-7' or '1,5,9': one video each." in out.stdout  # cut in three at 80 columns
    assert "…" not in out.stdout and "--batch-size" in out.stdout
    wide = subprocess.run([sys.executable, "-m", "vgz", "generate", "--help"], capture_output=True, text=True,
                          env={**env, "COLUMNS": "70"}, timeout=60)
    assert max(map(len, wide.stdout.splitlines())) <= 70  # an explicit width is kept


def _info(*args: str):
    from typer.testing import CliRunner

    from vgz.cli.main import app

    return CliRunner().invoke(app, ["info", *args])


def _copy(folder, dst):
    import shutil

    return shutil.copytree(folder, dst)


def test_info_reports_corrupt_or_missing_weights_as_broken(tiny_pipeline, tmp_path):
    _, folder = tiny_pipeline
    good = _info(str(folder))
    assert good.exit_code == 0 and "error" not in good.output
    # A truncated safetensors: an error line naming the file, for the component and for its pipeline.
    broken = _copy(folder, tmp_path / "truncated")
    weights = broken / "synthesis" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:2000])
    for target in (broken / "synthesis", broken):
        result = _info(str(target))
        assert result.exit_code == 1 and type(result.exception) is SystemExit, result.output
        assert f"{weights} is not a valid safetensors file" in result.stderr.splitlines()[-1]
    data = json.loads(_info(str(broken), "--json").stdout)
    assert len(data["problems"]) == 1 and data["problems"][0].startswith("synthesis: ")
    # A missing component folder, missing weights, weights of another shape: broken, not fine.
    for name, damage, message in [
        ("no-folder", lambda f: __import__("shutil").rmtree(f / "motion"), "has no folder 'motion'"),
        ("no-weights", lambda f: (f / "mapping" / "model.safetensors").unlink(), "mapping: "),
        ("other-shapes", lambda f: (f / "motion" / "model.safetensors").write_bytes(
            (folder / "mapping" / "model.safetensors").read_bytes()), "does not fit motion 'styleganv'"),
    ]:
        target = _copy(folder, tmp_path / name)
        damage(target)
        result = _info(str(target))
        assert result.exit_code == 1 and type(result.exception) is SystemExit, result.output
        assert result.stderr.startswith(f"error: pipeline {target} is broken") and message in result.stderr, \
            result.stderr


def test_info_on_a_corrupt_index(tiny_pipeline, tmp_path):
    _, folder = tiny_pipeline
    broken = _copy(folder, tmp_path / "index")
    (broken / "model_index.json").write_text("{oops")
    result = _info(str(broken))
    assert result.exit_code == 1 and type(result.exception) is SystemExit
    assert f"{broken / 'model_index.json'} is not valid JSON" in result.stderr
