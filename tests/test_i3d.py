"""vgz's I3D (FVD detector): parity with the VideoGPT/TATS port, loading, TorchScript export.

The parity fixture (``tests/fixtures/i3d``) holds the port's state-dict listing and its logits on
synthetic weights that :func:`synthetic_state_dict` regenerates here; see the README there.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import vgz
from vgz.metrics.detectors import DetectorError, TorchScriptDetector, file_sha256, load_detector
from vgz.metrics.i3d import I3DConfig, I3DDetector, InceptionI3d, export_torchscript, load_i3d

FIXTURES = Path(__file__).parent / "fixtures" / "i3d"
_spec = importlib.util.spec_from_file_location("i3d_make_fixture", FIXTURES / "make_fixture.py")
assert _spec is not None and _spec.loader is not None
make_fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixture)


@pytest.fixture(scope="module")
def listing() -> list[tuple[str, tuple[int, ...], str]]:
    data = json.loads((FIXTURES / "port_state_dict.json").read_text())
    return [(k, tuple(shape), dtype) for k, shape, dtype in data["state_dict"]]


@pytest.fixture(scope="module")
def parity() -> tuple[dict[str, torch.Tensor], dict]:
    path = FIXTURES / "i3d_parity.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["vgz_fixture"])
    return load_file(str(path)), meta


@pytest.fixture(scope="module")
def weights(listing, parity) -> dict[str, torch.Tensor]:
    state = make_fixture.synthetic_state_dict({k: shape for k, shape, _ in listing})
    assert make_fixture.tensors_sha256(state) == parity[1]["weights_sha256"], (
        "the regenerated synthetic weights differ from the fixture's (torch's RNG changed?): "
        "regenerate the fixture with tests/fixtures/i3d/make_fixture.py")
    return state


@pytest.fixture(scope="module")
def detector(weights) -> I3DDetector:
    det = I3DDetector()
    det.net.load_state_dict(weights, strict=True)
    return det


def _close(out: torch.Tensor, ref: torch.Tensor) -> None:
    # Float32 through 58 layers: relative to the logits' scale (tens here), 1e-4 is many ulps
    # but far below what a changed epsilon, padding or resize does (see test_load_i3d_formats[pt]).
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_state_dict_names_and_shapes_are_the_ports(listing):
    ours = [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in InceptionI3d().state_dict().items()]
    assert sorted(ours) == sorted(listing)
    assert len(ours) == len(listing) == 344


def test_net_matches_port_logits(detector, parity):
    tensors, meta = parity
    x = make_fixture.net_input()
    assert make_fixture.tensors_sha256({"x": x}) == meta["net_input"]["sha256"]
    with torch.no_grad():
        out = detector.net(x)
    assert out.shape == (1, 400)
    _close(out, tensors["net/out"])


def test_detector_matches_port_fvd_logits(detector, parity):
    tensors, _ = parity
    clips = tensors["detector/in"].permute(0, 1, 4, 2, 3)  # TATS takes [B, T, H, W, C]; vgz [B, T, C, H, W]
    with torch.no_grad():
        out = detector(clips)
    assert out.shape == (2, 400) and out.dtype == torch.float32
    _close(out, tensors["detector/out"])


def test_bn_eps_presets():
    port, tf = I3DDetector(I3DConfig.from_preset("port")), I3DDetector(I3DConfig.from_preset("tf"))
    assert port.settings == {"bn_eps": 1e-5, "resolution": 224} and tf.settings == {"bn_eps": 1e-3, "resolution": 224}
    assert all(m.eps == 1e-3 for m in tf.net.modules() if isinstance(m, torch.nn.BatchNorm3d))
    assert all(m.eps == 1e-5 for m in port.net.modules() if isinstance(m, torch.nn.BatchNorm3d))
    # That the epsilon changes the logits: test_load_i3d_formats[pt].


def _file_like_the_official(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """i3d_pretrained_400.pt was built from TF variables: no num_batches_tracked counters."""
    return {k: v for k, v in weights.items() if not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("fmt", ["pt", "safetensors", "wrapped"])
def test_load_i3d_formats(weights, parity, tmp_path, fmt):
    # The official file has no batch-norm counters; a module's own state_dict() (here: safetensors) has.
    state = weights if fmt == "safetensors" else _file_like_the_official(weights)
    path = tmp_path / ("i3d.safetensors" if fmt == "safetensors" else "i3d_pretrained_400.pt")
    if fmt == "safetensors":
        save_file(state, str(path))
    elif fmt == "wrapped":  # a checkpoint-style wrapper around a DataParallel state dict
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        torch.save(state, path)
    det = load_i3d(path, bn_eps=1e-3 if fmt == "pt" else None)
    assert det.sha256 == file_sha256(path) and det.source == str(path)
    assert det.feature_dim == 400 and det.name == "i3d"
    assert det.settings["bn_eps"] == (1e-3 if fmt == "pt" else 1e-5)
    loaded = det.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert not det.net.training and not any(p.requires_grad for p in det.parameters())
    if fmt == "pt":  # TF-Hub's epsilon: far from the port's logits (much further than _close allows)
        with torch.no_grad():
            out = det.net(make_fixture.net_input())
        ref = parity[0]["net/out"]
        assert out.shape == (1, 400) and torch.isfinite(out).all()
        assert (out - ref).abs().max() > 100 * 1e-4 * ref.abs().max()


def test_load_i3d_follows_the_files_number_of_classes(weights, tmp_path):
    state = _file_like_the_official(weights)
    state["logits.conv3d.weight"] = torch.zeros(600, 1024, 1, 1, 1)
    state["logits.conv3d.bias"] = torch.zeros(600)
    torch.save(state, tmp_path / "i3d_600.pt")
    assert load_i3d(tmp_path / "i3d_600.pt").feature_dim == 600


@pytest.mark.parametrize("defect, pattern", [
    ("missing", r"1 missing: Mixed_4c\.b1b\.bn\.running_var"),
    ("unexpected", r"1 unexpected: Mixed_4c\.extra\.weight"),
    ("shape", r"Conv3d_2c_3x3\.conv3d\.weight: expected \(192, 64, 3, 3, 3\), found \(192, 64, 1, 3, 3\)"),
])
def test_load_i3d_rejects_wrong_state_dicts(weights, tmp_path, defect, pattern):
    state = _file_like_the_official(weights)
    if defect == "missing":
        del state["Mixed_4c.b1b.bn.running_var"]
    elif defect == "unexpected":
        state["Mixed_4c.extra.weight"] = torch.zeros(3)
    else:
        state["Conv3d_2c_3x3.conv3d.weight"] = torch.zeros(192, 64, 1, 3, 3)
    path = tmp_path / f"{defect}.pt"
    torch.save(state, path)
    with pytest.raises(DetectorError, match=pattern) as info:
        load_i3d(path)
    assert str(path) in str(info.value)


def test_load_i3d_refuses_pickled_objects(tmp_path):
    path = tmp_path / "pickle.pt"
    torch.save({"net": torch.nn.Linear(2, 2)}, path)  # a module: only a full (code-running) unpickle reads it
    with pytest.raises(DetectorError, match="pickle.pt"):
        load_i3d(path)


def test_torchscript_export_matches_port(detector, parity, tmp_path):
    path = export_torchscript(detector, tmp_path / "i3d_torchscript.pt")
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["i3d_torchscript.pt"]  # no temporaries
    module = torch.jit.load(str(path))
    scripted = TorchScriptDetector(module, kind="video")
    # StyleGAN-V's call: module(uint8 [B, C, T, H, W], rescale=True, resize=True, return_features=True).
    assert scripted.call_kwargs == dict(rescale=True, resize=True, return_features=True)
    tensors, _ = parity
    clips = tensors["detector/in"].permute(0, 1, 4, 2, 3)  # [B, T, C, H, W]
    with torch.no_grad():
        out = scripted(clips)
        # Without return_features: the softmax of the logits.
        probs = module(clips[:1].permute(0, 2, 1, 3, 4), rescale=True, resize=True)
    # The port's FVD logits (and so vgz's I3DDetector's, test_detector_matches_port_fvd_logits).
    assert out.shape == (2, 400)
    _close(out, tensors["detector/out"])
    torch.testing.assert_close(probs, out[:1].softmax(dim=1))
    # load_detector tells the file from its content and calls it as StyleGAN-V does.
    loaded = load_detector(path)
    assert isinstance(loaded, TorchScriptDetector) and loaded.kind == "video"
    # Exported again, elsewhere under another name: no source paths or temporary file names inside
    # (in one process, the same bytes), and the same weights hash; another resize target differs.
    (tmp_path / "again").mkdir()
    again = export_torchscript(detector, tmp_path / "again" / "other_name.pt")
    assert again.read_bytes() == path.read_bytes() and b"/tmp" not in path.read_bytes()
    assert load_detector(again).weights_sha256 == loaded.weights_sha256 is not None
    detector.config.resolution, resolution = 200, detector.config.resolution
    try:
        other = load_detector(export_torchscript(detector, tmp_path / "again" / "200.pt"))
    finally:
        detector.config.resolution = resolution
    assert other.weights_sha256 != loaded.weights_sha256


def test_load_detector_builds_vgz_i3d_from_a_state_dict(weights, tmp_path):
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save(_file_like_the_official(weights), path)
    det = load_detector(path, bn_eps=1e-3)
    assert isinstance(det, I3DDetector) and det.settings["bn_eps"] == 1e-3 and det.sha256 == file_sha256(path)


def test_registered_as_a_detector():
    assert "detector" in vgz.list_kinds()
    assert vgz.registry.get("detector", "i3d").cls is I3DDetector
    det = vgz.create("detector", "i3d", preset="tf")
    assert isinstance(det, I3DDetector) and det.settings["bn_eps"] == 1e-3 and det.sha256 is None
    assert det.describe()["feature_dim"] == 400


def test_input_checks_and_frozen_eval(detector):
    with pytest.raises(ValueError, match="at least 9 frames"):
        detector(torch.zeros(1, 8, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        detector(torch.zeros(1, 16, 3, 16, 16))
    with pytest.raises(ValueError, match="193..224"):
        detector.net(torch.zeros(1, 3, 16, 256, 256))
    with pytest.raises(Exception, match="resolution"):
        I3DConfig(resolution=256)
    detector.train()
    assert detector.training and not detector.net.training
    detector.eval()


def test_channels_last_only_changes_rounding(detector, weights, parity):
    tensors, _ = parity
    clips = tensors["detector/in"].permute(0, 1, 4, 2, 3)
    exact = I3DDetector(channels_last=False)
    exact.net.load_state_dict(weights, strict=True)
    with torch.no_grad():
        fast, plain = detector(clips), exact(clips)
    torch.testing.assert_close(plain, tensors["detector/out"], rtol=0, atol=1e-5 * float(plain.abs().max()))
    _close(fast, plain)
    assert exact.settings == detector.settings  # the layout is not a feature setting (caches stay valid)
