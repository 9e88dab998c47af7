"""vgz's FVD against StyleGAN-V's own metric code: ``--offsets official`` with the official resolution
rule and order reproduces the official number, from the data and detector of
``fixtures/official_fvd_data.py`` and the values ``fixtures/make_official_fvd.py`` recorded by running
the official code."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from fixtures.official_fvd_data import CLIP_LEN, write_data, write_detector
from vgz.data.base import DatasetWarning
from vgz.data.datasets import open_dataset
from vgz.metrics import evaluate
from vgz.metrics.protocol import long_enough, official_offsets

OFFICIAL = json.loads((Path(__file__).parent / "fixtures" / "official_fvd.json").read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("official_fvd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        real, fake = write_data(root)
    detector = write_detector(root / "detector.pt")
    return real, fake, detector


def test_the_fixture_detector_is_the_one_the_official_code_ran(data):
    from vgz.metrics.features import file_sha256

    assert file_sha256(data[2]) == OFFICIAL["detector_sha256"]


def test_plain_order_is_the_official_listing_and_natural_order_warns(data):
    real, _, _ = data
    with pytest.warns(DatasetWarning, match=r"not zero-padded .* order='plain'"):
        natural = open_dataset(real, resolution=64)
    plain = open_dataset(real, resolution=64, order="plain")
    eligible = [plain.video_names[i] for i in long_enough(plain, CLIP_LEN)]
    assert eligible == OFFICIAL["real_video_order"]
    assert {plain.video_names[i]: plain.video_lengths[i] for i in long_enough(plain, CLIP_LEN)} == \
        OFFICIAL["real_video_lengths"]
    video, frames = OFFICIAL["frame_order"]["video"], OFFICIAL["frame_order"]["frames"]
    assert [Path(f).name for f in plain.frame_files[plain.video_names.index(video)]] == frames
    assert natural.video_names != plain.video_names  # clip2 before clip10, and case ignored


@pytest.mark.parametrize("run", OFFICIAL["configs"], ids=lambda r: f"seed{r['seed']}-workers{r['num_workers']}")
def test_official_offsets_are_the_official_draws(run):
    lengths = [OFFICIAL["real_video_lengths"][name] for name in OFFICIAL["real_video_order"]]
    drawn = official_offsets(lengths, need=CLIP_LEN, seed=run["seed"], num_workers=run["num_workers"],
                             clips_per_batch=OFFICIAL["clips_per_batch"])
    assert dict(zip(OFFICIAL["real_video_order"], drawn)) == run["offsets"]


@pytest.mark.parametrize("run", OFFICIAL["configs"], ids=lambda r: f"seed{r['seed']}-workers{r['num_workers']}")
def test_fvd16_with_official_offsets_equals_the_official_code(data, run):
    real, fake, detector = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few samples, unpadded names: the point of this data
        report = evaluate(fake, real, ["fvd16"], detectors=[detector], offsets="official", seed=run["seed"],
                          num_workers=run["num_workers"], resolution_rule="native", cache_dir=False, progress=False)
    value, protocol = report.results["fvd16"], report.protocols["fvd16"]
    assert value == pytest.approx(run["fvd16"], rel=1e-4)
    assert (protocol["offsets"], protocol["order"], protocol["resolution_rule"]) == ("official", "plain", "native")
    assert (protocol["real_resolution"], protocol["fake_resolution"]) == (64, 32)
    assert protocol["offset_workers"] == run["num_workers"] and protocol["real_seed"] == run["seed"]
    assert protocol["comparable"] is False and "18 real clips, the protocol takes 2048" in protocol["not_comparable"]


def test_default_mode_differs_from_the_official_one_and_is_reproducible(data):
    real, fake, detector = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = [evaluate(fake, real, ["fvd16"], detectors=[detector], cache_dir=False, progress=False)
                for _ in range(2)]
    (a, b), official = [r.results["fvd16"] for r in runs], OFFICIAL["configs"][0]["fvd16"]
    assert a == b and abs(a - official) > 1e-3 * official
    protocol = runs[0].protocols["fvd16"]
    assert (protocol["offsets"], protocol["order"], protocol["resolution_rule"]) == ("seeded", "natural", "model")
    assert protocol["real_resolution"] == protocol["fake_resolution"] == 32  # real frames resized to the fake's


def test_official_offsets_need_workers(data):
    from vgz.metrics.evaluation import EvaluationError

    real, fake, detector = data
    with pytest.raises(EvaluationError, match="num_workers: expected >= 1 with offsets='official'"):
        evaluate(fake, real, ["fvd16"], detectors=[detector], offsets="official", num_workers=0, cache_dir=False)
    with pytest.raises(EvaluationError, match="fvd_short: offsets='official' reproduces StyleGAN-V's metric code"):
        evaluate(fake, real, ["fvd_short"], detectors=[detector], offsets="official", cache_dir=False)


def test_vgz_eval_cli_official_mode_records_its_rules(data, tmp_path):
    from typer.testing import CliRunner

    from vgz.cli.main import app

    real, fake, detector = data
    run = OFFICIAL["configs"][1]
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["eval", str(fake), "--data", str(real), "--detector", str(detector), "--offsets",
                                      "official", "--seed", str(run["seed"]), "--resolution-rule", "native",
                                      "--no-cache", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "offsets official, order plain, resolution rule native; not comparable" in result.output
    saved = json.loads(out.read_text())
    assert saved["results"]["fvd16"] == pytest.approx(run["fvd16"], rel=1e-4)
    assert saved["protocols"]["fvd16"]["offset_workers"] == 3  # the official code's, by default


def test_generated_videos_shorter_than_the_clip_are_counted_and_reported(data, tmp_path):
    import shutil

    from vgz.metrics.frechet import FewSamplesWarning

    real, fake, detector = data
    generated = tmp_path / "generated"
    shutil.copytree(fake, generated)
    short = sorted(generated.iterdir())[0]
    for frame in sorted(short.iterdir(), key=lambda p: int(p.stem))[10:]:
        frame.unlink()  # 10 frames left: shorter than FVD16's clip (the official code asserts on it)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = evaluate(generated, real, ["fvd16"], detectors=[detector], cache_dir=False, progress=False)
    taken = report.protocols["fvd16"]["fake_taken"]
    assert taken["videos_too_short"] == 1 and taken["items"] == 19
    assert any(issubclass(w.category, FewSamplesWarning) and "1 of the 20 generated videos" in str(w.message)
               for w in caught)
