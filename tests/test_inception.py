"""The FID Inception-v3 detector (vgz.metrics.inception): parity with pytorch-fid, weight loading,
errors, TorchScript export.

The parity fixture (``tests/fixtures/inception/make_inception_fixture.py`` regenerates it; see the
README there) holds pytorch-fid's pool3 features of fixed images under deterministic random
weights (:func:`random_fid_weights`, regenerated here without pytorch-fid), and the keys and
shapes of the state dict pytorch-fid's FID Inception loads. The real weights are not needed.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import vgz
from vgz import registry
from vgz.configs import ConfigError
from vgz.metrics.detectors import DetectorError, TorchScriptDetector
from vgz.metrics.inception import (
    FIDInceptionV3,
    InceptionConfig,
    InceptionDetector,
    export_torchscript,
    load_inception,
)

FIXTURES = Path(__file__).parent / "fixtures" / "inception"
KEYS_FILE = FIXTURES / "fid_inception_keys.json"
PARITY_FILE = FIXTURES / "fid_inception_parity.safetensors"


# ------------------------------------------------------------------------------ fixture recipe
# Shared with the fixture script, which imports these two functions from this file.


def random_fid_weights(shapes: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor]:
    """Deterministic stand-in weights for every key of ``shapes`` but the BatchNorm counters
    (which the converted weight file does not hold either).

    Key ``i`` of the sorted keys draws from ``torch.Generator().manual_seed(i)``. Convolutions are
    He-scaled (``sqrt(2 / fan_in)``) and BatchNorm statistics near the identity, so activations stay
    of order one through the ~100 ReLU layers and every block contributes to the features.
    """
    out = {}
    for i, key in enumerate(sorted(k for k in shapes if not k.endswith("num_batches_tracked"))):
        shape = tuple(shapes[key])
        g = torch.Generator().manual_seed(i)
        if key.endswith("conv.weight") or key == "fc.weight":
            fan_in = math.prod(shape[1:])
            t = torch.randn(shape, generator=g) * math.sqrt((2.0 if key != "fc.weight" else 1.0) / fan_in)
        elif key.endswith("bn.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("running_var"):
            t = 0.5 + torch.rand(shape, generator=g)  # positive
        elif key.endswith(("bn.bias", "running_mean", "fc.bias")):
            t = 0.1 * torch.randn(shape, generator=g)
        else:
            raise KeyError(f"no recipe for {key}")
        out[key] = t.contiguous()
    return out


def fixture_images(shape: Sequence[int], seed: int) -> torch.Tensor:
    """uint8 noise images ``shape`` = ``[N, 3, H, W]`` from ``torch.Generator().manual_seed(seed)``."""
    return torch.randint(0, 256, tuple(shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


# ------------------------------------------------------------------------------ helpers


@lru_cache(maxsize=None)
def _keys() -> dict:
    return json.loads(KEYS_FILE.read_text())


@lru_cache(maxsize=None)
def _parity() -> tuple[dict, dict[str, torch.Tensor]]:
    with safe_open(str(PARITY_FILE), framework="pt") as f:
        meta = json.loads(f.metadata()["vgz_fixture"])
    return meta, load_file(str(PARITY_FILE))


@lru_cache(maxsize=None)
def _weights() -> dict[str, torch.Tensor]:
    return random_fid_weights(_keys()["state_dict"])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread for this module: Inception's ~100 convolutions per image pay an OpenMP
    barrier each, and on a busy 2-core runner two threads ran 10-20x slower than one (0.2 s per
    299x299 image with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory) -> Path:
    """The random weights stored as the real file most likely is: a plain dict without
    ``num_batches_tracked``, in torch.save's pre-1.6 (non-zip) format (the file dates from 2019)."""
    path = tmp_path_factory.mktemp("inception") / "weights.pth"
    torch.save(_weights(), path, _use_new_zipfile_serialization=False)
    return path


@pytest.fixture(scope="module")
def detector(weight_file) -> InceptionDetector:
    return load_inception(weight_file)


def _small(det: InceptionDetector) -> InceptionDetector:
    """``det``'s network fed without the resize: cheap checks on 80x80 images."""
    small = InceptionDetector(InceptionConfig(resize_mode="none"))
    small.net = det.net
    return small


