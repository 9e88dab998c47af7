"""Datasets and clip sampling: real video files (mp4/mkv/webm/avi), frame folders and zips, broken
files, labels, determinism across loader workers, and the procedural shapes."""

from __future__ import annotations

import importlib.util
import json
import pickle
import subprocess
import sys
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import vgz
from vgz.configs import ConfigError
from vgz.data.datasets import (
    DatasetError,
    DatasetWarning,
    FrameFolderDataset,
    VideoFolderDataset,
    make_dataloader,
    open_dataset,
    resize_center_crop,
)
from vgz.data.sampling import (
    ClipSamplingConfig,
    InfiniteClipSampler,
    derive_seed,
    min_video_len,
    sample_frame_indices,
)
from vgz.data.shapes import SyntheticShapesDataset
from vgz.data.video import export_video

HAS_DECORD = importlib.util.find_spec("decord") is not None
BACKENDS = ["av", pytest.param("decord", marks=pytest.mark.skipif(not HAS_DECORD, reason="decord not installed"))]


# --------------------------------------------------------------------------------- files


def _noise_video(t: int, h: int = 32, w: int = 64, seed: int = 0) -> np.ndarray:
    """uint8 [T, C, H, W]: noise, with the frame number in the top-left pixel's red channel."""
    frames = np.random.default_rng(seed).integers(0, 256, (t, 3, h, w), dtype=np.uint8)
    frames[:, 0, 0, 0] = np.arange(t) * 5
    return frames


