"""Typed configs: validation, JSON round trip, presets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, Optional

import pytest

from vgz import registry
from vgz.configs import ComponentConfig, ConfigError, config_field
from vgz.discriminators.stylegan2 import DiscriminatorConfig
from vgz.generators.stylegan2 import MappingConfig, SynthesisConfig


@dataclass
class Inner(ComponentConfig):
    size: int = 3


@dataclass
class Sample(ComponentConfig):
    count: int = config_field(4, min=1, max=10)
    rate: float = 0.5
    mode: Literal["a", "b"] = "a"
    taps: tuple[float, ...] = (1.0, 3.0)
    pair: tuple[int, int] = (1, 2)
    maybe: Optional[int] = None
    inner: Inner = config_field(default_factory=Inner)
    presets = {"big": {"count": 9}}


def test_json_round_trip_keeps_tuples_and_nested_configs(tmp_path):
    cfg = Sample(taps=(1.0, 2.0, 3.0), inner=Inner(size=7), maybe=5)
    back = Sample.from_json(cfg.to_json())
    assert back == cfg
    assert isinstance(back.taps, tuple) and isinstance(back.pair, tuple) and isinstance(back.inner, Inner)
    cfg.save(tmp_path / "c.json")
    assert Sample.load(tmp_path / "c.json") == cfg
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left nothing behind


def test_lists_and_ints_are_coerced():
    cfg = Sample(taps=[1, 2], rate=1, pair=[3, 4])
    assert cfg.taps == (1.0, 2.0) and cfg.rate == 1.0 and cfg.pair == (3, 4)


@pytest.mark.parametrize(
    "kwargs,field,expected",
    [
        ({"count": 0}, "count", ">= 1"),
        ({"count": 11}, "count", "<= 10"),
        ({"count": "4"}, "count", "int"),
        ({"count": True}, "count", "int"),
        ({"mode": "c"}, "mode", "one of 'a', 'b'"),
        ({"pair": (1, 2, 3)}, "pair", "a tuple (int, int)"),
        ({"maybe": "x"}, "maybe", "int or None"),
    ],
)
def test_validation_names_field_allowed_and_found(kwargs, field, expected):
    with pytest.raises(ConfigError) as info:
        Sample(**kwargs)
    err = info.value
    assert err.field == field and expected in str(err)
    assert repr(list(kwargs.values())[0]) in str(err)
    assert str(err).startswith(f"Sample.{field}:")


def test_unknown_and_missing_keys_are_reported(tmp_path):
    with pytest.raises(ConfigError, match=r"Sample\.colour: expected one of the known fields"):
        Sample.from_dict({"colour": 1})
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"valid JSON in .*bad\.json"):
        Sample.load(path)


def test_presets_and_overrides():
    assert Sample.from_preset("big").count == 9
    assert Sample.from_preset("big", count=2).count == 2
    with pytest.raises(ConfigError, match=r"Sample\.preset: expected one of 'big', found 'bog'"):
        Sample.from_preset("bog")


def test_replace_validates():
    with pytest.raises(ConfigError):
        Sample().replace(count=0)


def test_cross_field_checks():
    with pytest.raises(ConfigError, match=r"SynthesisConfig\.img_resolution: expected a power of two"):
        SynthesisConfig(img_resolution=48)
    with pytest.raises(ConfigError, match=r"MappingConfig\.z_dim"):
        MappingConfig(z_dim=0, c_dim=0)
    with pytest.raises(ConfigError, match=r"SynthesisConfig\.architecture: expected one of 'orig', 'skip', 'resnet'"):
        SynthesisConfig(architecture="res")


def test_num_ws_follows_resolution():
    assert SynthesisConfig(img_resolution=1024).num_ws == 18
    assert SynthesisConfig(img_resolution=256).num_ws == 14
    assert SynthesisConfig.from_preset("tiny").num_ws == MappingConfig.from_preset("tiny").num_ws


@pytest.mark.parametrize("cls", [MappingConfig, SynthesisConfig, DiscriminatorConfig])
def test_every_preset_is_valid_and_round_trips(cls):
    for name in cls.preset_names():
        cfg = cls.from_preset(name)
        assert cls.from_dict(json.loads(cfg.to_json())) == cfg


def test_every_registered_config_round_trips():
    for entry in registry.list_components():
        cfg = entry.config_cls()
        assert entry.config_cls.from_json(cfg.to_json()) == cfg, entry
