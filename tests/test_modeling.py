"""Saving and loading components: safetensors only, clear errors, Hub repo ids from the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vgz
from vgz.generators.stylegan2 import MappingNetwork, SynthesisNetwork
from vgz.hub import ModelNotFoundError, is_repo_id
from vgz.modeling import WeightsError

from conftest import populate_hub_cache

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = vgz.create("synthesis", "stylegan2", preset="tiny").eval()  # eval: same modconv path as loaded
    return net, net.save_pretrained(tmp_path / "syn")


def test_config_json_names_component_by_registry_name(saved):
    _, folder = saved
    raw = json.loads((folder / "config.json").read_text())
    assert raw["_vgz_kind"] == "synthesis" and raw["_vgz_name"] == "stylegan2"
    assert raw["_vgz_version"] == vgz.__version__
    assert raw["resample_filter"] == [1.0, 3.0, 3.0, 1.0]
    assert not any("module" in k or "class" in k for k in raw)


def test_save_is_atomic_and_overwrites(saved):
    net, folder = saved
    net.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_dtype_and_device(saved):
    _, folder = saved
    net = SynthesisNetwork.from_pretrained(folder, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 for p in net.parameters())


def test_only_fp16_variant_present_still_loads(saved, tmp_path):
    net, _ = saved
    folder = tmp_path / "halfonly"
    net.save_pretrained(folder, variant="fp16")
    assert (folder / "model.fp16.safetensors").exists() and not (folder / "model.safetensors").exists()
    assert isinstance(vgz.load_component(folder), SynthesisNetwork)
    with pytest.raises(FileNotFoundError, match=r"no model\.bf16\.safetensors .*model\.fp16\.safetensors"):
        vgz.load_component(folder, variant="bf16")


def test_missing_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not a Hub repo id"):
        vgz.load_component(tmp_path / "nope" / "deeper")


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "weights.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file; expected a model folder"):
        vgz.load_component(f)


def test_missing_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"has no config\.json.*found: model\.safetensors"):
        vgz.load_component(tmp_path)


def test_config_not_written_by_vgz(tmp_path):
    (tmp_path / "config.json").write_text('{"z_dim": 3}')
    with pytest.raises(ValueError, match="lacks '_vgz_kind'/'_vgz_name'"):
        vgz.load_component(tmp_path)


def _edit_config(folder: Path, **changes) -> None:
    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**raw, **changes}))


def test_unknown_component_in_config(saved):
    _, folder = saved
    _edit_config(folder, _vgz_name="stylegan9")
    with pytest.raises(vgz.UnknownComponentError, match="stylegan9.*'stylegan2'"):
        vgz.load_component(folder)


def test_bad_config_value_names_file_and_field(saved):
    _, folder = saved
    _edit_config(folder, architecture="unet")
    with pytest.raises(vgz.ConfigError, match=r"SynthesisConfig\.architecture: expected one of"):
        vgz.load_component(folder)


def test_missing_weights(saved):
    _, folder = saved
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no model\.safetensors \(weights files present: none\)"):
        vgz.load_component(folder)


def test_truncated_weights(saved):
    _, folder = saved
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match=r"could not read .*model\.safetensors: it is not a valid safetensors"):
        vgz.load_component(folder)


def test_pickle_renamed_as_safetensors_is_refused(saved):
    import pickle

    _, folder = saved
    (folder / "model.safetensors").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        vgz.load_component(folder)


def _rewrite_weights(folder: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    save_file(state, str(folder / "model.safetensors"))


def test_missing_unexpected_and_mismatched_keys_are_named(saved):
    _, folder = saved

    def edit(state):
        del state["b4.const"]
        state["b4.extra"] = torch.zeros(1)
        state["b8.conv0.weight"] = torch.zeros(1, 2, 3, 3)

    _rewrite_weights(folder, edit)
    with pytest.raises(WeightsError) as info:
        vgz.load_component(folder)
    msg = str(info.value)
    assert str(folder) in msg
    assert "1 missing: b4.const" in msg
    assert "1 unexpected: b4.extra" in msg
    assert "b8.conv0.weight: expected (32, 32, 3, 3), found (1, 2, 3, 3)" in msg


def test_non_strict_loads_what_fits(saved):
    net, folder = saved
    _rewrite_weights(folder, lambda s: s.pop("b4.const"))
    with pytest.warns(UserWarning, match="1 missing: b4.const"):
        loaded = vgz.load_component(folder, strict=False)
    assert torch.equal(loaded.b8.conv0.weight, net.b8.conv0.weight)


def test_wrong_class(saved):
    _, folder = saved
    with pytest.raises(TypeError, match=r"holds synthesis 'stylegan2' \(SynthesisNetwork\), not a MappingNetwork"):
        MappingNetwork.from_pretrained(folder)


def test_repo_id_shape():
    assert is_repo_id("vgz/styleinv-ffs") and is_repo_id("org/name.v2")
    assert not is_repo_id("./local") and not is_repo_id("/abs/path") and not is_repo_id("a/b/c")


def test_load_by_repo_id_from_hub_cache(saved, tmp_path):
    net, folder = saved
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "vgz-test/tiny-synthesis", folder)
    loaded = SynthesisNetwork.from_pretrained("vgz-test/tiny-synthesis", cache_dir=cache, local_files_only=True)
    ws = torch.randn(2, net.num_ws, net.w_dim)
    with torch.no_grad():
        assert torch.equal(net(ws, noise_mode="const"), loaded(ws, noise_mode="const"))
    with pytest.raises(ModelNotFoundError, match="not in the Hub cache at revision 'v9'"):
        SynthesisNetwork.from_pretrained("vgz-test/tiny-synthesis", cache_dir=cache, local_files_only=True,
                                         revision="v9")
    with pytest.raises(ModelNotFoundError, match="not in the Hub cache"):
        SynthesisNetwork.from_pretrained("vgz-test/absent", cache_dir=cache, local_files_only=True)


def test_load_by_repo_id_with_hf_hub_offline(saved, tmp_path):
    """The environment variable alone (no local_files_only) keeps loading offline and working."""
    _, folder = saved
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "vgz-test/tiny-synthesis", folder)
    code = (
        "import vgz, torch;"
        "m = vgz.load_component('vgz-test/tiny-synthesis');"
        "print(type(m).__name__, m.num_parameters)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "SynthesisNetwork"


def test_no_unrestricted_unpickling_in_vgz_sources():
    """Weights are safetensors; legacy pickles go through restricted unpicklers only.

    Nothing in vgz may call pickle.load(s), and torch.load only with weights_only=True.
    """
    offenders = []
    for path in (REPO_ROOT / "vgz").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.relative_to(REPO_ROOT)}:{number}"
            if any(n in line for n in ("pickle.load(", "pickle.loads(", "cPickle", "dill", "joblib.load")):
                offenders.append(where)
            if "torch.load(" in line and "weights_only=True" not in line:
                offenders.append(where)
    assert not offenders, offenders


def test_loading_leaves_the_global_rng_alone(saved):
    _, folder = saved
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    vgz.load_component(folder)
    assert torch.equal(torch.rand(3), expected)


def test_interrupted_save_over_an_old_component_does_not_load(saved, monkeypatch):
    """New weights under the old config.json (same shapes) would load silently as a mix."""
    import safetensors.torch

    net, folder = saved
    torch.manual_seed(1)
    other = vgz.create("synthesis", "stylegan2", preset="tiny")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        other.save_pretrained(folder)
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        vgz.load_component(folder)
    other.save_pretrained(folder)
    loaded = vgz.load_component(folder)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), other.state_dict().values()))


PLUGIN_KIND_SOURCE = '''
    from dataclasses import dataclass

    from torch import nn

    import vgz
    from vgz.configs import ComponentConfig, config_field
    from vgz.modeling import ModelMixin

    vgz.register_kind("sampler", "test plugin kind")


    @dataclass
    class SamplerConfig(ComponentConfig):
        dim: int = config_field(3, min=1)


    @vgz.register("sampler", "toy-sampler")
    class ToySampler(ModelMixin):
        """A component of a kind the plugin declares."""

        config_class = SamplerConfig

        def __init__(self, config=None, **kwargs):
            super().__init__(config, **kwargs)
            self.proj = nn.Linear(1, self.config.dim)
'''


def test_saved_component_of_a_plugin_declared_kind_loads(tmp_path):
    """The kind check waits for plugins: a fresh interpreter loads a component whose kind a plugin adds."""
    from conftest import make_plugin_dist

    site = make_plugin_dist(tmp_path / "site", "vgz-sampler", "vgz_sampler", PLUGIN_KIND_SOURCE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys, vgz; vgz.create('sampler', 'toy-sampler', dim=4).save_pretrained(sys.argv[1])\n"
            "import subprocess; subprocess.run([sys.executable, '-c', 'import sys, vgz; "
            "print(vgz.load_component(sys.argv[1]).config.dim)', sys.argv[1]], check=True)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sampler")], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.split() == ["4"], out.stderr
