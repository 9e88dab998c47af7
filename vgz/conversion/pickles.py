"""Reading official NVlabs-style network pickles as data, without running any code stored in them.

StyleGAN2-ADA, StyleGAN-V and StyleInV save ``network-snapshot-*.pkl`` files with
``pickle.dump``. Their networks are "persistent" objects: the pickle stores each network's
Python *source code* together with its constructor arguments and its state, and ``pickle.load``
would import and execute that code. :func:`read_pickle` never does: every global the pickle
names is looked up in a fixed allowlist, and

* tensors and storages are rebuilt by PyTorch's own tensor rebuilders (storages through
  ``torch.load(..., weights_only=True)``, PyTorch's restricted loader);
* persistent objects become :class:`PersistentObject` records (class name, constructor kwargs and
  state, the source code kept only as a string that is never executed);
* every other class the pickle names (PyTorch modules, ``EasyDict``, OmegaConf configs...) becomes
  an inert stand-in that records its state as a :class:`PickledObject`: the class's module is
  never imported;
* any other function (``os.system``, ``builtins.eval``, ``getattr``...) is refused with an
  :class:`UnsafePickleError` naming it.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["read_pickle", "PersistentObject", "PickledObject", "UnsafePickleError", "PickleFormatError",
           "module_state_dict"]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that is not plain data (it would run code when loaded)."""


class PickleFormatError(ValueError):
    """The file is not a readable pickle of the expected kind (truncated, corrupt, other format)."""


@dataclass
class PickledObject:
    """An object of an allowed class, recorded as data: its class path and its pickled state."""

    module: str
    name: str
    args: tuple = ()
    state: Any = None
    items: dict = field(default_factory=dict)  # dict subclasses (EasyDict): their items

    def __setstate__(self, state: Any) -> None:  # called by BUILD
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEM(S) on dict subclasses
        self.items[key] = value

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass
class PersistentObject:
    """An NVlabs ``persistence.persistent_class`` instance, as data.

    ``module_src`` is the Python source the pickle carries; vgz only ever reads it as text.
    """

    class_name: str
    module_src: str
    state: dict
    version: int | None = None

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args", ()))

    @property
    def init_kwargs(self) -> dict:
        return _plain(self.state.get("_init_kwargs", {}))


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class" or "class_name" not in meta:
        raise PickleFormatError(f"persistent object with unexpected meta: {type(meta).__name__}")
    return PersistentObject(class_name=str(meta["class_name"]), module_src=str(meta.get("module_src", "")),
                            state=meta.get("state") or {}, version=meta.get("version"))


def _load_storage_bytes(data: bytes) -> Any:
    # Storages are stored as torch.save() bytes; PyTorch's weights-only loader reads them safely.
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _rebuild_tensor(storage: Any, storage_offset: int, size: tuple, stride: tuple, *rest: Any) -> torch.Tensor:
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise PickleFormatError(f"tensor built from a {type(storage).__name__}, expected a torch storage")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, tuple(size), tuple(stride), False, OrderedDict())


def _rebuild_parameter(data: torch.Tensor, *rest: Any) -> torch.Tensor:
    return data  # the values are all vgz needs; it builds its own Parameters


def _reconstructor(cls: Any, base: Any, state: Any = None) -> Any:
    # copyreg._reconstructor(cls, object, None) is how plain classes pickle; only record them.
    if not (isinstance(cls, type) and issubclass(cls, _Recorded)):
        raise UnsafePickleError(f"copyreg._reconstructor called with {cls!r}")
    return cls()


class _Recorded:
    """Base of the stand-in classes made for allowed class globals."""


def _record_class(module: str, name: str) -> type:
    def new(cls: type, *args: Any, **kwargs: Any) -> PickledObject:
        return PickledObject(module=module, name=name, args=args)

    # Called as cls(), cls.__new__(cls) (NEWOBJ) or through copyreg._reconstructor.
    return type(name, (_Recorded,), {"__new__": new, "__module__": f"vgz.recorded.{module}"})


def _device(*args: Any) -> str:
    return str(args[0]) if args else "cpu"