def _feats(det: InceptionDetector, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return det(x)


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-4) -> None:
    assert a.shape == b.shape
    err = (a - b).abs().max().item()
    assert err <= rel * b.abs().max().item(), f"max abs error {err} vs scale {b.abs().max().item()}"


# ------------------------------------------------------------------------------ parity


def test_state_dict_keys_and_shapes_equal_pytorch_fid():
    ours = {k: list(v.shape) for k, v in FIDInceptionV3().state_dict().items()}
    theirs = _keys()["state_dict"]
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs
    assert theirs["fc.weight"] == [1008, 2048] and not any(k.startswith("AuxLogits") for k in theirs)


@pytest.mark.parametrize("case", ["up_64x80", "down_320x304", "exact_299"])
def test_features_match_pytorch_fid(detector, case):
    meta, tensors = _parity()
    spec = meta["inputs"][case]
    x = fixture_images(spec["shape"], spec["seed"])
    assert hashlib.sha256(x.numpy().tobytes()).hexdigest() == spec["sha256"], "input recipe drifted"
    out = _feats(detector, x)
    assert out.shape == (spec["shape"][0], 2048) and out.dtype == torch.float32
    _close(out, tensors[f"{case}/features"])


def test_fixture_tells_the_fid_blocks_from_torchvision():
    # The same weights through torchvision's unpatched blocks land far from pytorch-fid's
    # features, so the parity test above does check the FID patches.
    meta, tensors = _parity()
    for case, diff in meta["torchvision_unpatched_max_abs_diff"].items():
        assert diff > 100 * 1e-4 * tensors[f"{case}/features"].abs().max().item()


def test_last_block_max_pool_matters(detector):
    # Mixed_7c's max pool (the TF graph's) against the avg pool torchvision and the paper use.
    meta, tensors = _parity()
    spec = meta["inputs"]["exact_299"]
    x = fixture_images(spec["shape"], spec["seed"])
    block = detector.net.Mixed_7c
    try:
        block.pool = "avg"
        out = _feats(detector, x)
    finally:
        block.pool = "max"
    reference = tensors["exact_299/features"]
    assert (out - reference).abs().max() > 100 * 1e-4 * reference.abs().max()


# ------------------------------------------------------------------------------ loading


def test_load_pth(detector, weight_file):
    # The parity tests run on `detector`, loaded from `weight_file`: here its bookkeeping.
    assert detector.sha256 == hashlib.sha256(weight_file.read_bytes()).hexdigest()
    assert detector.source == str(weight_file) and detector.describe()["kind"] == "image"
    for key, value in _weights().items():
        assert torch.equal(detector.net.state_dict()[key], value), key


def test_load_safetensors_with_counters(detector, tmp_path):
    state = dict(_weights())
    state.update({k: v for k, v in FIDInceptionV3().state_dict().items() if k.endswith("num_batches_tracked")})
    path = tmp_path / "weights.safetensors"
    save_file(state, str(path))
    det = load_inception(path, InceptionConfig(resize_mode="none"))
    assert det.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    for key, value in detector.net.state_dict().items():
        assert torch.equal(det.net.state_dict()[key], value), key
    out = _feats(det, fixture_images([2, 3, 80, 80], seed=5))
    assert out.shape == (2, 2048) and torch.isfinite(out).all()


def test_load_unwraps_checkpoint_and_module_prefix(detector, tmp_path):
    # As vgz.metrics.detectors.read_state_dict, which load_detector uses to tell the family.
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in _weights().items()}}, path)
    det = load_inception(path)
    for key, value in detector.net.state_dict().items():
        assert torch.equal(det.net.state_dict()[key], value), key


