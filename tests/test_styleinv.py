"""StyleInV in vgz: the causal temporal style, the modulated encoder's shared prefix, the pipeline
(any length and rate, streaming, explicit latents, animating a photo, the Hub), ``vgz generate`` on it,
and ``vgz train --recipe styleinv`` on this CPU (samples, a loadable pipeline, resuming)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vgz
from conftest import populate_hub_cache
from vgz.encoders.psp import WEncoder, WEncoderConfig
from vgz.encoders.styleinv import ModulatedEncoder, ModulatedEncoderConfig
from vgz.generators.styleinv import TemporalStyle, TemporalStyleConfig
from vgz.pipelines import StyleInVPipeline, VideoPipeline

ATOL = 1e-4  # batch and chunk shapes round differently in float32; distinct frames differ by > 1e-3


def _vgz(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vgz", *args], capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def pipe() -> StyleInVPipeline:
    torch.manual_seed(0)
    pipe = StyleInVPipeline.from_preset("tiny")
    pipe.inversion_encoder = WEncoder(WEncoderConfig.from_preset("tiny", start_from_latent_avg=True)).eval()
    return pipe


@pytest.fixture(scope="module")
def folder(pipe, tmp_path_factory) -> Path:
    return pipe.save_pretrained(tmp_path_factory.mktemp("styleinv") / "tiny")


def test_temporal_style_is_causal_first_frame_aware_and_windowed():
    torch.manual_seed(0)
    style = TemporalStyle(TemporalStyleConfig.from_preset("tiny")).eval()  # a code every 4 frames, kernel 3
    g = torch.Generator().manual_seed(1)
    w0 = torch.randn([2, 32], generator=g)
    t = torch.tensor([[0.0, 1.5, 7.0, 13.25, 30.0, 61.5, 200.75]] * 2)
    motion_z = style.sample_motion_z(2, 200.75, g)
    with torch.no_grad():
        s = style(t, w0, motion_z)
        # t = 0 is the learned code 0, whatever the motion noise: the same style for every motion.
        other = style(t, w0, torch.randn_like(motion_z))
        torch.testing.assert_close(s[:, 0], other[:, 0], atol=ATOL, rtol=0)
        assert (s[:, 1:] - other[:, 1:]).abs().amax() > 0.01
        # Code j moves only trajectory codes j .. j + 2 (two causal convs reaching one code back), so
        # only frames between anchors 4 and 7 (t in (16, 28], plus t = 30 whose left anchor is 7).
        changed = motion_z.clone()
        changed[:, 5] += 3.0  # anchor 5 sits at t = 20
        moved = (style(t, w0, changed) - s).abs().amax(dim=(0, 2))
        assert moved[[0, 1, 2, 3, 5, 6]].max() == 0 and moved[4] > 1e-3, moved
        # A frame alone (windowed codes) equals the frame in a long batch.
        for i in range(t.shape[1]):
            torch.testing.assert_close(style(t[:, i:i + 1], w0, motion_z), s[:, i:i + 1], atol=ATOL, rtol=0)
    with pytest.raises(vgz.ConfigError, match="kernel_size"):
        TemporalStyleConfig(kernel_size=4)


def test_encoder_shared_prefix_equals_every_frame_through_the_whole_network():
    torch.manual_seed(0)
    encoder = ModulatedEncoder(ModulatedEncoderConfig.from_preset("tiny")).eval()
    assert encoder.config.adain_units == (0, 1, 2, 3) and len(encoder.adains) == 4
    images = torch.rand([2, 3, 32, 32]) * 2 - 1
    styles = torch.randn([2, 5, 32])
    with torch.no_grad():
        fast, plain = encoder(images, styles), encoder(images, styles, shared_prefix=False)
    torch.testing.assert_close(fast, plain, atol=ATOL, rtol=0)
    assert (fast[:, 1:] - fast[:, :1]).abs().amax() > 1e-3  # the styles matter
    # Initialised from a pSp W encoder: its backbone and head, not its latent_avg.
    psp = WEncoder(WEncoderConfig.from_preset("tiny", start_from_latent_avg=True))
    encoder.load_psp_encoder(psp.state_dict())
    assert torch.equal(encoder.body[3].res_layer[1].weight, psp.body[3].res_layer[1].weight)
    assert torch.equal(encoder.linear.weight, psp.linear.weight)
    with pytest.raises(ValueError, match="missing linear.weight"):
        encoder.load_psp_encoder({k: v for k, v in psp.state_dict().items() if k != "linear.weight"})


def test_streams_any_length_and_rate(pipe):
    whole = pipe(2, 24, generator=0, chunk_size=24).frames
    assert whole.shape == (2, 24, 3, 32, 32) and 0 <= whole.min() and whole.max() <= 1
    chunks = list(pipe.stream(2, 24, generator=0, chunk_size=5, batch_size=1))
    assert [c.frames.shape[1] for c in chunks] == [5, 5, 5, 5, 4]
    torch.testing.assert_close(torch.cat([c.frames for c in chunks], dim=1), whole, atol=ATOL, rtol=0)
    # Twice the rate over the same span: every other frame is the same frame (slow motion).
    slow = pipe(2, 47, fps=2 * pipe.config.fps, generator=0).frames
    torch.testing.assert_close(slow[:, ::2], whole, atol=ATOL, rtol=0)
    # A longer video with the same seed extends the shorter one, and moves.
    long = pipe(2, 64, generator=0, chunk_size=32).frames
    torch.testing.assert_close(long[:, :24], whole, atol=ATOL, rtol=0)
    assert (long[:, 1:] - long[:, :-1]).abs().mean() > 1e-4
    # Seeds give different content; explicit timestamps in seconds work per video.
    assert (whole[0] - whole[1]).abs().mean() > 0.01
    stamps = torch.tensor([[0.0, 1.0], [0.5, 2.0]])
    assert pipe(2, timestamps=stamps, generator=0).frames.shape == (2, 2, 3, 32, 32)


def test_explicit_latents_grid_and_animating_a_photo(pipe, tmp_path):
    z, motion_z = pipe.grid_latents([0, 1], [0, 1], 15)
    grid = pipe.content_motion_grid([0, 1], [0, 1], num_frames=16).frames
    torch.testing.assert_close(grid[[0, 3]], pipe(2, 16, generator=[0, 1]).frames, atol=ATOL, rtol=0)
    # w replaces z: the mapped z given as w is the same video.
    w = pipe.mapping(z[:1])[:, 0]
    torch.testing.assert_close(pipe(1, 8, z=z[:1], motion_z=motion_z[:1]).frames,
                               pipe(1, 8, w=w, motion_z=motion_z[:1]).frames, atol=ATOL, rtol=0)
    # A photo: inverted by the pSp encoder, then moved.
    photo = (np.random.default_rng(0).random([48, 40, 3]) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    out = pipe.animate(tmp_path / "photo.png", num_frames=6, generator=3)
    w0 = pipe.invert(tmp_path / "photo.png")
    assert w0.shape == (1, 32) and out.frames.shape == (1, 6, 3, 32, 32)
    torch.testing.assert_close(out.frames, pipe(1, 6, w=w0, generator=3).frames, atol=ATOL, rtol=0)
    torch.testing.assert_close(pipe.invert(torch.from_numpy(photo).permute(2, 0, 1) / 255), w0, atol=1e-4, rtol=0)
    bare = StyleInVPipeline(pipe.config, mapping=pipe.mapping, synthesis=pipe.synthesis, motion=pipe.motion,
                            encoder=pipe.encoder)
    with pytest.raises(ValueError, match="no inversion_encoder"):
        bare.animate(tmp_path / "photo.png")
    with pytest.raises(ValueError, match="not a readable image"):
        pipe.invert(tmp_path)


def test_components_must_fit(pipe):
    wide = ModulatedEncoder(ModulatedEncoderConfig.from_preset("tiny", input_size=64))
    with pytest.raises(ValueError, match="the encoder reads 3x64x64 images, the generator makes 3x32x32"):
        StyleInVPipeline(mapping=pipe.mapping, synthesis=pipe.synthesis, motion=pipe.motion, encoder=wide)


def test_loads_offline_from_the_hub_cache(pipe, folder, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "vgz/styleinv-ffs", folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = VideoPipeline.from_pretrained("vgz/styleinv-ffs", cache_dir=cache)
    assert isinstance(loaded, StyleInVPipeline) and loaded.inversion_encoder is not None
    torch.testing.assert_close(loaded(2, 6, generator=0).frames, pipe(2, 6, generator=0).frames, atol=ATOL, rtol=0)


def test_vgz_generate_grids_slow_motion_long_videos_and_photos(folder, tmp_path):
    from vgz.data.video import read_video

    out = _vgz("generate", str(folder), "--grid", "--seeds", "0-1", "-n", "8", "-o", str(tmp_path / "grid.mp4"),
               "--slowmo", "2", "-q")
    assert out.returncode == 0, out.stderr
    assert read_video(tmp_path / "grid.mp4")[0].shape == (8, 3, 64, 64)
    photo = (np.random.default_rng(1).random([32, 32, 3]) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    out = _vgz("generate", str(folder), "--image", str(tmp_path / "photo.png"), "--seeds", "0-1", "-n", "120",
               "--chunk-size", "64", "-o", str(tmp_path / "photo.mp4"), "--lossless", "-q")
    assert out.returncode == 0, out.stderr
    video, fps = read_video(tmp_path / "photo.mp4")
    assert fps == 30
    assert video.shape == (120, 3, 32, 64)  # two motions of the photo side by side, 4 s at 30 fps
    left, right = video[..., :32].float(), video[..., 32:].float()
    assert torch.equal(left[0], right[0])  # the same first frame (t = 0: the same style for every motion)...
    assert (left[-1] - right[-1]).abs().mean() > 1  # ...moved two ways
    out = _vgz("generate", str(folder), "--image", str(tmp_path / "photo.png"), "--grid")
    assert out.returncode != 0 and "cannot be combined with --grid" in out.stderr


# ----------------------------------------------------------------------------- training

DATA = "synthetic:shapes?num_videos=6&num_frames=32"


@pytest.fixture(scope="module")
def psp_folder(tmp_path_factory) -> Path:
    """The pSp stage's output: a W encoder and the 32x32 StyleGAN2 it inverts, as a psp pipeline."""
    from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork
    from vgz.pipelines.psp import PSPPipeline

    torch.manual_seed(0)
    synthesis = SynthesisNetwork(SynthesisConfig.from_preset("tiny", img_resolution=32))
    mapping = MappingNetwork(MappingConfig.from_preset("tiny", num_ws=synthesis.num_ws))
    encoder = WEncoder(WEncoderConfig.from_preset("tiny", start_from_latent_avg=True))
    return PSPPipeline(encoder=encoder, synthesis=synthesis, mapping=mapping).save_pretrained(
        tmp_path_factory.mktemp("psp") / "psp")


