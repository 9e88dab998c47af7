"""Typed component configs.

Every component takes one config: a dataclass deriving from :class:`ComponentConfig`. A config

* validates itself when built (types, ``Literal`` choices, numeric ranges from field metadata, and
  a class-specific :meth:`ComponentConfig.check` for relations between fields), raising
  :class:`ConfigError` that names the field, what is allowed and what was found;
* round-trips through JSON (tuples come back as tuples, nested configs as configs);
* has named presets (``MappingConfig.from_preset("tiny", z_dim=64)``).

Ranges are declared next to the field::

    z_dim: int = field(default=512, metadata={"min": 0})

This module does not import torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

__all__ = ["ComponentConfig", "ConfigError", "config_field", "Activation"]

#: Activation functions of vgz.layers.bias_act (kept here so configs need no torch).
Activation = Literal["linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish"]

C = TypeVar("C", bound="ComponentConfig")


class ConfigError(ValueError):
    """A config field is missing, unknown, of the wrong type or out of range."""

    def __init__(self, config: str, field: str, expected: str, found: Any):
        self.config, self.field, self.expected, self.found = config, field, expected, found
        super().__init__(f"{config}.{field}: expected {expected}, found {found!r}")


def config_field(default: Any = MISSING, *, min: float | None = None, max: float | None = None,
                 choices: tuple | None = None, help: str = "", default_factory: Any = MISSING) -> Any:
    """A dataclass field with validation metadata (``min``/``max`` inclusive, ``choices``)."""
    metadata = {"min": min, "max": max, "choices": choices, "help": help}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {_type_name(args[0])}"
        return "a tuple (" + ", ".join(_type_name(a) for a in args) + ")"
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` converted to annotation ``tp`` (lists -> tuples, ints -> floats,
    dicts -> nested configs), or raise :class:`_Mismatch`."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Literal:
        # Compare types too, so that True does not pass for 1.
        if any(value == a and type(value) is type(a) for a in get_args(tp)):
            return value
        raise _Mismatch
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        if len(args) != len(value):
            raise _Mismatch
        return tuple(_coerce(v, a) for v, a in zip(value, args))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        return [_coerce(v, get_args(tp)[0]) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return dict(value)
    if isinstance(tp, type) and issubclass(tp, ComponentConfig):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return tp.from_dict(value)
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, (int, float)):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    return value


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, ComponentConfig):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    return value


@dataclass
class ComponentConfig:
    """Base class of component configs. Subclasses are ``@dataclass`` classes.

    Class attributes:
        presets: ``{name: {field: value}}``; :meth:`from_preset` starts from the defaults and
            applies the preset, then the caller's overrides.
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------------------- validation

    def validate(self) -> None:
        """Check every field and the relations between them; raise :class:`ConfigError`."""
        hints = typing.get_type_hints(type(self))
        name = type(self).__name__
        for f in fields(self):
            value = getattr(self, f.name)
            try:
                value = _coerce(value, hints[f.name])
            except _Mismatch:
                raise ConfigError(name, f.name, _type_name(hints[f.name]), value) from None
            object.__setattr__(self, f.name, value)
            meta = f.metadata
            if meta.get("choices") is not None and value not in meta["choices"]:
                raise ConfigError(name, f.name, "one of " + ", ".join(map(repr, meta["choices"])), value)
            lo, hi = meta.get("min"), meta.get("max")
            for v in (value if isinstance(value, tuple) else (value,)):
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    if lo is not None and v < lo:
                        raise ConfigError(name, f.name, f"a value >= {lo}", value)
                    if hi is not None and v > hi:
                        raise ConfigError(name, f.name, f"a value <= {hi}", value)
        self.check()

    def check(self) -> None:
        """Relations between fields; subclasses override and call :meth:`fail`."""

    def fail(self, field: str, expected: str, found: Any = MISSING) -> typing.NoReturn:
        """Raise a :class:`ConfigError` for ``field``."""
        raise ConfigError(type(self).__name__, field, expected,
                          getattr(self, field) if found is MISSING else found)

    # ----------------------------------------------------------------------------- conversion

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        return {f.name: _to_jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], *, source: str | None = None) -> C:
        """Build from a dict, rejecting unknown keys. ``source`` names the file in errors."""
        if not isinstance(data, dict):
            raise ConfigError(cls.__name__, "<root>", "a JSON object", type(data).__name__)
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        where = f" in {source}" if source else ""
        if unknown:
            raise ConfigError(
                cls.__name__, unknown[0], f"one of the known fields{where} ({', '.join(sorted(known))})",
                data[unknown[0]],
            )
        missing = [f.name for f in fields(cls) if f.init and f.name not in data
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise ConfigError(cls.__name__, missing[0], f"a value{where}", "nothing")
        return cls(**data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as JSON (atomically: temporary file, then rename)."""
        from vgz.utils import atomic_write_text

        atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def load(cls: type[C], path: str | os.PathLike) -> C:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(cls.__name__, "<file>", f"valid JSON in {path}", str(exc)) from None
        return cls.from_dict(data, source=str(path))

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------------------- presets

    @classmethod
    def from_preset(cls: type[C], preset: str, **overrides: Any) -> C:
        """Defaults, then the named preset, then ``overrides``."""
        if preset not in cls.presets:
            raise ConfigError(cls.__name__, "preset", "one of " + ", ".join(map(repr, sorted(cls.presets))), preset)
        return cls(**{**cls.presets[preset], **overrides})

    @classmethod
    def preset_names(cls) -> list[str]:
        return sorted(cls.presets)
