"""The Frechet distance, feature statistics and the StyleGAN-V sampling protocol."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from vgz.metrics.frechet import (MIN_RECOMMENDED_SAMPLES, FeatureStats, FewSamplesWarning, frechet_distance,
                                 frechet_distance_from_stats)


def scipy_reference(mu1, s1, mu2, s2) -> float:
    """The official StyleGAN-V formula (scipy.linalg.sqrtm of the product)."""
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.real(np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2 * root)))


def random_spd(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / (rank or d)


# --------------------------------------------------------------------------------- Frechet distance


def test_closed_form_for_commuting_gaussians():
    # Same eigenvectors: FD = |mu1 - mu2|^2 + sum (sqrt(l1) - sqrt(l2))^2.
    rng = np.random.default_rng(0)
    d = 32
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    l1, l2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = np.square(mu1 - mu2).sum() + np.square(np.sqrt(l1) - np.sqrt(l2)).sum()
    got = frechet_distance(mu1, (q * l1) @ q.T, mu2, (q * l2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-10)


def test_univariate_closed_form():
    got = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]]))
    assert got == pytest.approx(9.0 + (2.0 - 3.0) ** 2, rel=1e-12)


def test_matches_scipy_on_random_features():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 64)) @ rng.standard_normal((64, 64))
    y = rng.standard_normal((3000, 64)) @ rng.standard_normal((64, 64)) + 0.3
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False, bias=True)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False, bias=True)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(scipy_reference(mu1, s1, mu2, s2), rel=1e-9)


def test_identical_features_give_zero_and_distance_is_symmetric():
    rng = np.random.default_rng(2)
    mu, s = rng.standard_normal(400), random_spd(rng, 400)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-8 * np.trace(s)
    mu2, s2 = rng.standard_normal(400), random_spd(rng, 400, rank=50)
    assert frechet_distance(mu, s, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu, s), rel=1e-7)


def test_stable_for_2048_clips_of_400_features():
    # The FVD case: I3D logits of 2048 clips; low intrinsic rank, like real features.
    rng = np.random.default_rng(3)
    basis = rng.standard_normal((60, 400))
    x = rng.standard_normal((2048, 60)) @ basis + 0.01 * rng.standard_normal((2048, 400))
    y = rng.standard_normal((2048, 60)) @ basis * 1.1 + 0.01 * rng.standard_normal((2048, 400)) + 0.05
    real, fake = FeatureStats(), FeatureStats()
    real.append(x)
    fake.append(y)
    mu1, s1 = real.mean_cov()
    mu2, s2 = fake.mean_cov()
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(ours) and ours > 0
    assert ours == pytest.approx(scipy_reference(mu1, s1, mu2, s2), rel=1e-6)
    # Identical sets of 2048 x 400 features: ~0 where sqrtm of a rank-deficient product struggles.
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-6 * np.trace(s1)


def test_rank_deficient_covariances_stay_real_and_non_negative():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((100, 400)), rng.standard_normal((100, 400))  # rank 99 < 400
    a, b = FeatureStats(), FeatureStats()
    a.append(x)
    b.append(y)
    value = frechet_distance(*a.mean_cov(), *b.mean_cov())
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(frechet_distance(*b.mean_cov(), *a.mean_cov()), rel=1e-8)


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(3,\) and \(4,\)"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# --------------------------------------------------------------------------------- statistics


def test_feature_stats_match_numpy_and_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((250, 16)).astype(np.float32)
    stats = FeatureStats(max_items=200)
    for chunk in np.array_split(x, 7):
        stats.append(torch.from_numpy(chunk))
    assert stats.num_items == 200 and stats.is_full()
    mean, cov = stats.mean_cov()
    np.testing.assert_allclose(mean, x[:200].astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x[:200].astype(np.float64), rowvar=False, bias=True), atol=1e-12)
    stats.save(tmp_path / "s.npz")
    back = FeatureStats.load(tmp_path / "s.npz")
    assert back.num_items == 200
    np.testing.assert_array_equal(back.mean_cov()[1], cov)
    with pytest.raises(ValueError, match="expected 16 features"):
        FeatureStats(num_features=16).append(np.zeros((2, 8)))
    with pytest.raises(ValueError, match="NaN"):
        FeatureStats().append(np.full((2, 3), np.nan))
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="bad.npz"):
        FeatureStats.load(tmp_path / "bad.npz")


def test_few_samples_warn():
    rng = np.random.default_rng(6)
    a, b = FeatureStats(), FeatureStats()
    a.append(rng.standard_normal((MIN_RECOMMENDED_SAMPLES - 1, 4)))
    b.append(rng.standard_normal((MIN_RECOMMENDED_SAMPLES, 4)))
    with pytest.warns(FewSamplesWarning, match="399 real"):
        frechet_distance_from_stats(a, b)
    a.append(rng.standard_normal((1, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frechet_distance_from_stats(a, b)


# --------------------------------------------------------------------------------- protocol

from PIL import Image  # noqa: E402

from vgz.data.datasets import DatasetWarning, open_dataset  # noqa: E402
from vgz.data.sampling import ClipSamplingConfig, derive_seed  # noqa: E402
from vgz.pipelines.base import raw_to_uint8  # noqa: E402
from vgz.metrics.protocol import (create_metric, dataset_clips, dataset_frames, generated_clips,  # noqa: E402
                                  generated_frames, rebatch)


def frame_folders(root, lengths, size=8):
    """Video i, frame j: a solid frame with R = j, G = i (exact through PNG)."""
    for i, length in enumerate(lengths):
        folder = root / f"video{i:02d}"
        folder.mkdir(parents=True)
        for j in range(length):
            Image.fromarray(np.full((size, size, 3), (j, i, 7), np.uint8)).save(folder / f"{j:04d}.png")
    return root


def open_frames(root, size=8):
    return open_dataset(root, resolution=size, sampling=ClipSamplingConfig.from_preset("image"))


def read_ids(batch):
    """[B, T, C, H, W] -> (video ids [B], frame ids [B, T])."""
    return batch[:, 0, 1, 0, 0].tolist(), batch[:, :, 0, 0, 0].tolist()


def test_real_clips_one_per_long_enough_video_at_seeded_offsets(tmp_path):
    dataset = open_frames(frame_folders(tmp_path / "d", [20, 10, 16, 40, 15]))
    samples = dataset_clips(dataset, num_clips=2, num_frames=16, seed=0, batch_size=4, num_workers=0)
    (batch,) = list(samples)
    videos, frames = read_ids(batch)
    assert videos == [0, 2]  # the first videos with >= 16 frames, in order; 1 and 4 are too short
    assert samples.info == {"videos": 5, "videos_too_short": 2, "videos_failed": 0, "clips": 2}
    for v, f in zip(videos, frames):
        offset = int(np.random.default_rng(derive_seed(0, v)).integers(dataset.video_lengths[v] - 16 + 1))
        assert f == list(range(offset, offset + 16))
    again = torch.cat(list(dataset_clips(dataset, num_clips=3, num_frames=16, seed=0, batch_size=2, num_workers=2)))
    assert torch.equal(again[:2], batch) and read_ids(again)[0] == [0, 2, 3]
    starts = torch.cat(list(dataset_clips(dataset, num_clips=3, num_frames=16, random_offset=False, num_workers=0)))
    assert [f[0] for f in read_ids(starts)[1]] == [0, 0, 0]


def test_subsampled_clips_span_the_official_range(tmp_path):
    dataset = open_frames(frame_folders(tmp_path / "d", [17, 16, 15]))
    offsets = set()
    for seed in range(40):
        batch = torch.cat(list(dataset_clips(dataset, num_clips=3, num_frames=8, subsample=2, seed=seed,
                                             num_workers=0)))
        videos, frames = read_ids(batch)
        assert videos == [0, 1]  # 15 < 8 * 2 frames: dropped, as StyleGAN-V's discard_short_videos
        for f in frames:
            assert np.all(np.diff(f) == 2) and f[-1] <= 16
        offsets.add(frames[0][0])
    assert offsets == {0, 1, 2}  # [0, len - n*s + s - 1] for the 17-frame video


def test_unreadable_videos_are_skipped_and_counted(tmp_path):
    root = frame_folders(tmp_path / "d", [16, 16, 16, 16])
    (root / "video01" / "0003.png").write_bytes(b"not a png")
    dataset = open_frames(root)
    samples = dataset_clips(dataset, num_clips=3, num_frames=16, num_workers=0)
    with pytest.warns(DatasetWarning, match="1 videos failed to decode"):
        batch = torch.cat(list(samples))
    assert read_ids(batch)[0] == [0, 2, 3]
    assert samples.info["videos_failed"] == 1 and samples.info["clips"] == 3


def test_real_frames_are_every_frame_in_order(tmp_path):
    dataset = open_frames(frame_folders(tmp_path / "d", [5, 3, 4]))
    frames = torch.cat(list(dataset_frames(dataset, batch_size=4, num_workers=0, chunk=2)))
    assert [(int(f[1, 0, 0]), int(f[0, 0, 0])) for f in frames] == \
        [(0, j) for j in range(5)] + [(1, j) for j in range(3)] + [(2, j) for j in range(4)]
    capped = dataset_frames(dataset, num_frames=6, batch_size=4, num_workers=0)
    assert capped.total == 6 and len(torch.cat(list(capped))) == 6
    assert dataset_frames(dataset, num_videos=2, num_workers=0).total == 8


def test_uint8_conversion_is_the_official_one(tiny_pipe):
    x = torch.linspace(-1.2, 1.2, 100_003)
    assert torch.equal(raw_to_uint8(x), (x * 127.5 + 128).clamp(0, 255).to(torch.uint8))
    # At exact rounding boundaries, converting frames already in [0, 1] comes out one lower: the
    # metrics take the generator's own output instead.
    k = torch.arange(0, 257, dtype=torch.float64)
    boundaries = ((k - 0.5) / 127.5 - 1).float()
    via_unit = (((boundaries + 1) / 2).clamp(0, 1) * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    assert (via_unit.int() - raw_to_uint8(boundaries).int()).min() == -1
    raw = tiny_pipe(num_videos=2, num_frames=3, generator=0, output_type="raw").frames
    assert raw.dtype == torch.float32 and (raw.min() < 0 or raw.max() > 1)
    assert torch.equal(tiny_pipe(num_videos=2, num_frames=3, generator=0, output_type="uint8").frames,
                       raw_to_uint8(raw))


@pytest.fixture(scope="module")
def tiny_pipe():
    from vgz.pipelines.styleganv import StyleGANVPipeline

    torch.manual_seed(0)
    return StyleGANVPipeline.from_preset("tiny")


def same_up_to_rounding(a: torch.Tensor, b: torch.Tensor) -> bool:
    """uint8 frames equal but for a few values off by one: the generator's batched matrix products
    (MKL, cuDNN) round in the last float bits differently for different batch sizes, which moves a
    value that sits on a rounding boundary."""
    differ = (a.int() - b.int()).abs()
    return a.shape == b.shape and int(differ.max()) <= 1 and (differ > 0).float().mean().item() < 1e-3


def test_generated_clips_are_frames_t0_to_t15_per_seed_whatever_the_batch(tiny_pipe):
    a = torch.cat(list(generated_clips(tiny_pipe, num_clips=5, num_frames=4, subsample=2, seed=3, batch_size=2)))
    b = torch.cat(list(generated_clips(tiny_pipe, num_clips=5, num_frames=4, subsample=2, seed=3, batch_size=5)))
    assert a.dtype == torch.uint8 and a.shape[:2] == (5, 4) and same_up_to_rounding(a, b)
    fps = tiny_pipe.config.fps
    clip3 = tiny_pipe(timestamps=[0 / fps, 2 / fps, 4 / fps, 6 / fps], generator=derive_seed(3, 3),
                      output_type="raw").frames
    assert same_up_to_rounding(a[3], raw_to_uint8(clip3[0]))
    other = torch.cat(list(generated_clips(tiny_pipe, num_clips=5, num_frames=4, subsample=2, seed=4)))
    assert not torch.equal(a, other)


def test_each_generated_clip_gets_its_label_whatever_the_batch(tiny_pipe):
    """Class-conditional models: the label of clip i is drawn for clip i, not per batch."""
    labels = np.eye(4, dtype=np.float32)

    class Recording:  # the pipeline, with the labels the protocol passes recorded
        is_video = True
        config = tiny_pipe.config

        def __init__(self):
            self.given = []

        def __call__(self, c=None, **kwargs):
            self.given.append(c)
            return tiny_pipe(**kwargs)  # the tiny model is unconditional

    given = {}
    for batch_size in (1, 3, 7):
        pipe = Recording()
        list(generated_clips(pipe, num_clips=7, num_frames=1, seed=0, batch_size=batch_size, labels=labels))
        given[batch_size] = np.concatenate(pipe.given)
        assert len(pipe.given) == -(-7 // batch_size)
    assert np.array_equal(given[1], given[3]) and np.array_equal(given[1], given[7])
    assert len({tuple(row) for row in given[1]}) > 1


def test_generated_frames_take_16_per_video(tiny_pipe):
    frames = torch.cat(list(generated_frames(tiny_pipe, num_frames=40, frames_per_video=16, seed=0, batch_size=32)))
    assert frames.shape[0] == 40 and frames.ndim == 4
    video2 = tiny_pipe(num_frames=16, generator=derive_seed(0, 2), output_type="uint8").frames[0]
    assert torch.equal(frames[32:40], video2[:8])


def test_rebatch_regroups_rows_in_order():
    rows = torch.arange(23)
    sizes = [1, 5, 2, 7, 8]
    chunks = list(torch.split(rows, sizes))
    out = list(rebatch(iter(chunks), 4))
    assert [len(b) for b in out] == [4, 4, 4, 4, 4, 3] and torch.equal(torch.cat(out), rows)
    assert list(rebatch(iter([]), 4)) == []


def test_detector_batches_and_statistics_do_not_follow_the_generation_batch():
    """The detector takes the protocol's batches whatever the generation batch: its features (a
    batched convolution rounds differently for other batch sizes) and the float64 sums are then
    bit for bit the same."""
    from vgz.metrics.detectors import randomize_
    from vgz.metrics.evaluation import _accumulate
    from vgz.metrics.inception import MIN_RESOLUTION, InceptionConfig, InceptionDetector
    from vgz.metrics.protocol import Samples

    # At its smallest input size (fast); its features still change in the last bits with the batch.
    detector = randomize_(InceptionDetector(InceptionConfig(resolution=MIN_RESOLUTION)), seed=0).eval()
    seen = []
    detector.register_forward_pre_hook(lambda module, args: seen.append(len(args[0])))
    frames = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    stats = {}
    for step in (1, 5):
        seen.clear()
        samples = Samples((frames[i:i + step] for i in range(0, len(frames), step)), len(frames))
        stats[step] = _accumulate(samples, detector, torch.device("cpu"), "test", False, 4)
        assert seen == [4, 1]
    assert np.array_equal(stats[1]._sum, stats[5]._sum) and np.array_equal(stats[1]._sum_outer, stats[5]._sum_outer)


def test_generation_keeps_no_batch_it_has_handed_out(tiny_pipe):
    """Memory stays flat in the number of samples: once the consumer drops a batch (after its
    features are taken), neither the generator nor the regrouping still holds it."""
    import gc
    import weakref

    for samples, size in ((generated_clips(tiny_pipe, num_clips=9, num_frames=2, seed=0, batch_size=2), 3),
                          (generated_frames(tiny_pipe, num_frames=40, frames_per_video=4, seed=0, batch_size=8), 16)):
        handed, regrouped = [], []
        source = iter(samples)

        def tracked():
            for batch in source:
                handed.append(weakref.ref(batch))
                yield batch

        for batch in rebatch(tracked(), size):
            regrouped.append(weakref.ref(batch))
            del batch
            gc.collect()
            # Only the newest generated batch (being regrouped) may be alive.
            assert all(ref() is None for ref in handed[:-1]) and all(ref() is None for ref in regrouped[:-1])
        assert len(handed) > 3


def test_metrics_are_registered_with_the_official_protocols():
    import vgz

    names = {e.name for e in vgz.list_components("metric")}
    assert {"fvd16", "fvd128", "fvd128_subsample8", "fid"} <= names
    sub8 = create_metric("fvd2048_128f_subsample8f")
    assert (sub8.config.num_frames, sub8.config.subsample, sub8.config.num_real, sub8.config.num_fake) == (16, 8, 2048, 2048)
    assert create_metric("fvd128").protocol()["official_name"] == "fvd2048_128f"
    fid = create_metric("fid")
    assert fid.config.num_real is None and fid.config.num_fake == 50000 and fid.config.frames_per_video == 16
    quick = create_metric("fvd16").limit(8)
    assert (quick.config.num_real, quick.config.num_fake) == (8, 8)