def _train(psp_folder: Path, run: Path, *extra: str) -> subprocess.CompletedProcess:
    return _vgz("train", "--recipe", "styleinv", "--preset", "tiny", "--encoder", str(psp_folder), "--data", DATA,
                "--outdir", str(run), "--num-workers", "0", "--progress", "false", "--log-every", "2", *extra)


def test_trains_writes_samples_and_a_pipeline_and_resumes(psp_folder, tmp_path):
    run = tmp_path / "run"
    out = _train(psp_folder, run, "--steps", "2", "--checkpoint-every", "2", "--sample-every", "2")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in (run / "logs" / "stats.jsonl").read_text().splitlines()]
    last = records[-1]
    assert {"loss/G/adv", "loss/G/recon", "loss/G/wreg", "loss/D", "lr/G", "lr/D"} <= set(last)
    assert all(np.isfinite(v) for v in last.values() if isinstance(v, float))
    assert (run / "samples" / "step-00000002.mp4").is_file()
    pipe = VideoPipeline.from_pretrained(run / "pipeline")
    assert isinstance(pipe, StyleInVPipeline) and pipe.inversion_encoder is not None and pipe.config.fps == 30
    psp = VideoPipeline.from_pretrained(psp_folder)
    assert torch.equal(pipe.synthesis.b32.conv1.weight, psp.synthesis.b32.conv1.weight)  # G stays frozen
    assert pipe(1, 5, generator=0).frames.shape == (1, 5, 3, 32, 32)
    resumed = _train(psp_folder, run, "--steps", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "steps from step 2" in resumed.stdout and "done: step 3" in resumed.stdout


def test_recipe_settings_and_errors(psp_folder, tmp_path):
    recipe = vgz.create("recipe", "styleinv", preset="paper")
    cfg = recipe.config
    assert (cfg.batch_size, cfg.lr, cfg.lr_si, cfg.r1_gamma, cfg.ema_kimg, cfg.augment) == (32, 0.002, 1e-4, 1.0,
                                                                                            20.0, "noaug")
    assert recipe.sampling().max_dist_inclusive is False and recipe.sampling().total_dists is None
    taichi = vgz.create("recipe", "styleinv", preset="taichi").config
    assert (taichi.lambda_adv, taichi.lambda_wreg, taichi.augment, taichi.max_dist) == (0.1, 0.0, "ada", 128)
    out = _vgz("train", "--recipe", "styleinv", "--preset", "tiny", "--data", DATA, "--outdir", str(tmp_path / "r"))
    assert out.returncode == 1 and "--encoder PATH" in out.stderr and "Traceback" not in out.stderr
    out = _train(psp_folder, tmp_path / "r2", "--steps", "1", "--resolution", "64")
    assert out.returncode == 1 and "--resolution 32" in out.stderr
    # The pSp stage's run folder (its pipeline/), its pipeline, or the encoder component alone.
    import shutil

    from vgz.training.recipes.styleinv import load_psp_encoder

    run = tmp_path / "psp-run"
    shutil.copytree(psp_folder, run / "pipeline")
    (run / "config.json").write_text(json.dumps({"recipe": "psp", "recipe_config": {}, "run": {}}))
    for ref in (run, psp_folder, psp_folder / "encoder"):
        encoder, pipe = load_psp_encoder(str(ref))
        assert encoder.registry_key() == ("encoder", "psp-w") and (pipe is None) == (ref.name == "encoder")


def test_style_transfer_fine_tune_renders_the_same_latents_in_a_new_style(folder, tmp_path):
    run = tmp_path / "transfer"
    out = _vgz("train", "--recipe", "stylegan2", "--preset", "tiny", "--transfer", str(folder), "--finetune-g-res",
               "16", "--perceptual-weight", "1", "--lpips-random-backbone", "true", "--data", DATA, "--outdir",
               str(run), "--num-workers", "0", "--progress", "false", "--steps", "2", "--log-every", "1",
               "--sample-every", "2", "--sample-frames", "4")
    assert out.returncode == 0, out.stderr
    last = json.loads((run / "logs" / "stats.jsonl").read_text().splitlines()[-1])
    assert {"loss/G/adv", "loss/G/perceptual"} <= set(last) and "loss/G/identity" not in set(last)
    source = VideoPipeline.from_pretrained(folder)
    tuned = VideoPipeline.from_pretrained(run / "pipeline")
    assert isinstance(tuned, StyleInVPipeline) and tuned.stylized_synthesis is not None
    # The mapping and the 4x4 and 8x8 blocks stay the source's; the 16x16 and 32x32 blocks were tuned.
    frozen, open_ = tuned.stylized_synthesis, source.synthesis
    assert torch.equal(tuned.mapping.fc0.weight, source.mapping.fc0.weight)
    assert all(torch.equal(a, b) for a, b in zip(frozen.b8.parameters(), open_.b8.parameters()))
    assert not torch.equal(frozen.b32.conv1.weight, open_.b32.conv1.weight)
    assert torch.equal(tuned.synthesis.b32.conv1.weight, open_.b32.conv1.weight)  # the original renders x0
    plain, styled = tuned(1, 4, generator=0).frames, tuned(1, 4, generator=0, stylized=True).frames
    torch.testing.assert_close(plain, source(1, 4, generator=0).frames, atol=ATOL, rtol=0)
    assert (plain - styled).abs().mean() > 1e-4
    with pytest.raises(ValueError, match="stylized=True needs a stylized_synthesis"):
        source(1, 2, stylized=True)
    out = _vgz("generate", str(run), "--stylized", "-n", "4", "-o", str(tmp_path / "styled.mp4"), "--lossless", "-q")
    assert out.returncode == 0, out.stderr
    assert torch.equal(vgz.read_video(tmp_path / "styled.mp4")[0], (styled[0] * 255).round().to(torch.uint8))
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        vgz.create("pipeline", "styleganv", preset="tiny")(1, 2, stylized=True)


def test_r1_sums_over_the_clip_frames_as_styleinv_does():
    from vgz.training.losses import PhaseContext, StyleGAN2Loss
    from vgz.training.recipes import StyleGANVRecipe, StyleInVRecipe

    frames = torch.randn(2, 4, 3, 8, 8)
    penalties = {}
    for how in ("mean", "sum"):
        loss = StyleGAN2Loss(None, lambda D, f, c, t: (f ** 2).sum(dim=(1, 2, 3, 4)), r1_gamma=2.0, r1_frames=how)
        ctx = PhaseContext(nets={"D": None}, real={"frames": frames, "c": torch.zeros(2, 0), "t": torch.zeros(2, 4)},
                           gen={}, grad=lambda o, i: torch.autograd.grad(o, i, create_graph=True)[0])
        penalties[how] = loss.d_r1(ctx)
    expected = (2 * frames).square().sum(dim=(1, 2, 3, 4)).mean()  # gamma / 2 = 1; d/dx x^2 = 2x
    torch.testing.assert_close(penalties["sum"], expected)
    torch.testing.assert_close(penalties["mean"], expected / 4)
    assert (StyleInVRecipe.r1_frames, StyleGANVRecipe.r1_frames) == ("sum", "mean")
