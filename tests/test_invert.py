"""``vgz invert`` and the ``latent-folder`` dataset: real mp4 files, a saved tiny pSp pipeline, the
real command line as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import vgz
from vgz.data.base import resize_center_crop
from vgz.data.datasets import DatasetError, LatentFolderDataset, consecutive_sampling, open_dataset
from vgz.data.latents import LATENTS_MARKER, latent_file_name, read_latent_header, write_latent_file
from vgz.inversion import InversionError, Refinement, _open_videos, invert_videos, module_sha256
from vgz.pipelines import VideoPipeline

#: Item names of the good videos and their frame counts (two share a base name in different folders).
VIDEOS = {"a.mp4": 6, "sub/a.mp4": 10, "sub/b.mp4": 8}


def run_vgz(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vgz", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Videos (3 good mp4 files, 1 corrupt), a saved tiny pSp pipeline, and one `vgz invert` run with
    --preview over them (its result, timing and output folder)."""
    root = tmp_path_factory.mktemp("invert")
    videos = root / "videos"
    # Moving shapes rather than noise: smooth frames survive H.264, so the preview can be compared.
    shapes = vgz.create("dataset", "synthetic-shapes", resolution=32, num_videos=len(VIDEOS), num_frames=10)
    for i, (name, length) in enumerate(VIDEOS.items()):
        (videos / name).parent.mkdir(parents=True, exist_ok=True)
        vgz.export_video(shapes.read_frames(i, range(length)), videos / name, fps=12)
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    pipe = vgz.create("pipeline", "psp", preset="tiny")
    pipe.save_pretrained(root / "psp")
    start = time.perf_counter()
    first = run_vgz("invert", str(root / "psp"), "--data", str(videos), "--out", str(root / "latents"),
                    "--preview", str(root / "recon.mp4"), "--preview-videos", "2")
    return {"root": root, "videos": videos, "latents": root / "latents", "first": first,
            "first_s": time.perf_counter() - start, "pipe": VideoPipeline.from_pretrained(root / "psp")}


