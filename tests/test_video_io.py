"""Video files: real encodes decoded back with PyAV (mp4/mkv/gif, lossless and lossy), atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vgz
from vgz.data.video import VideoWriter, export_video, read_video, tile_videos, to_uint8_frames


def _frames(t=12, h=32, w=48, seed=0) -> torch.Tensor:
    return torch.rand(t, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_lossless_mp4_round_trip_is_exact(tmp_path):
    frames = _frames()
    path = export_video(frames, tmp_path / "a.mp4", fps=12.5, lossless=True)
    decoded, fps = read_video(path)
    assert decoded.shape == (12, 3, 32, 48) and decoded.dtype == torch.uint8
    assert fps == 12.5
    expected = (frames * 255).round().to(torch.uint8)
    assert torch.equal(decoded, expected)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov", ".gif"])
def test_lossy_formats_decode_close(tmp_path, suffix):
    # Smooth content: H.264 and GIF palettes keep it close.
    ramp = torch.linspace(0, 1, 48).expand(10, 3, 32, 48).clone()
    ramp[:, 1] = ramp[:, 1].flip(-1)
    path = export_video(ramp, tmp_path / f"v{suffix}", fps=25)
    decoded, fps = read_video(path)
    assert decoded.shape == (10, 3, 32, 48) and fps == pytest.approx(25)
    err = (decoded.float() / 255 - ramp).abs().mean().item()
    assert err < 0.03, f"{suffix}: mean abs error {err}"


def test_odd_sizes_and_inputs(tmp_path):
    odd = _frames(t=3, h=15, w=17)
    decoded, _ = read_video(export_video(odd.numpy(), tmp_path / "odd.mp4", fps=8))  # yuv444p for odd sizes
    assert decoded.shape == (3, 3, 15, 17)
    gray = (np.random.default_rng(0).random((4, 1, 8, 8)) * 255).astype(np.uint8)
    assert to_uint8_frames(gray).shape == (4, 8, 8, 3)
    from PIL import Image

    images = [Image.new("RGB", (10, 6), (i * 40, 0, 0)) for i in range(3)]
    decoded, _ = read_video(export_video(images, tmp_path / "pil.mp4", fps=3, lossless=True))
    assert decoded.shape == (3, 3, 6, 10) and decoded[2, 0].float().mean() == 80


def test_streaming_writer_and_frame_selection(tmp_path):
    frames = _frames(t=30, h=16, w=16)
    with VideoWriter(tmp_path / "s.mkv", fps=30, lossless=True) as writer:
        for i in range(0, 30, 7):
            writer.write(frames[i:i + 7])
        assert writer.frame_size == (16, 16) and writer.num_frames == 30
    picked, _ = read_video(tmp_path / "s.mkv", frames=[0, 29])
    assert torch.equal(picked, (frames[[0, 29]] * 255).round().to(torch.uint8))


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(tmp_path / "x.mp4", fps=5) as writer:
            writer.write(_frames(t=2))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="frames are 8x8, but the video is 32x48"):
        with VideoWriter(tmp_path / "y.mp4", fps=5) as writer:
            writer.write(_frames(t=2))
            writer.write(_frames(t=2, h=8, w=8))
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_are_explained(tmp_path):
    with pytest.raises(ValueError, match="unsupported video suffix '.avi'"):
        export_video(_frames(), tmp_path / "a.avi")
    with pytest.raises(ValueError, match="cannot be lossless"):
        export_video(_frames(), tmp_path / "a.gif", lossless=True)
    with pytest.raises(ValueError, match=r"export_video writes one video, got a batch of 2"):
        export_video(torch.rand(2, 3, 3, 8, 8), tmp_path / "b.mp4")
    with pytest.raises(ValueError, match=r"\[time, channels, height, width\]"):
        export_video(torch.rand(3, 8, 8), tmp_path / "c.mp4")
    with pytest.raises(ValueError, match="fps must be > 0"):
        export_video(_frames(), tmp_path / "d.mp4", fps=0)
    with pytest.raises(ValueError, match="no frames were written"):
        with VideoWriter(tmp_path / "e.mp4", fps=5):
            pass
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="could not decode .*junk.mp4"):
        read_video(tmp_path / "junk.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]


def test_tile_videos_layout():
    videos = torch.arange(6, dtype=torch.float32).reshape(6, 1, 1, 1, 1).expand(6, 2, 3, 4, 5)
    grid = tile_videos(videos, rows=2)
    assert grid.shape == (2, 3, 8, 15)
    assert grid[0, 0, 0, ::5].tolist() == [0, 1, 2] and grid[0, 0, 4, ::5].tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="multiple of rows=4"):
        tile_videos(videos, rows=4)
    assert vgz.tile_videos is tile_videos and vgz.export_video is export_video


@pytest.mark.parametrize("fps, message", [(float("inf"), "fps must be > 0 and finite"),
                                          (float("nan"), "fps must be > 0 and finite"),
                                          (1e-4, "too low for a video file")])
def test_frame_rates_a_file_cannot_store_are_refused(tmp_path, fps, message):
    with pytest.raises(ValueError, match=message):
        VideoWriter(tmp_path / "v.mp4", fps=fps)
    assert list(tmp_path.iterdir()) == []