def _write_av(path: Path, frames: np.ndarray, codec: str, pix_fmt: str, options=None, container_options=None):
    """Write [T, C, H, W] uint8 with PyAV directly (codecs export_video does not offer)."""
    import av

    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[3], frames.shape[2], pix_fmt
        stream.options = options or {}
        for image in frames.transpose(0, 2, 3, 1):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _can_encode(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(codec, "w")
    except Exception:  # noqa: BLE001
        return False
    return True


def _crop(frames: np.ndarray) -> np.ndarray:
    """Centre square of [T, C, H, W] (what the datasets do at resolution min(H, W))."""
    h, w = frames.shape[-2:]
    s = min(h, w)
    return frames[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A folder of real, exactly decodable videos (and their frames)."""
    root = tmp_path_factory.mktemp("videos")
    frames = {"a.mp4": _noise_video(20, seed=1), "sub/b.mkv": _noise_video(14, seed=2),
              "c.avi": _noise_video(9, seed=3)}
    (root / "sub").mkdir()
    export_video(frames["a.mp4"], root / "a.mp4", fps=25, lossless=True)
    export_video(frames["sub/b.mkv"], root / "sub/b.mkv", fps=25, lossless=True)
    _write_av(root / "c.avi", frames["c.avi"], "ffv1", "bgr0")
    return root, frames


@pytest.fixture(scope="module")
def frame_dirs(tmp_path_factory):
    """Frame folders (PNG, 12 and 3 frames) and the same layout zipped, with official-style labels."""
    from PIL import Image

    root = tmp_path_factory.mktemp("frames") / "data"
    frames = {"v1": _noise_video(12, 24, 20, seed=4), "v2": _noise_video(3, 24, 20, seed=5)}
    for name, video in frames.items():
        (root / name).mkdir(parents=True)
        for i, image in enumerate(video.transpose(0, 2, 3, 1)):
            Image.fromarray(image).save(root / name / f"{i}.png")  # 10.png sorts after 2.png
    labels = {"labels": {"v1/0.png": 2, "v2/0.png": 0}}  # StyleGAN-V's per-frame keys
    (root / "dataset.json").write_text(json.dumps(labels))
    archive = root.parent / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root).as_posix())
    return root, archive, frames


# --------------------------------------------------------------------------------- sampling


def test_styleganv_sampling_follows_the_official_rule():
    cfg = ClipSamplingConfig.from_preset("styleganv")
    assert (cfg.num_frames, cfg.max_dist, cfg.max_num_frames, cfg.first_frame) == (3, 32, 1024, False)
    rng = np.random.default_rng(0)
    for video_len in (3, 5, 40, 3000):
        window = min(video_len, 1024)
        allowed = {d for d in cfg.total_dists if 2 <= d <= min(window - 1, 32)}
        spans, firsts, lasts = Counter(), set(), set()
        for _ in range(400):
            idx = sample_frame_indices(video_len, cfg, rng)
            assert idx.dtype == np.int64 and idx.shape == (3,)
            assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < window  # sorted, distinct
            spans[int(idx[-1] - idx[0])] += 1
            firsts.add(int(idx[0]))
            lasts.add(int(idx[-1]))
        assert set(spans) == allowed  # every allowed span occurs, no other
        if video_len == 40:
            assert 0 in firsts and window - 1 in lasts
    assert min_video_len(cfg) == 3
    with pytest.raises(ValueError, match="2 frames is too short.*at least 3"):
        sample_frame_indices(2, cfg, rng)


def test_any_span_fractional_image_and_config_checks():
    rng = np.random.default_rng(1)
    cfg = ClipSamplingConfig(num_frames=4, total_dists=None, max_dist=6)
    spans = {int(np.ptp(sample_frame_indices(50, cfg, rng))) for _ in range(300)}
    assert spans == {3, 4, 5, 6}  # k - 1 .. max_dist, both ends included
    assert min_video_len(cfg) == 4

    styleganv = ClipSamplingConfig()
    for _ in range(50):
        t = sample_frame_indices(20, styleganv, rng, fractional=True)
        assert t.dtype == np.float64 and np.all(np.diff(t) > 0) and 0 <= t[0] < 20 - 1
        assert round(t[-1] - t[0], 9) in styleganv.total_dists and t[0] != int(t[0])

    image = ClipSamplingConfig.from_preset("image")
    picks = {int(sample_frame_indices(7, image, rng)[0]) for _ in range(200)}
    assert picks == set(range(7)) and min_video_len(image) == 1

    with pytest.raises(ConfigError, match="first_frame"):
        ClipSamplingConfig(num_frames=1, first_frame=True)
    with pytest.raises(ConfigError, match="max_dist"):
        ClipSamplingConfig(num_frames=5, max_dist=2)
    assert ClipSamplingConfig.from_dict(ClipSamplingConfig().to_dict()) == ClipSamplingConfig()


def test_styleinv_sampling_prepends_the_window_first_frame():
    cfg = ClipSamplingConfig.from_preset("styleinv")
    assert (cfg.num_frames, cfg.max_num_frames, cfg.first_frame) == (4, 128, True)
    assert min_video_len(cfg) == 128  # StyleInV skips videos shorter than its 128-frame window
    rng = np.random.default_rng(2)
    zeros, spans = 0, []
    for _ in range(300):
        idx = sample_frame_indices(500, cfg, rng)
        assert idx.shape == (4,) and idx[0] == 0 and np.all(np.diff(idx) >= 0) and idx[-1] < 128
        drawn = idx[1:]
        assert np.all(np.diff(drawn) > 0)
        spans.append(int(drawn[-1] - drawn[0]))
        zeros += int(drawn[0] == 0)  # the drawn frames may start at 0 too, as in StyleInV
    assert 0 < zeros < 30
    # The official sampler's spans: any of range(2, 32) (total_dists ignored, 32 left out).
    assert set(spans) <= set(range(2, 32)) and len(set(spans)) > 20 and 31 in spans
    short = cfg.replace(min_len=0)
    assert min_video_len(short) == 3
    with pytest.raises(ValueError, match="too short"):
        sample_frame_indices(100, cfg, rng)


def test_sampler_is_deterministic_balanced_disjoint_and_resumable():
    def take(sampler, n):
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    stream = take(InfiniteClipSampler(7, seed=3), 70)
    assert stream == take(InfiniteClipSampler(7, seed=3), 70)
    assert stream != take(InfiniteClipSampler(7, seed=4), 70)
    videos = [v for v, _ in stream]
    epochs = [videos[i:i + 7] for i in range(0, 70, 7)]
    assert all(sorted(e) == list(range(7)) for e in epochs)  # every video once per epoch
    assert len({tuple(e) for e in epochs}) > 5  # reshuffled each epoch
    assert len({s for _, s in stream}) == 70 and all(isinstance(s, int) and s >= 0 for _, s in stream)
    assert [v for v, _ in take(InfiniteClipSampler(7, shuffle=False), 9)] == [0, 1, 2, 3, 4, 5, 6, 0, 1]

    ranks = [take(InfiniteClipSampler(7, seed=3, rank=r, world_size=3), 20) for r in range(3)]
    for r in range(3):
        assert ranks[r] == stream[r::3][:20]  # interleaved shares of the one global stream
    assert not set(ranks[0]) & set(ranks[1]) and not set(ranks[1]) & set(ranks[2])

    sampler = InfiniteClipSampler(7, seed=3, rank=1, world_size=3)
    fresh = take(sampler, 25)
    assert take(InfiniteClipSampler(7, seed=3, rank=1, world_size=3, start=11), 14) == fresh[11:]
    assert sampler.item(11) == fresh[11]
    with pytest.raises(ValueError, match="rank"):
        InfiniteClipSampler(7, rank=3, world_size=3)
    assert derive_seed(1, 2) != derive_seed(2, 1)


# --------------------------------------------------------------------------------- video files


@pytest.mark.parametrize("backend", BACKENDS)
def test_video_folder_reads_the_written_frames(videos, backend):
    root, frames = videos
    ds = open_dataset(root, resolution=32, backend=backend)
    assert isinstance(ds, VideoFolderDataset) and ds.backend == backend
    names = [Path(p).relative_to(root).as_posix() for p in ds.video_paths]
    assert names == ["a.mp4", "c.avi", "sub/b.mkv"]  # recursive, sorted
    assert ds.video_lengths == [20, 9, 14]  # mkv: counted packets
    assert (len(ds), ds.num_channels, ds.resolution, ds.label_dim, ds.skipped) == (3, 3, 32, 0, [])
    for i, name in enumerate(names):
        idx = [0, 3, 4, ds.video_lengths[i] - 1]
        got = ds.read_frames(i, idx)
        assert got.dtype == torch.uint8 and got.shape == (4, 3, 32, 32)
        assert torch.equal(got, torch.from_numpy(_crop(frames[name][idx])))
    # A smaller resolution: centre crop, then an antialiased resize.
    small = open_dataset(root, resolution=16, backend=backend)
    expected = resize_center_crop(torch.from_numpy(frames["a.mp4"][[2, 7]]), 16)
    assert torch.equal(small.read_frames(0, [2, 7]), expected)
    assert expected.float().mean().sub(float(frames["a.mp4"][[2, 7]].mean())).abs() < 3

    item = ds[(0, 1234)]
    assert set(item) == {"frames", "times", "video_len", "label", "video_index"}
    assert item["frames"].shape == (3, 3, 32, 32) and item["times"].dtype == torch.int64
    assert item["label"].shape == (0,) and item["video_len"] == 20 and item["video_index"] == 0
    assert torch.equal(item["frames"], ds.read_frames(0, item["times"].numpy()))  # no window: offset 0
    again = ds[(0, 1234)]
    assert torch.equal(item["frames"], again["frames"]) and torch.equal(item["times"], again["times"])


@pytest.mark.skipif(not HAS_DECORD, reason="decord not installed")
def test_decord_and_pyav_agree(videos):
    root, _ = videos
    a = open_dataset(root, resolution=32, backend="av")
    b = open_dataset(root, resolution=32, backend="decord")
    for i in range(len(a)):
        idx = np.arange(a.video_lengths[i])[::-1].copy()  # backwards: every read seeks
        assert torch.equal(a.read_frames(i, idx), b.read_frames(i, idx))
    for seed in range(5):
        assert torch.equal(a[(1, seed)]["frames"], b[(1, seed)]["frames"])


def test_more_containers(tmp_path):
    # Smooth moving content (lossy codecs keep it close); 48 pixels wide, which decord cannot
    # convert: its datasets fall back to PyAV.
    x = np.linspace(0, 2 * np.pi, 48)[None, None, None, :] + np.arange(12)[:, None, None, None] * 0.3
    frames = (127.5 + 100 * np.sin(x + 0.5 * np.arange(3)[None, :, None, None])).repeat(24, 2).astype(np.uint8)
    _write_av(tmp_path / "x.avi", frames, "mpeg4", "yuv420p", {"qscale": "2"})
    export_video(frames, tmp_path / "y.mov", lossless=True)
    if _can_encode("libvpx-vp9"):
        _write_av(tmp_path / "z.webm", frames, "libvpx-vp9", "yuv444p", {"lossless": "1"})
    for backend in ["av", "decord"] if HAS_DECORD else ["av"]:
        ds = open_dataset(tmp_path, resolution=24, backend=backend)
        assert ds.video_lengths == [12] * len(ds) and ds.skipped == []
        reference = torch.from_numpy(_crop(frames)).float()
        for i in range(len(ds)):
            got = ds.read_frames(i, [1, 11]).float()
            errors = (got[:, None] - reference[None]).abs().mean((2, 3, 4))  # [2, 12]
            assert errors.argmin(1).tolist() == [1, 11], (ds.video_paths[i], backend)  # the right frames
            assert errors[[0, 1], [1, 11]].max() < 8, (ds.video_paths[i], backend, errors)  # mpeg4 is lossy
        if backend == "decord":
            assert ds.decord_failed == set(range(len(ds)))


def test_broken_files_are_skipped_with_one_warning(tmp_path, videos):
    root, frames = videos
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.mp4").write_bytes((root / "a.mp4").read_bytes())
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (folder / "empty.webm").write_bytes(b"")
    export_video(frames["a.mp4"][:2], folder / "short.mkv", lossless=True)
    (folder / "notes.txt").write_text("not a video")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = open_dataset(folder, resolution=32, backend="av")
        ds.report_skipped()  # already reported: once only
    messages = [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]
    assert len(messages) == 1 and "skipped 3 of 4" in messages[0]
    for name in ("corrupt.mp4", "empty.webm", "short.mkv"):
        assert name in messages[0]
    reasons = {Path(p).name: r for p, r in ds.skipped}
    assert reasons["empty.webm"] == "empty file" and "cannot open" in reasons["corrupt.mp4"]
    assert "2 frames, shorter than the 3" in reasons["short.mkv"]
    assert len(ds) == 1 and ds[(0, 5)]["frames"].shape == (3, 3, 32, 32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_video_failing_mid_decode_is_replaced(tmp_path, backend):
    frames = _noise_video(20, seed=7)
    export_video(frames, tmp_path / "a_good.mp4", lossless=True)
    # The index (moov) first, then the data: cut most of the data, so that the header still
    # promises 20 frames that are not there.
    _write_av(tmp_path / "b_cut.mp4", frames, "libx264rgb", "rgb24", {"crf": "0"}, {"movflags": "+faststart"})
    data = (tmp_path / "b_cut.mp4").read_bytes()
    (tmp_path / "b_cut.mp4").write_bytes(data[:len(data) // 5])
    ds = open_dataset(tmp_path, resolution=32, backend=backend)
    assert ds.video_lengths == [20, 20] and ds.skipped == []
    with pytest.raises(Exception):
        ds.read_frames(1, [19])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [ds[(1, seed)] for seed in range(12)]
    assert all(item["frames"].shape == (3, 3, 32, 32) for item in items)
    assert {item["video_index"] for item in items} <= {0, 1} and ds.bad_videos.keys() == {1}
    replaced = [item for item in items if item["video_index"] == 0]
    assert replaced and torch.equal(replaced[0]["frames"], ds.read_frames(0, replaced[0]["times"].numpy()))
    failures = [w for w in caught if issubclass(w.category, DatasetWarning)]
    assert len(failures) == 1 and "b_cut.mp4" in str(failures[0].message)
    # The replacement depends on the clip seed only: a fresh dataset gives the same items.
    fresh = open_dataset(tmp_path, resolution=32, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert all(torch.equal(fresh[(1, s)]["frames"], items[s]["frames"]) for s in range(12))


def test_bad_paths_are_explained(tmp_path):
    with pytest.raises(DatasetError, match=r"my_videos: no such file or directory"):
        open_dataset(tmp_path / "my_videos", resolution=64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: expected video files or folders of frames, found an empty folder"):
        open_dataset(tmp_path / "empty", resolution=64)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"docs: expected video files .* found 1 other files"):
        open_dataset(tmp_path / "docs", resolution=64)
    (tmp_path / "one.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"one.txt: expected a folder.*found a .txt file"):
        open_dataset(tmp_path / "one.txt", resolution=64)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.mp4").write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"broken: expected a folder of video files.*found no usable video; "
                                           r"all 1 skipped: .*x.mp4 \(cannot open"):
        open_dataset(tmp_path / "broken", resolution=64)
    with pytest.raises(DatasetError, match="no such file"):
        vgz.create("dataset", "frame-folder", path=str(tmp_path / "nope.zip"))
    with pytest.raises(DatasetError, match="synthetic:<name> with one of shapes, found 'cubes'"):
        open_dataset("synthetic:cubes", resolution=64)
    with pytest.raises(DatasetError, match="num_videoz"):
        open_dataset("synthetic:shapes?num_videoz=3", resolution=64)


# --------------------------------------------------------------------------------- frame folders


def test_frame_folders_and_zip_give_the_same_frames_in_natural_order(frame_dirs):
    root, archive, frames = frame_dirs
    folder, zipped = open_dataset(root, resolution=20), open_dataset(archive, resolution=20)
    assert isinstance(folder, FrameFolderDataset) and isinstance(zipped, FrameFolderDataset)
    for ds in (folder, zipped):
        assert ds.video_names == ["v1", "v2"] and ds.video_lengths == [12, 3]
        idx = [0, 2, 10, 11]
        assert torch.equal(ds.read_frames(0, idx), torch.from_numpy(_crop(frames["v1"][idx])))
        assert ds.label_dim == 3 and ds.get_label(0).tolist() == [0, 0, 1] and ds.get_label(1).tolist() == [1, 0, 0]
        assert ds.get_label(0).dtype == np.float32
    assert Path(folder.frame_files[0][10]).name == "10.png" and Path(folder.frame_files[0][2]).name == "2.png"
    for seed in range(4):
        a, b = folder[(0, seed)], zipped[(0, seed)]
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["label"], torch.tensor([0.0, 0.0, 1.0]))
    zipped.read_frames(1, [0])  # opens the zip
    clone = pickle.loads(pickle.dumps(zipped))
    assert clone._zip is None and torch.equal(clone.read_frames(1, [2]), zipped.read_frames(1, [2]))
    unlabelled = open_dataset(root, resolution=20, use_labels=False)
    assert unlabelled.label_dim == 0 and unlabelled[0]["label"].shape == (0,)


def test_jpeg_frames_labels_and_xflip(tmp_path):
    from PIL import Image

    smooth = np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None].repeat(30, 0).repeat(3, 2)
    for v in range(3):
        (tmp_path / "clips" / f"c{v}").mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.roll(smooth, i, axis=1)).save(tmp_path / "clips" / f"c{v}" / f"f{i:03d}.jpg")
    root = tmp_path / "clips"
    (root / "dataset.json").write_text(json.dumps({"labels": {"c0": [0.5, 1.0], "c1": [1.5, 2.0], "c2": [0, 0]}}))
    ds = open_dataset(root, resolution=16, xflip=True)
    assert ds.label_dim == 2 and ds.get_label(1).tolist() == [1.5, 2.0]
    assert ds[(0, 0)]["frames"].shape == (3, 3, 16, 16)
    plain = open_dataset(root, resolution=16)
    flips = []
    for seed in range(16):
        a, b = ds[(2, seed)]["frames"], plain[(2, seed)]["frames"]
        assert torch.equal(a, b) or torch.equal(a, b.flip(-1))
        flips.append(not torch.equal(a, b))
    assert 3 <= sum(flips) <= 13  # about half the clips, whole clips at once
    (root / "dataset.json").write_text(json.dumps({"labels": {"c0": 1, "c1": 0}}))
    with pytest.raises(DatasetError, match=r"dataset.json: expected a label for every video, found none for 'c2'"):
        open_dataset(root, resolution=16)


def test_labels_for_video_files(videos, tmp_path):
    root, _ = videos
    copy = tmp_path / "labelled"
    copy.mkdir()
    for name in ("a.mp4", "c.avi"):
        (copy / name).write_bytes((root / name).read_bytes())
    (copy / "dataset.json").write_text(json.dumps({"labels": [["a.mp4", 1], ["c", 4]]}))
    ds = open_dataset(copy, resolution=32, backend="av")
    assert ds.label_dim == 5 and ds.get_label(1).argmax() == 4 and ds[(0, 0)]["label"].tolist() == [0, 1, 0, 0, 0]


# --------------------------------------------------------------------------------- loading


def test_dataloader_workers_do_not_change_the_batches(frame_dirs, videos):
    _, archive, _ = frame_dirs
    datasets = [open_dataset(archive, resolution=16), open_dataset("synthetic:shapes?num_videos=8", resolution=16),
                open_dataset(videos[0], resolution=16)]  # decord when installed
    for ds in datasets:
        ds.read_frames(0, [0])  # handles opened here must not leak into the workers
        batches = {}
        for workers in (0, 2):
            sampler = InfiniteClipSampler(len(ds), seed=1)
            loader = make_dataloader(ds, batch_size=4, sampler=sampler, num_workers=workers)
            it = iter(loader)
            batches[workers] = [next(it) for _ in range(3)]
            del it, loader
        first = batches[0][0]
        assert first["frames"].shape == (4, 3, 3, 16, 16) and first["frames"].dtype == torch.uint8
        assert first["times"].shape == (4, 3) and first["times"].dtype == torch.int64
        assert first["video_index"].shape == (4,) and first["label"].shape[0] == 4
        for a, b in zip(batches[0], batches[2]):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_plain_indices_and_registry():
    names = {e.name for e in vgz.list_components("dataset")}
    assert {"video-folder", "frame-folder", "synthetic-shapes"} <= names
    ds = vgz.create("dataset", "synthetic-shapes", resolution=16, num_videos=5, num_frames=40)
    assert isinstance(ds, SyntheticShapesDataset) and len(ds) == 5
    assert torch.equal(ds[3]["frames"], ds[3]["frames"]) and ds[-1]["video_index"] == 4
    assert not torch.equal(ds[3]["frames"], open_dataset("synthetic:shapes?num_videos=5&num_frames=40",
                                                         resolution=16, seed=1)[3]["frames"])
    in_query = open_dataset("synthetic:shapes?num_videos=5&num_frames=40&seed=1", resolution=16)
    assert in_query.config.seed == 1  # the query's seed wins over open_dataset's default
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(DatasetError, match="at least 3 frames.*num_frames=2"):
        open_dataset("synthetic:shapes?num_frames=2", resolution=16)


# --------------------------------------------------------------------------------- synthetic shapes


def test_synthetic_shapes_are_deterministic_smooth_videos():
    ds = open_dataset("synthetic:shapes?num_videos=16&num_frames=400", resolution=48)
    assert (len(ds), ds.video_lengths[0], ds.resolution) == (16, 400, 48)
    twin = open_dataset("synthetic:shapes?num_videos=16&num_frames=400", resolution=48)
    steps, far = [], []
    for v in range(6):
        video = ds.read_frames(v, [100, 101, 350]).float()
        assert video.shape == (3, 3, 48, 48)
        assert torch.equal(video, twin.read_frames(v, [100, 101, 350]).float())
        # Rendering only some frames gives the same frames.
        assert torch.equal(video[1], ds.read_frames(v, [101])[0].float())
        steps.append((video[1] - video[0]).abs().mean().item())
        far.append((video[2] - video[0]).abs().mean().item())
        assert video.std() > 10  # not a flat colour
    assert max(steps) < 6 and np.mean(far) > 4 * np.mean(steps)  # smooth motion, far frames differ more
    videos = torch.stack([ds.read_frames(v, [0])[0].float() for v in range(16)])
    assert (videos - videos.mean(0)).abs().mean() > 20  # videos differ from each other
    odd = open_dataset("synthetic:shapes?num_videos=2", resolution=37,
                       sampling=ClipSamplingConfig.from_preset("image"))
    assert odd[0]["frames"].shape == (1, 3, 37, 37)


def test_styleinv_clips_start_at_the_window_first_frame(frame_dirs):
    root, _, frames = frame_dirs
    sampling = ClipSamplingConfig.from_preset("styleinv", max_num_frames=12, min_len=12, max_dist=8)
    with pytest.warns(DatasetWarning, match=r"v2 \(3 frames, shorter than the 12"):
        ds = open_dataset(root, resolution=20, sampling=sampling)
    assert ds.video_names == ["v1"]
    for seed in range(5):
        item = ds[(0, seed)]  # the window is the whole 12-frame video
        assert item["times"][0] == 0 and item["times"].shape == (4,) and item["video_len"] == 12
        assert torch.equal(item["frames"], torch.from_numpy(_crop(frames["v1"][item["times"].numpy()])))


# --------------------------------------------------------------------------------- 16-bit video and layout


@pytest.mark.skipif(not _can_encode("ffv1"), reason="FFmpeg without the ffv1 encoder")
def test_16_bit_videos_decode_to_their_high_byte(tmp_path):
    """Lossless 16-bit RGB and grey videos (FFV1 rgb48le, gray16le) come out as their 8-bit high
    byte, give or take FFmpeg's rounding, not clipped to white."""
    import av

    frames = np.linspace(0, 65535, 4 * 16 * 16 * 3).reshape(4, 16, 16, 3).astype(np.uint16)
    for name, pix_fmt in (("rgb48.mkv", "rgb48le"), ("grey16.mkv", "gray16le")):
        with av.open(str(tmp_path / name), "w") as out:
            stream = out.add_stream("ffv1", rate=25)
            stream.width = stream.height = 16
            stream.pix_fmt = pix_fmt
            for image in frames:
                image = image if pix_fmt == "rgb48le" else np.ascontiguousarray(image[:, :, 0])
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format=pix_fmt)):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    ds = open_dataset(tmp_path, resolution=16, sampling=ClipSamplingConfig.from_preset("image"), backend="av")
    for i, name in enumerate(ds.video_names):
        got = ds.read_frames(i, [0, 1, 2, 3]).permute(0, 2, 3, 1).numpy().astype(int)
        high = (frames >> 8).astype(int)
        expected = high if name == "rgb48.mkv" else np.repeat(high[..., :1], 3, axis=3)
        assert np.abs(got - expected).max() <= 1, name


