"""StyleGAN-V pipeline: generation semantics (seeds, length, frame rate, chunks, grids), outputs, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import vgz
from conftest import populate_hub_cache
from vgz.pipelines import MODEL_INDEX, StyleGANVPipeline, VideoPipeline, VideoPipelineOutput

# Different batch/chunk shapes round differently in float32 (time phases reach tens of radians);
# distinct frames differ by > 0.05, so 1e-4 still tells "the same frame" apart.
ATOL = 1e-4


@pytest.fixture(scope="module")
def pipe() -> StyleGANVPipeline:
    torch.manual_seed(0)
    pipe = vgz.create("pipeline", "styleganv", preset="tiny")
    with torch.no_grad():  # livelier weights, so that frames and videos differ visibly
        for module in pipe.components.values():
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    return pipe


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def test_output_layout_and_types(pipe):
    out = pipe(num_videos=2, num_frames=5, generator=0)
    assert isinstance(out, VideoPipelineOutput)
    assert out.frames.shape == (2, 5, 3, 16, 16) and out.frames.dtype == torch.float32
    assert 0 <= out.frames.min() and out.frames.max() <= 1 and out.frames.std() > 0.01
    torch.testing.assert_close(out.timestamps, torch.arange(5, dtype=torch.float64).expand(2, 5) / 25)
    assert out.fps == 25
    as_np = pipe(num_videos=2, num_frames=5, generator=0, output_type="np").frames
    assert isinstance(as_np, np.ndarray) and as_np.shape == (2, 5, 3, 16, 16)
    np.testing.assert_allclose(as_np, out.frames.numpy(), atol=ATOL)
    pil = pipe(num_videos=2, num_frames=5, generator=0, output_type="pil").frames
    assert len(pil) == 2 and len(pil[0]) == 5 and pil[0][0].size == (16, 16)
    assert np.abs(np.asarray(pil[1][4]) / 255 - out.frames[1, 4].permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    (frames,) = pipe(num_frames=2, generator=0, return_dict=False)
    assert frames.shape == (1, 2, 3, 16, 16)


def test_seeds_are_per_video_and_reproducible(pipe):
    batch = pipe(num_videos=3, num_frames=4, generator=[7, 8, 9]).frames
    _close(pipe(num_frames=4, generator=8).frames[0], batch[1])
    _close(pipe(num_videos=3, num_frames=4, generator=7).frames, batch)  # int seed: video i gets seed + i
    assert (batch[0] - batch[1]).abs().max() > 0.05
    g = torch.Generator().manual_seed(3)
    a = pipe(num_videos=2, num_frames=3, generator=g).frames
    _close(pipe(num_videos=2, num_frames=3, generator=torch.Generator().manual_seed(3)).frames, a)
    torch.manual_seed(0)
    b = pipe(num_frames=3).frames
    torch.manual_seed(0)
    _close(pipe(num_frames=3).frames, b)


def test_longer_video_extends_shorter_and_chunks_do_not_matter(pipe):
    short = pipe(num_frames=10, generator=4).frames
    long = pipe(num_frames=300, generator=4, chunk_size=64).frames  # needs more motion codes than the short one
    _close(long[:, :10], short)
    assert (long[:, 0] - long[:, 299]).abs().max() > 0.05  # it moves
    chunks = list(pipe.stream(num_frames=300, generator=4, chunk_size=7))
    assert [c.frames.shape[1] for c in chunks] == [7] * 42 + [6]
    _close(torch.cat([c.frames for c in chunks], dim=1), long)
    torch.testing.assert_close(torch.cat([c.timestamps for c in chunks], dim=1), torch.arange(300.0, dtype=torch.float64)[None] / 25)


def test_frame_rate_and_timestamps_sample_the_same_continuous_video(pipe):
    base = pipe(num_frames=8, generator=1).frames  # 25 fps: times 0, 1, ..., 7 training frames
    slow = pipe(num_frames=36, fps=125, generator=1)  # 5x denser: every 5th frame is a base frame
    assert slow.fps == 125
    _close(slow.frames[:, ::5], base[:, :8])
    assert (slow.frames[:, 1] - base[:, 0]).abs().max() > 1e-4  # the in-between frames are new
    picked = pipe(timestamps=[0.28, 0.04, 0.12], generator=1)
    _close(picked.frames, base[:, [7, 1, 3]])
    assert picked.fps is None
    per_video = pipe(num_videos=2, timestamps=[[0.0, 0.04], [0.08, 0.12]], generator=[1, 1]).frames
    _close(per_video[1], base[0, 2:4])
    hour = pipe(timestamps=[3600.0, 3600.04], generator=1).frames  # frame 90000: only nearby codes are computed
    assert hour.shape == (1, 2, 3, 16, 16) and torch.isfinite(hour).all()


def test_content_motion_grid(pipe):
    out = pipe.content_motion_grid([1, 2], [1, 3, 5], num_frames=4)
    assert out.frames.shape == (6, 4, 3, 16, 16)
    _close(out.frames[0], pipe(num_frames=4, generator=1).frames[0])  # (1, 1) is seed 1's own video
    z, motion_z = pipe.grid_latents([1, 2], [1, 3, 5], 3.0)
    assert torch.equal(z[0], z[2]) and torch.equal(z[3], z[5]) and not torch.equal(z[0], z[3])  # rows share content
    assert torch.equal(motion_z[1], motion_z[4]) and not torch.equal(motion_z[1], motion_z[2])  # columns share motion
    row2_col3 = pipe(num_frames=4, z=z[5:6], motion_z=motion_z[5:6]).frames[0]
    _close(out.frames[5], row2_col3)
    grid = vgz.tile_videos(out.frames, rows=2)
    assert grid.shape == (4, 3, 32, 48)


def test_conditional_pipeline_takes_class_ids():
    torch.manual_seed(0)
    plain = StyleGANVPipeline.from_preset("tiny")
    mapping = vgz.create("mapping", "stylegan2", preset="tiny", c_dim=3, num_ws=plain.synthesis.num_ws)
    motion = vgz.create("motion", "styleganv", preset="tiny", c_dim=3)
    pipe = StyleGANVPipeline(mapping=mapping.eval(), motion=motion.eval(), synthesis=plain.synthesis)
    a = pipe(num_videos=2, num_frames=2, generator=0, c=[0, 2]).frames
    b = pipe(num_videos=2, num_frames=2, generator=0, c=torch.eye(3)[[0, 2]]).frames
    _close(a, b)
    with pytest.raises(ValueError, match=r"class-conditional: pass c, \[2, 3\] or 2 class ids"):
        pipe(num_videos=2, num_frames=2)
    with pytest.raises(ValueError, match=r"class ids must be 2 integers in \[0, 3\), got \[0, 3\]"):
        pipe(num_videos=2, num_frames=2, c=[0, 3])
    with pytest.raises(ValueError, match="unconditional; do not pass c"):
        plain(num_frames=2, c=[0])


def test_components_must_fit():
    tiny = StyleGANVPipeline.from_preset("tiny")
    wide = vgz.create("motion", "styleganv", preset="tiny", time_enc_dim=4)
    with pytest.raises(ValueError, match=r"motion gives 8 channels, synthesis takes motion_v_dim=12"):
        StyleGANVPipeline(mapping=tiny.mapping, motion=wide, synthesis=tiny.synthesis)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'motion'"):
        StyleGANVPipeline(mapping=tiny.mapping, synthesis=tiny.synthesis)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"StyleGANVPipeline.motion must be a registered motion component"):
        StyleGANVPipeline(mapping=tiny.mapping, motion=tiny.synthesis, synthesis=tiny.synthesis)
    with pytest.raises(ValueError, match="unknown StyleGANVPipeline preset 'huge'"):
        StyleGANVPipeline.from_preset("huge")


def test_bad_call_arguments(pipe):
    with pytest.raises(ValueError,
                       match="output_type must be one of 'pt', 'np', 'pil', 'uint8', 'raw', got 'latent'"):
        pipe(num_frames=1, output_type="latent")
    with pytest.raises(ValueError, match="num_frames must be >= 1, got 0"):
        pipe(num_frames=0)
    with pytest.raises(ValueError, match="fps must be > 0"):
        pipe(num_frames=2, fps=0)
    with pytest.raises(ValueError, match="timestamps must be finite and >= 0"):
        pipe(timestamps=[-1.0])
    with pytest.raises(ValueError, match=r"timestamps must be \[T\] or \[2, T\] seconds, got \(3, 1\)"):
        pipe(num_videos=2, timestamps=[[0.0], [1.0], [2.0]])
    with pytest.raises(ValueError, match="got 1 generators/seeds for 2 videos"):
        pipe(num_videos=2, num_frames=1, generator=[0])
    with pytest.raises(ValueError, match=r"z must be \[1, 32\], got \(1, 5\)"):
        pipe(num_frames=1, z=torch.randn(1, 5), motion_z=torch.randn(1, 64, 8))


def test_save_and_load_pipeline(pipe, tmp_path):
    disc = vgz.create("discriminator", "styleganv", preset="tiny").eval()
    full = StyleGANVPipeline(pipe.config.replace(fps=30.0), mapping=pipe.mapping, motion=pipe.motion,
                             synthesis=pipe.synthesis, discriminator=disc)
    folder = full.save_pretrained(tmp_path / "pipe")
    index = json.loads((folder / MODEL_INDEX).read_text())
    assert index["_vgz_pipeline"] == "styleganv" and index["config"] == {"fps": 30.0}
    assert index["components"] == {"mapping": ["mapping", "stylegan2"], "motion": ["motion", "styleganv"],
                                   "synthesis": ["synthesis", "styleganv"],
                                   "discriminator": ["discriminator", "styleganv"]}
    assert "vgz." not in (folder / MODEL_INDEX).read_text()  # names, never module paths
    assert sorted(p.name for p in folder.iterdir()) == ["discriminator", "mapping", MODEL_INDEX, "motion", "synthesis"]
    loaded = VideoPipeline.from_pretrained(folder)
    assert type(loaded) is StyleGANVPipeline and loaded.config.fps == 30.0 and loaded.discriminator is not None
    _close(loaded(num_frames=3, generator=2).frames, full(num_frames=3, generator=2).frames)
    assert loaded(num_frames=3, fps=30).timestamps[0, 1].item() == pytest.approx(1 / 30)
    # Without the optional discriminator; with a component passed in.
    pipe.save_pretrained(tmp_path / "plain")
    plain = StyleGANVPipeline.from_pretrained(tmp_path / "plain", synthesis=pipe.synthesis)
    assert plain.discriminator is None and plain.synthesis is pipe.synthesis


def test_load_pipeline_from_hub_cache_offline(pipe, tmp_path, monkeypatch):
    folder = pipe.save_pretrained(tmp_path / "pipe", variant="fp16")
    cache = tmp_path / "cache"
    populate_hub_cache(cache, "vgz-test/tiny-styleganv", folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = VideoPipeline.from_pretrained("vgz-test/tiny-styleganv", cache_dir=cache, variant="fp16")
    ref = pipe(num_frames=2, generator=0).frames
    torch.testing.assert_close(loaded(num_frames=2, generator=0).frames, ref, atol=2e-2, rtol=0)


def test_loading_errors_are_explained(pipe, tmp_path):
    with pytest.raises(FileNotFoundError, match="has no model_index.json; it is not a saved vgz pipeline"):
        VideoPipeline.from_pretrained(pipe.synthesis.save_pretrained(tmp_path / "component"))
    folder = pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((folder / MODEL_INDEX).read_text())
    (folder / MODEL_INDEX).write_text("{not json")
    with pytest.raises(ValueError, match="is not a vgz pipeline index"):
        VideoPipeline.from_pretrained(folder)
    bad = {**index, "components": {**index["components"], "motion": ["synthesis", "styleganv"]}}
    (folder / MODEL_INDEX).write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"components.motion must be \['motion', name\]"):
        VideoPipeline.from_pretrained(folder)
    unknown = {**index, "_vgz_pipeline": "stylegan-xl"}
    (folder / MODEL_INDEX).write_text(json.dumps(unknown))
    with pytest.raises(vgz.UnknownComponentError, match="No pipeline component named 'stylegan-xl'"):
        VideoPipeline.from_pretrained(folder)
    (folder / MODEL_INDEX).write_text(json.dumps(index))
    import shutil

    shutil.rmtree(folder / "motion")
    with pytest.raises(FileNotFoundError, match="has no folder 'motion'"):
        VideoPipeline.from_pretrained(folder)


@pytest.mark.parametrize("field, value, error", [
    ("num_videos", 2.5, TypeError), ("num_videos", True, TypeError), ("num_frames", 3.0, TypeError),
    ("chunk_size", 1.5, TypeError), ("batch_size", "2", TypeError), ("batch_size", 0, ValueError),
    ("num_videos", -1, ValueError)])
def test_counts_must_be_integers(pipe, field, value, error):
    kwargs = {"num_videos": 1, "num_frames": 2, field: value}
    with pytest.raises(error, match=f"{field} must be"):
        pipe(**kwargs)
    assert pipe(num_videos=np.int64(2), num_frames=torch.tensor(2)).frames.shape[:2] == (2, 2)  # integer types pass


def test_interrupted_save_over_an_old_pipeline_does_not_load_as_a_mix(pipe, tmp_path, monkeypatch):
    from vgz.modeling import ModelMixin

    disc = vgz.create("discriminator", "styleganv", preset="tiny").eval()
    old = StyleGANVPipeline(mapping=pipe.mapping, motion=pipe.motion, synthesis=pipe.synthesis, discriminator=disc)
    folder = old.save_pretrained(tmp_path / "pipe")
    (folder / "README.md").write_text("my card\n")
    (folder / "eval_results.json").write_text("{}\n")
    torch.manual_seed(1)
    new = vgz.create("pipeline", "styleganv", preset="tiny")  # other weights, no discriminator
    save, calls = ModelMixin.save_pretrained, []

    def interrupted(self, *args, **kwargs):  # Ctrl-C after the first component
        calls.append(self)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return save(self, *args, **kwargs)

    monkeypatch.setattr(ModelMixin, "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        new.save_pretrained(folder)
    monkeypatch.undo()
    # New mapping and old synthesis must not load together.
    with pytest.raises(FileNotFoundError, match="no index: a save_pretrained that was interrupted"):
        VideoPipeline.from_pretrained(folder)
    new.save_pretrained(folder)
    loaded = VideoPipeline.from_pretrained(folder)
    _close(loaded(num_frames=2, generator=0).frames, new(num_frames=2, generator=0).frames)
    assert loaded.discriminator is None and not (folder / "discriminator").exists()  # the stale component is gone
    assert (folder / "README.md").read_text() == "my card\n" and (folder / "eval_results.json").is_file()
