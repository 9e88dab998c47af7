"""Reading official network pickles as data: safe by construction, with clear errors."""

from __future__ import annotations

import io
import os
import pickle
import sys

import pytest
import torch

import vgz
from vgz.conversion.pickles import (
    PersistentObject,
    PickleFormatError,
    UnsafePickleError,
    module_state_dict,
    read_pickle,
)

from official_format import NEVER_RUN_SOURCE, _install_fake_persistence_module, dump_snapshot, persistent_tree


class _RunsCommand:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').system('echo pwned')",))


class _GetAttr:
    def __reduce__(self):
        return (getattr, ("", "join"))


@pytest.mark.parametrize("make", [lambda p: _RunsCommand(p), lambda p: _Evals(), lambda p: _GetAttr()])
def test_pickles_that_run_code_are_refused_and_nothing_runs(tmp_path, make):
    marker = tmp_path / "was_run"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": make(marker)}, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"refusing to load global (posix|os|nt)\.system|builtins\.(eval|getattr)"):
        read_pickle(path)
    assert not marker.exists()


def test_refusal_names_file_and_reason(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Evals()))
    with pytest.raises(UnsafePickleError) as info:
        read_pickle(path)
    assert str(path) in str(info.value) and "never runs code stored in them" in str(info.value)


def _snapshot_bytes() -> tuple[bytes, dict, dict]:
    torch.manual_seed(0)
    mapping = vgz.create("mapping", "stylegan2", preset="tiny")
    synthesis = vgz.create("synthesis", "stylegan2", preset="tiny")
    persistence = _install_fake_persistence_module("torch_utils.persistence")
    g = torch.nn.Module()
    g.mapping, g.synthesis = mapping, synthesis
    kwargs = {"z_dim": 32, "w_dim": 32, "mapping_kwargs": {"num_layers": 2}}
    snapshot = {"G_ema": persistent_tree(g, persistence, "Generator", kwargs), "augment_pipe": None,
                "training_set_kwargs": {"resolution": 16}}
    expected = {f"mapping.{k}": v for k, v in mapping.state_dict().items()}
    expected |= {f"synthesis.{k}": v for k, v in synthesis.state_dict().items()}
    return dump_snapshot(snapshot), expected, kwargs


def test_official_format_reads_as_data(tmp_path):
    data, expected, kwargs = _snapshot_bytes()
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(data)
    # vgz must not need (or import) the official modules the pickle names.
    for name in ("torch_utils.persistence", "torch_utils"):
        sys.modules.pop(name, None)
    snap = read_pickle(path)
    assert "torch_utils" not in sys.modules
    g = snap["G_ema"]
    assert isinstance(g, PersistentObject) and g.class_name == "Generator"
    assert g.module_src == NEVER_RUN_SOURCE  # kept as text, never executed
    assert g.init_kwargs == kwargs
    state = module_state_dict(g)
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    assert snap["training_set_kwargs"] == {"resolution": 16} and snap["augment_pipe"] is None


def test_truncated_pickle(tmp_path):
    data, _, _ = _snapshot_bytes()
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PickleFormatError, match=r"cut\.pkl (ends early: the file is truncated|could not be read)"):
        read_pickle(path)


def test_wrong_formats(tmp_path):
    zip_path = tmp_path / "ckpt.pt"
    torch.save({"a": torch.zeros(1)}, zip_path)
    with pytest.raises(PickleFormatError, match="is a zip archive"):
        read_pickle(zip_path)
    text = tmp_path / "notes.pkl"
    text.write_text("hello")
    with pytest.raises(PickleFormatError, match="is not a pickle"):
        read_pickle(text)
    with pytest.raises(FileNotFoundError, match="no file"):
        read_pickle(tmp_path / "absent.pkl")


def test_plain_torch_modules_and_optimizer_state_are_recorded_not_built():
    """Non-persistent modules (nn.Sequential in StyleGAN-V's motion network) come back as records."""
    seq = torch.nn.Sequential(torch.nn.Linear(2, 3))
    snap = read_pickle(pickle.dumps({"m": seq}, protocol=4))
    record = snap["m"]
    assert record.qualname == "torch.nn.modules.container.Sequential"
    state = module_state_dict(record)
    assert torch.equal(state["0.weight"], seq[0].weight.detach())


def test_storage_bytes_are_read_by_the_weights_only_loader():
    buf = io.BytesIO()
    pickle.dump(torch.arange(6.0).reshape(2, 3)[:, 1:], buf, protocol=2)
    out = read_pickle(buf.getvalue())
    assert torch.equal(out, torch.tensor([[1.0, 2.0], [4.0, 5.0]]))


def test_storages_saved_on_a_gpu_load_on_cpu():
    """Real snapshots keep optimizer state and preview tensors on cuda:N; they must load here."""
    import pickletools
    from collections import OrderedDict

    blob = next(arg for op, arg, _ in pickletools.genops(pickle.dumps(torch.arange(4.0), protocol=4))
                if op.name == "BINBYTES")
    on_gpu = blob.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
    assert on_gpu != blob

    class Storage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (on_gpu,))

    class Tensor:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (Storage(), 0, (4,), (1,), False, OrderedDict()))

    out = read_pickle(pickle.dumps({"vis": Tensor()}, protocol=4))
    assert out["vis"].device.type == "cpu" and torch.equal(out["vis"], torch.arange(4.0))


def test_numpy_values_read_without_deprecated_modules():
    """Snapshots hold numpy scalars (weight gains) and arrays (preview grids)."""
    import warnings

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        out = read_pickle(pickle.dumps({"gain": np.float64(0.5), "idx": np.arange(3)}, protocol=4))
    assert out["gain"] == 0.5 and out["idx"].tolist() == [0, 1, 2]