def test_one_file_per_video_with_shapes_and_metadata(world):
    out, latents, pipe = world["first"], world["latents"], world["pipe"]
    assert out.returncode == 0, out.stderr
    files = sorted(p.name for p in latents.glob("*.safetensors"))
    assert files == sorted(latent_file_name(name) for name in VIDEOS)
    assert "3 written (24 frames)" in out.stdout and "latents of 3 of 4 videos" in out.stdout
    encoder = module_sha256(pipe.encoder)
    for name, length in VIDEOS.items():
        path = latents / latent_file_name(name)
        meta, shape = read_latent_header(path)
        assert shape == (length, pipe.num_ws, pipe.synthesis.w_dim) == (length, 6, 32)
        with safe_open(str(path), "pt") as f:
            assert f.get_tensor("ws").dtype == torch.float32
        assert meta["name"] == name and meta["source"] == str(world["videos"] / name)
        assert meta["num_frames"] == length and meta["fps"] == 12.0
        assert (meta["source_width"], meta["source_height"], meta["input_resolution"]) == (32, 32, 32)
        assert meta["encoder_sha256"] == encoder and meta["vgz_version"] == vgz.__version__
        assert meta["pipeline"] == str(world["root"] / "psp")
    marker = json.loads((latents / LATENTS_MARKER).read_text())
    assert marker["format"] == "vgz-latents" and marker["format_version"] == 1
    assert (marker["num_ws"], marker["w_dim"], marker["encoder_sha256"]) == (6, 32, encoder)
    assert marker["generator_resolution"] == 16
    assert not [p for p in latents.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_corrupt_video_is_skipped_and_reported(world):
    out = world["first"]
    assert "1 skipped" in out.stdout
    lines = [line for line in out.stderr.splitlines() if "broken.mp4" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: skipped") and "cannot open" in lines[0]
    assert not any("broken" in p.name for p in world["latents"].iterdir())


def test_second_run_skips_everything(world):
    latents = world["latents"]
    before = {p.name: p.stat().st_mtime_ns for p in latents.iterdir()}
    start = time.perf_counter()
    out = run_vgz("invert", str(world["root"] / "psp"), "--data", str(world["videos"]), "--out", str(latents), "-q")
    took = time.perf_counter() - start
    assert out.returncode == 0, out.stderr
    assert "0 written (0 frames), 3 already there, 1 skipped" in out.stdout
    assert {p.name: p.stat().st_mtime_ns for p in latents.iterdir()} == before  # nothing rewritten
    assert took < world["first_s"] + 2 and took < 30, (took, world["first_s"])


def test_preview_shows_input_beside_reconstruction(world):
    pipe = world["pipe"]
    assert "recon.mp4: 2 video(s)" in world["first"].stdout
    frames, fps = vgz.read_video(world["root"] / "recon.mp4")
    # The first two videos in dataset order (a.mp4: 6 frames, sub/a.mp4: 10), each frame at the larger of
    # the encoder's input size (32) and the generator's (16): [32 | 32].
    assert frames.shape == (6 + 10, 3, 32, 64) and fps == 12.0
    inputs = torch.cat([vgz.read_video(world["videos"] / name)[0] for name in ("a.mp4", "sub/a.mp4")])
    dataset = open_dataset(world["latents"])
    ws = torch.cat([dataset.read_latents(dataset.video_names.index(name)) for name in ("a.mp4", "sub/a.mp4")])
    recon = resize_center_crop((pipe.decode(ws) * 255).round().to(torch.uint8), 32)
    left, right = frames[..., :32].float(), frames[..., 32:].float()
    # Written with H.264 (lossy): close, not exact. The halves are different pictures (about 60 apart).
    assert (left - inputs.float()).abs().mean() < 5 and (right - recon.float()).abs().mean() < 10
    assert (left - recon.float()).abs().mean() > 20 and (right - inputs.float()).abs().mean() > 20


def test_latent_folder_is_a_dataset_equal_to_encode(world):
    pipe = world["pipe"]
    dataset = open_dataset(world["latents"])  # told by latents.json; resolution from there
    assert isinstance(dataset, LatentFolderDataset) and len(dataset) == 3 and dataset.resolution == 16
    assert (dataset.num_ws, dataset.w_dim) == (6, 32)
    by_name = {dataset.video_names[i]: i for i in range(len(dataset))}
    assert set(by_name) == set(VIDEOS)
    for name, length in VIDEOS.items():
        i = by_name[name]
        assert dataset.get_video_len(i) == length and dataset.metadata[i]["name"] == name
        frames, _ = vgz.read_video(world["videos"] / name)  # 32x32: the encoder's input size, no resize
        expected = pipe.encode(frames)
        ws = dataset.read_latents(i)
        assert ws.shape == (length, 6, 32) and ws.dtype == torch.float32
        torch.testing.assert_close(ws, expected, atol=1e-5, rtol=0)
    # Clips of k consecutive latent frames, drawn from (video_index, clip_seed) as the video datasets do.
    clips = open_dataset(world["latents"], sampling=consecutive_sampling(4), seed=3)
    i = by_name["sub/a.mp4"]
    for seed in range(5):
        item = clips[(i, seed)]
        t = item["times"]
        assert item["ws"].shape == (4, 6, 32) and torch.equal(t, torch.arange(4) + t[0])
        torch.testing.assert_close(item["ws"], clips.read_latents(i)[t])
    # The same seed takes the same frames of the video (StyleGAN-V's sparse clips: random windows).
    from vgz.data.sampling import ClipSamplingConfig

    sparse = ClipSamplingConfig(num_frames=3, max_dist=4, max_num_frames=8)
    videos = open_dataset(world["videos"], resolution=32, sampling=sparse)
    latents = open_dataset(world["latents"], sampling=sparse)
    j = videos.video_names.index("sub/a.mp4")
    for seed in range(5):
        v, lat = videos[(j, seed)], latents[(i, seed)]
        assert torch.equal(v["times"], lat["times"]) and v["video_len"] == lat["video_len"]
        torch.testing.assert_close(lat["ws"], pipe.encode(v["frames"]), atol=1e-5, rtol=0)
    assert open_dataset(world["latents"], resolution=16).resolution == 16
    with pytest.raises(DatasetError, match="16x16 generator.*resolution 64"):
        open_dataset(world["latents"], resolution=64)
    with pytest.raises(DatasetError, match="xflip"):
        open_dataset(world["latents"], xflip=True)
    with pytest.raises(TypeError, match="holds ws, not frames"):
        dataset.read_frames(0, [0])


def test_bad_arguments_give_clear_errors(world):
    # Each is told before torch is imported or anything loaded (these runs take a fraction of a second).
    root, videos = world["root"], world["videos"]
    out = run_vgz("invert", str(root / "nope"), "--data", str(videos), "--out", str(root / "l1"))
    assert out.returncode == 1 and "error: no folder" in out.stderr and "nope" in out.stderr
    from vgz.pipelines.stylegan2 import StyleGAN2Pipeline

    StyleGAN2Pipeline(mapping=vgz.create("mapping", "stylegan2", preset="tiny"),
                      synthesis=vgz.create("synthesis", "stylegan2", preset="tiny")).save_pretrained(root / "sg2")
    out = run_vgz("invert", str(root / "sg2"), "--data", str(videos), "--out", str(root / "l2"))
    assert out.returncode == 1 and "'stylegan2' pipeline" in out.stderr and "inversion pipeline" in out.stderr
    out = run_vgz("invert", str(root / "psp"), "--data", str(videos), "--out", str(videos / "a.mp4" / "latents"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "cannot write --out" in out.stderr and "a.mp4 is a file, not a folder" in out.stderr
    assert "nothing was inverted" in out.stderr
    assert not (root / "l1").exists() and not (root / "l2").exists()
    # The same checks in the library, which the command calls after loading the pipeline.
    with pytest.raises(InversionError, match="'stylegan2' pipeline.*no encoder"):
        invert_videos(VideoPipeline.from_pretrained(root / "sg2"), videos, root / "l3")
    with pytest.raises(InversionError, match=r"--preview .*p\.txt: expected a video file name ending in \.mp4"):
        invert_videos(world["pipe"], videos, root / "l3", preview=root / "p.txt")
    with pytest.raises(InversionError, match="is a file; expected a folder"):
        invert_videos(world["pipe"], videos, videos / "a.mp4")
    with pytest.raises(DatasetError, match="no such file"):
        invert_videos(world["pipe"], root / "no-videos", root / "l3")
    assert not (root / "l3").exists()


def test_library_refusals_overwrite_and_changed_sources(world, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, source in (("a.mp4", "a.mp4"), ("b.mp4", "sub/b.mp4")):
        (videos / name).write_bytes((world["videos"] / source).read_bytes())
    pipe = world["pipe"]
    out = tmp_path / "latents"
    report = invert_videos(pipe, videos, out, progress=False, batch_size=4)
    assert sorted(report.written) == sorted(latent_file_name(n) for n in ("a.mp4", "b.mp4"))

    # Another encoder: refused, then re-encoded with overwrite=True.
    torch.manual_seed(1)
    other = vgz.create("pipeline", "psp", preset="tiny")
    with pytest.raises(InversionError, match="another encoder.*--overwrite"):
        invert_videos(other, videos, out, progress=False)
    report = invert_videos(other, videos, out, progress=False, overwrite=True)
    assert len(report.written) == 2 and not report.up_to_date
    assert open_dataset(out).encoder_sha256 == module_sha256(other.encoder) != module_sha256(pipe.encoder)

    # A file of another encoder in the folder: the dataset refuses the mix, invert needs overwrite=True,
    # which removes it (its video is not in the dataset).
    stray = out / "stray-000000000000.safetensors"
    write_latent_file(stray, torch.zeros(3, 6, 32), {"name": "stray.mp4", "encoder_sha256": "0" * 64})
    with pytest.raises(DatasetError, match="one encoder.*stray-000000000000.safetensors"):
        open_dataset(out)
    with pytest.raises(InversionError, match="1 file.*another encoder.*stray"):
        invert_videos(other, videos, out, progress=False)
    report = invert_videos(other, videos, out, progress=False, overwrite=True)
    assert report.removed == [stray.name] and len(report.up_to_date) == 2 and not stray.exists()

    # A changed source video is encoded again; the other is kept.
    (videos / "b.mp4").write_bytes((world["videos"] / "sub" / "a.mp4").read_bytes())
    report = invert_videos(other, videos, out, progress=False)
    assert report.written == [latent_file_name("b.mp4")] and report.up_to_date == [latent_file_name("a.mp4")]
    assert open_dataset(out).get_video_len(1) == 10

    # A folder that is not a latent folder, and a synthetic dataset (no files at all).
    with pytest.raises(InversionError, match="not empty and has no latents.json"):
        invert_videos(pipe, videos, videos, progress=False)
    report = invert_videos(pipe, "synthetic:shapes?num_videos=2&num_frames=3", tmp_path / "synthetic",
                           progress=False)
    meta, shape = read_latent_header(tmp_path / "synthetic" / report.written[0])
    assert shape == (3, 6, 32) and meta["name"] == "000000" and meta["source_width"] == 32 and "fps" in meta

    # One folder, one dataset: another dataset is refused; with overwrite=True the folder becomes its.
    more = "synthetic:shapes?num_videos=3&num_frames=3"
    with pytest.raises(InversionError, match="holds the latents of synthetic:shapes.num_videos=2.*one latent folder"):
        invert_videos(pipe, more, tmp_path / "synthetic", progress=False)
    report = invert_videos(pipe, more, tmp_path / "synthetic", progress=False, overwrite=True)
    assert len(report.written) + len(report.up_to_date) == 3 and len(open_dataset(tmp_path / "synthetic")) == 3
    # A run that cannot read any video removes nothing, even with overwrite=True.
    (videos / "a.mp4").write_bytes(b"not a video")
    (videos / "b.mp4").write_bytes(b"not a video either")
    with pytest.raises(DatasetError):
        invert_videos(other, videos, out, progress=False, overwrite=True)
    assert len(list(out.glob("*.safetensors"))) == 2


def test_refinement_sharpens_latents_and_is_part_of_what_they_are(world, tmp_path):
    """--refine-steps: each video's codes are refined against its frames (PSPPipeline.refine on the
    encoder's codes); the refinement is recorded, and latents refined otherwise count as another
    encoder's: refused without overwrite, re-encoded with it."""
    pipe, data = world["pipe"], "synthetic:shapes?num_videos=2&num_frames=6"
    plain = invert_videos(pipe, data, tmp_path / "plain", progress=False)
    refine = Refinement(steps=12, lr=0.1, smooth=0.5, batch_size=4)
    out = tmp_path / "refined"
    report = invert_videos(pipe, data, out, progress=False, refine=refine)
    assert len(report.written) == 2 and report.frames_encoded == 12
    videos = _open_videos(data, pipe.encoder.config.input_size)
    for i, name in enumerate(report.written):
        frames = videos.read_frames(i, range(6)).float() / 255
        meta, _ = read_latent_header(out / name)
        assert meta["refine"] == {"steps": 12, "lr": 0.1, "smooth": 0.5, "batch_size": 4}
        ws = open_dataset(out).read_latents(i)
        expected = pipe.refine(frames, pipe.encode(frames), steps=12, lr=0.1, smooth=0.5, batch_size=4)
        torch.testing.assert_close(ws, expected, rtol=1e-4, atol=1e-5)
        unrefined = open_dataset(tmp_path / "plain").read_latents(i)
        error = [(resize_center_crop((pipe.decode(w) * 255).round().to(torch.uint8), frames.shape[-1]).float() / 255
                  - frames).square().mean() for w in (ws, unrefined)]
        assert error[0] < 0.7 * error[1]
    assert json.loads((out / LATENTS_MARKER).read_text())["refine"]["steps"] == 12
    assert "refine" not in json.loads((tmp_path / "plain" / LATENTS_MARKER).read_text())
    assert "refine" not in read_latent_header(tmp_path / "plain" / plain.written[0])[0]

    # The same refinement: up to date. Another (or none): refused, then re-encoded with overwrite=True.
    assert len(invert_videos(pipe, data, out, progress=False, refine=refine).up_to_date) == 2
    with pytest.raises(InversionError, match="refined with steps 12, lr 0.1.*this run's are not refined.*--overwrite"):
        invert_videos(pipe, data, out, progress=False)
    with pytest.raises(InversionError, match="not refined, and this run's are refined with steps 12"):
        invert_videos(pipe, data, tmp_path / "plain", progress=False, refine=refine)
    report = invert_videos(pipe, data, out, progress=False, overwrite=True)
    assert len(report.written) == 2 and "refine" not in read_latent_header(out / report.written[0])[0]
    for bad in ({"steps": 0}, {"steps": 5, "lr": 0.0}, {"steps": 5, "smooth": -1.0}, {"steps": 5, "batch_size": 0}):
        with pytest.raises(InversionError, match="expected"):
            Refinement(**bad)

    # The command line: the options, the summary, latents.json.
    cli_out = tmp_path / "cli"
    done = run_vgz("invert", str(world["root"] / "psp"), "--data", data, "--out", str(cli_out), "-q",
                   "--refine-steps", "3", "--refine-smooth", "1", "--refine-batch", "5")
    assert done.returncode == 0, done.stderr
    assert "refined (3 steps)" in done.stdout
    recorded = json.loads((cli_out / LATENTS_MARKER).read_text())["refine"]
    assert recorded == {"steps": 3, "lr": 0.02, "smooth": 1.0, "batch_size": 5}
    bad = run_vgz("invert", str(world["root"] / "psp"), "--data", data, "--out", str(tmp_path / "bad"),
                  "--refine-steps", "3", "--refine-lr", "0")
    assert bad.returncode == 1 and "--refine-lr: expected a learning rate > 0" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_file_names_are_stable_unique_and_safe():
    names = ["a/b.mp4", "a__b.mp4", "a/b.mkv", "A/b.mp4", ".hidden.mp4", "dir/ü ber:clip?.mp4", "x" * 300 + ".mp4"]
    files = [latent_file_name(n) for n in names]
    assert len({f.lower() for f in files}) == len(names)
    assert files[0].startswith("a__b-") and files[0].endswith(".safetensors") and len(files[0]) == 29
    assert latent_file_name("a/b.mp4") == latent_file_name("a\\b.mp4") == files[0]  # stable, any separator
    for f in files:
        assert not f.startswith(".") and len(f) <= 110
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in f), f
