"""The component registry: registration, lookup, wildcards, plugins through entry points."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import pytest
import torch

import vgz
from vgz import registry
from vgz.configs import ComponentConfig
from vgz.modeling import ModelMixin

from conftest import make_plugin_dist


def test_builtin_components_are_registered():
    names = {(e.kind, e.name) for e in vgz.list_components()}
    assert {("mapping", "stylegan2"), ("synthesis", "stylegan2"), ("discriminator", "stylegan2")} <= names
    for entry in vgz.list_components():
        if entry.source == "vgz":
            assert entry.config_cls is not None and entry.description


def test_kinds_include_the_documented_ones():
    assert {"mapping", "synthesis", "motion", "discriminator", "encoder", "pipeline"} <= set(vgz.list_kinds())


def test_list_filters_by_kind_and_wildcard():
    assert [e.name for e in vgz.list_components("synthesis")] == ["stylegan2", "styleganv"]
    assert [e.name for e in vgz.list_components("motion", "*anv")] == ["styleganv"]
    assert {e.kind for e in vgz.list_components(pattern="style*")} >= {"mapping", "synthesis", "discriminator"}
    assert vgz.list_components(pattern="nomatch*") == []
    assert {e.kind for e in vgz.list_components(pattern="synth*/*")} == {"synthesis"}


def test_create_applies_preset_then_overrides():
    net = vgz.create("mapping", "stylegan2", preset="tiny", z_dim=48)
    assert net.config.z_dim == 48 and net.config.w_dim == 32 and net.config.num_layers == 2
    assert isinstance(net, registry.get("mapping", "stylegan2").cls)


def test_unknown_name_lists_closest_matches():
    with pytest.raises(vgz.UnknownComponentError, match=r"No synthesis component named 'stylegan'.*'stylegan2'"):
        vgz.create("synthesis", "stylegan")


def test_unknown_kind_suggests_kinds():
    with pytest.raises(vgz.UnknownComponentError, match=r"Unknown component kind 'synthesys'.*'synthesis'"):
        vgz.list_components("synthesys")


@dataclass
class _Cfg(ComponentConfig):
    width: int = 2


def test_duplicate_names_raise_unless_overridden():
    @vgz.register("encoder", "test-dup-encoder")
    class First(ModelMixin):
        config_class = _Cfg

    try:
        with pytest.raises(vgz.DuplicateComponentError, match="already registered"):
            @vgz.register("encoder", "test-dup-encoder")
            class Second(ModelMixin):
                config_class = _Cfg

        @vgz.register("encoder", "test-dup-encoder", override=True)
        class Third(ModelMixin):
            config_class = _Cfg

        assert registry.get("encoder", "test-dup-encoder").cls is Third
        assert Third.registry_key() == ("encoder", "test-dup-encoder")
    finally:
        registry._state.entries.pop(("encoder", "test-dup-encoder"), None)


def test_subclass_does_not_inherit_registry_identity():
    base = registry.get("synthesis", "stylegan2").cls

    class Unregistered(base):
        pass

    with pytest.raises(TypeError, match="not registered"):
        Unregistered.registry_key()


def test_register_kind_adds_a_kind():
    registry.register_kind("test_kind", "a kind made by a test")
    try:
        assert "test_kind" in vgz.list_kinds()
    finally:
        registry._KINDS.pop("test_kind")


def test_plugin_entry_point_registers_component(plugin_path):
    entry = registry.get("motion", "toy-motion")
    assert entry.source == "vgz-toy-plugin"
    net = vgz.create("motion", "toy-motion", preset="tiny")
    out = net(**net.example_inputs(2))
    assert out.shape == (2, 3, 4)
    assert any(e.name == "toy-motion" for e in vgz.list_components("motion"))


def test_plugin_component_saves_and_loads(plugin_path, tmp_path):
    net = vgz.create("motion", "toy-motion", dim=5)
    net.save_pretrained(tmp_path / "toy")
    loaded = vgz.load_component(tmp_path / "toy")
    assert type(loaded).__name__ == "ToyMotion" and loaded.config.dim == 5
    t = torch.rand(2, 3)
    assert torch.equal(net(t), loaded(t))


def test_broken_plugin_warns_and_others_still_load(tmp_path, monkeypatch, plugin_path):
    broken = make_plugin_dist(tmp_path / "broken_site", "vgz-broken-plugin", "vgz_broken_plugin",
                              "raise ImportError('needs a library that is not installed')\n")
    monkeypatch.syspath_prepend(str(broken))
    with pytest.warns(RuntimeWarning, match="vgz_broken_plugin.*failed to load.*not installed"):
        registry.reload_plugins()
    bad = registry.broken_plugins()
    assert [b.source for b in bad] == ["vgz-broken-plugin"]
    assert "ImportError" in bad[0].error
    # The healthy plugin and vgz's own components still work.
    assert registry.get("motion", "toy-motion").source == "vgz-toy-plugin"
    assert registry.get("synthesis", "stylegan2").source == "vgz"
    sys.modules.pop("vgz_broken_plugin", None)


def test_plugin_registering_a_builtin_name_is_reported_not_fatal(tmp_path, monkeypatch):
    source = '''
import vgz
from vgz.generators.stylegan2 import SynthesisConfig
from vgz.modeling import ModelMixin

@vgz.register("synthesis", "stylegan2")
class Impostor(ModelMixin):
    config_class = SynthesisConfig
'''
    root = make_plugin_dist(tmp_path / "dup_site", "vgz-dup-plugin", "vgz_dup_plugin", source)
    monkeypatch.syspath_prepend(str(root))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.reload_plugins()
    assert any("already registered" in str(w.message) for w in caught)
    assert registry.get("synthesis", "stylegan2").source == "vgz"
    sys.modules.pop("vgz_dup_plugin", None)
    monkeypatch.undo()
    registry.reload_plugins()


def test_plugin_hook_function_is_called(tmp_path, monkeypatch):
    source = '''
import vgz
from vgz.generators.stylegan2 import MappingNetwork

def register_all():
    @vgz.register("mapping", "hooked-mapping")
    class Hooked(MappingNetwork):
        """Registered from a hook function."""
'''
    root = make_plugin_dist(tmp_path / "hook_site", "vgz-hook-plugin", "vgz_hook_plugin", source,
                            entry_value="vgz_hook_plugin:register_all")
    monkeypatch.syspath_prepend(str(root))
    registry.reload_plugins()
    try:
        assert registry.get("mapping", "hooked-mapping").source == "vgz-hook-plugin"
    finally:
        sys.modules.pop("vgz_hook_plugin", None)
        monkeypatch.undo()
        registry.reload_plugins()