def _bad_file(tmp_path: Path, case: str) -> tuple[Path, list[str]]:
    """A broken weight file and the words its error must name (besides the file)."""
    state = dict(_weights())
    if case == "missing":
        del state["Mixed_7c.branch_pool.conv.weight"]
        words = ["missing", "Mixed_7c.branch_pool.conv.weight"]
    elif case == "unexpected":
        state["AuxLogits.fc.weight"] = torch.zeros(1008, 768)
        words = ["unexpected", "AuxLogits.fc.weight"]
    elif case == "shape":
        state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
        words = ["fc.weight", "(1000, 2048)", "(1008, 2048)", "fc.bias"]
    elif case == "pickle":
        path = tmp_path / "pickled.pth"
        torch.save({"fc.weight": torch.zeros(1), "config": Path("code")}, path)  # not weights only
        return path, ["cannot be read"]
    elif case == "not_tensors":
        path = tmp_path / "nested.pt"
        torch.save({"fc.weight": torch.zeros(1), "ema": {"fc.weight": torch.zeros(1)}}, path)
        return path, ["ema", "non-tensor"]
    elif case == "suffix":
        path = tmp_path / "weights.npz"
        path.write_bytes(b"PK")
        return path, [".safetensors", ".npz"]
    path = tmp_path / f"{case}.safetensors"
    save_file(state, str(path))
    return path, words


@pytest.mark.parametrize("case", ["missing", "unexpected", "shape", "pickle", "not_tensors", "suffix"])
def test_bad_weight_files_raise_detector_error(tmp_path, case):
    path, words = _bad_file(tmp_path, case)
    with pytest.raises(DetectorError) as info:
        load_inception(path)
    message = str(info.value)
    for word in [str(path), *words]:
        assert word in message, f"{word!r} not in {message!r}"
    assert len(message) < 1000  # a few names, not hundreds


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_inception(tmp_path / "nothing.pth")


# ------------------------------------------------------------------------------ TorchScript


def test_torchscript_export_is_called_like_nvidias(detector, tmp_path):
    path = export_torchscript(detector, tmp_path / "inception.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inception.pt"]  # no temporary left over
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in recent torch
        module = torch.jit.load(str(path))
    script_det = TorchScriptDetector(module, kind="image")
    meta, tensors = _parity()
    spec = meta["inputs"]["exact_299"]
    x = fixture_images(spec["shape"], spec["seed"])
    reference = tensors["exact_299/features"]
    # optimized_execution(False): skip the JIT's profiling runs, seconds on CPU for nothing here.
    with torch.no_grad(), torch.jit.optimized_execution(False):
        feats = script_det(x)
        probs = module(x)  # NVIDIA's default: class probabilities
        unbiased = module(x, return_features=False, use_fp16=False, no_output_bias=True)
    assert feats.shape == (1, 2048) and script_det.feature_dim == 2048
    _close(feats, reference)
    for out, bias in ((probs, True), (unbiased, False)):
        assert out.shape == (1, 1008)
        expected = torch.softmax(detector.net.logits(reference, bias=bias), 1)
        torch.testing.assert_close(out, expected, rtol=1e-3, atol=1e-6)
    assert not torch.allclose(probs, unbiased)


# ------------------------------------------------------------------------------ detector contract


def test_grayscale_input_is_repeated_to_rgb(detector):
    small = _small(detector)
    gray = fixture_images([1, 1, 80, 90], seed=9)
    out = _feats(small, gray)
    assert out.shape == (1, 2048)
    torch.testing.assert_close(out, _feats(small, gray.repeat(1, 3, 1, 1)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="uint8"):
        small(gray.float())
    with pytest.raises(ValueError, match="at least 75x75"):
        small(fixture_images([1, 3, 64, 80], seed=9))


def test_detector_is_frozen_and_registered():
    det = vgz.create("detector", "inception")
    assert isinstance(det, InceptionDetector) and det.kind == "image" and det.feature_dim == 2048
    assert registry.get("detector", "inception").config_cls is InceptionConfig
    assert "detector" in vgz.list_kinds()
    det.train()
    assert not det.training and not det.net.Mixed_5b.branch_pool.bn.training
    assert not any(p.requires_grad for p in det.parameters())
    assert det.describe()["settings"] == {"resolution": 299, "resize_mode": "bilinear"}


def test_config_is_checked():
    with pytest.raises(ConfigError, match="resize_mode"):
        InceptionConfig(resize_mode="bicubic")
    with pytest.raises(ConfigError, match="resolution"):
        InceptionConfig(resolution=32)
    assert InceptionConfig.from_preset("pytorch-fid") == InceptionConfig()