def test_vgz_modules_import_without_cycles():
    """No module of vgz imports one that imports it back, at the top or inside a function: a cycle
    makes import order matter (a name half-defined when the other module reads it)."""
    import ast

    root = Path(vgz.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = ("vgz",) + path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph[node])
        return False

    cycles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if reaches(b, a))
    assert cycles == []


def test_a_loader_left_open_does_not_hang_the_interpreters_exit(tmp_path):
    # Workers ignore SIGTERM (a process-group TERM must reach the trainer first), and the exit
    # handler of multiprocessing stops leftover workers with SIGTERM and then joins them: without
    # WorkerLoader's exit hook this script never ends.
    script = tmp_path / "left_open.py"
    script.write_text(
        "from vgz.data.datasets import make_dataloader, open_dataset\n"
        "from vgz.data.sampling import InfiniteClipSampler\n"
        "ds = open_dataset('synthetic:shapes?num_videos=8&num_frames=16', resolution=16)\n"
        "sampler = InfiniteClipSampler(len(ds), rank=0, world_size=1, seed=0)\n"
        "it = iter(make_dataloader(ds, batch_size=2, sampler=sampler, num_workers=2))\n"
        "print(tuple(next(it)['frames'].shape), flush=True)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(2, 3, 3, 16, 16)"


def test_garbage_of_this_process_is_not_freed_in_a_worker(tmp_path):
    # A PyAV decoder left to the garbage collector, freed in a forked worker, joins a thread pool
    # that the worker does not have and hangs it forever (seen in the full test suite). Workers of
    # vgz's loaders start after a collection in the parent.
    script = tmp_path / "garbage.py"
    script.write_text(
        "import gc, sys\n"
        "import av, torch\n"
        "from vgz.data.datasets import WorkerLoader\n"
        "from vgz.data.video import export_video\n"
        "export_video(torch.rand(8, 3, 64, 64), sys.argv[1], fps=8)\n"
        "gc.disable()  # the garbage must still be there when the worker is forked\n"
        "def leave_a_decoder_as_garbage():\n"
        "    container = av.open(sys.argv[1])\n"
        "    stream = container.streams.video[0]\n"
        "    stream.thread_type = 'AUTO'\n"
        "    stream.codec_context.thread_count = 2\n"
        "    next(container.decode(stream))\n"
        "    cycle = [container, stream]\n"
        "    cycle.append(cycle)\n"
        "leave_a_decoder_as_garbage()\n"
        "class Collecting(torch.utils.data.Dataset):\n"
        "    def __len__(self):\n"
        "        return 2\n"
        "    def __getitem__(self, i):\n"
        "        gc.collect()  # as an automatic collection in the worker would\n"
        "        return i\n"
        "print([int(x) for x in WorkerLoader(Collecting(), batch_size=None, num_workers=1)], flush=True)\n")
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "v.mp4")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0, 1]"