# Functions that rebuild data from the pickle's arguments.
_FUNCTIONS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "defaultdict"): defaultdict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch", "device"): _device,
    ("copyreg", "_reconstructor"): _reconstructor,
    # Protocol 2 writes bytes as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): lambda text, encoding="utf-8": str(text).encode(str(encoding)),
}
# Builtin data types: building them from pickled arguments runs nothing else.
for _name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes",
              "bytearray", "bool", "slice", "object"):
    _FUNCTIONS[("builtins", _name)] = _FUNCTIONS[("__builtin__", _name)] = getattr(builtins, _name)

# numpy arrays and scalars: rebuilt by numpy from bytes (no code of the pickle runs).
_NUMPY = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
          ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
          ("numpy._core.multiarray", "scalar")}


def _numpy_global(module: str, name: str) -> Any:
    import importlib

    if module == "numpy":
        return getattr(importlib.import_module("numpy"), name)
    try:  # numpy 2 moved numpy.core (deprecated there) to numpy._core; pickles name either
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:
        multiarray = importlib.import_module("numpy.core.multiarray")
    return getattr(multiarray, name)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str):
        super().__init__(file)
        self._source = source
        self._classes: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _FUNCTIONS:
            return _FUNCTIONS[key]
        if name == "_reconstruct_persistent_obj" and module.endswith("torch_utils.persistence"):
            return _reconstruct_persistent_obj
        if key in _NUMPY:
            return _numpy_global(module, name)
        if module == "typing":  # type annotations stored in OmegaConf node metadata
            return f"typing.{name}"
        if name[:1].isupper() and name.isidentifier():
            # A class (modules, configs, EasyDict...): an inert stand-in records its state. The
            # module the pickle names is never imported, so nothing of it can run.
            if key not in self._classes:
                self._classes[key] = _record_class(module, name)
            return self._classes[key]
        raise UnsafePickleError(
            f"{self._source}: refusing to load global {module}.{name}: vgz reads only tensors and plain "
            "data from pickles and never runs code stored in them"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: unexpected persistent id {pid!r} (not a plain pickle)")


def read_pickle(path: str | os.PathLike | bytes) -> Any:
    """Read an official network pickle as data (see the module docstring).

    Args:
        path: a file path, or the pickle's bytes.

    Raises:
        UnsafePickleError: the pickle names a global outside the allowlist (it would run code).
        PickleFormatError: not a pickle, truncated, a zip archive (``torch.save`` format) or corrupt.
    """
    if isinstance(path, (bytes, bytearray)):
        data, source = bytes(path), "<bytes>"
    else:
        source = str(path)
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no file {source}")
        data = p.read_bytes()
    if data[:2] == b"PK":
        raise PickleFormatError(f"{source} is a zip archive (a torch.save checkpoint?), not an official "
                                "network pickle (network-snapshot-*.pkl)")
    if not data or data[0] != 0x80:
        raise PickleFormatError(f"{source} is not a pickle (it does not start with a pickle protocol header)")
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except (UnsafePickleError, PickleFormatError):
        raise
    except EOFError:
        raise PickleFormatError(f"{source} ends early: the file is truncated ({len(data)} bytes)") from None
    except Exception as exc:  # corrupt opcodes, bad arguments to allowed rebuilders...
        raise PickleFormatError(f"{source} could not be read as a network pickle: {type(exc).__name__}: {exc}") from None


def _plain(value: Any) -> Any:
    """EasyDicts (recorded dict subclasses) -> plain dicts, recursively."""
    if isinstance(value, PickledObject):
        if value.items or value.name == "EasyDict":
            return {k: _plain(v) for k, v in value.items.items()}
        return value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def _module_dict(obj: Any, where: str) -> dict:
    if isinstance(obj, PersistentObject):
        return obj.state
    if isinstance(obj, PickledObject) and isinstance(obj.state, dict):
        return obj.state
    raise PickleFormatError(f"{where}: expected a network module, found {type(obj).__name__}")


def module_state_dict(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """The ``state_dict()`` an unpickled network would have: parameters and persistent buffers."""
    state = _module_dict(obj, prefix or "<root>")
    out: dict[str, torch.Tensor] = {}
    non_persistent = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in non_persistent):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise PickleFormatError(f"{prefix}{name}: expected a tensor, found {type(tensor).__name__}")
            out[prefix + name] = tensor
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state_dict(child, f"{prefix}{name}."))
    return out
