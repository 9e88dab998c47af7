"""Write pickles in the official NVlabs snapshot format, for conversion tests.

NVlabs' ``persistence.persistent_class`` objects pickle as
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with
``meta = {type, version, module_src, class_name, state}`` where ``state`` is the module's
``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, ``_init_args``, ``_init_kwargs``...).
This module reproduces that layout around real torch tensors (pickled by the installed torch, as
the official ``pickle.dump`` does), so tests need no official code. The stored "module source"
raises if anything ever executed it.
"""

from __future__ import annotations

import pickle
import sys
import types
from collections import OrderedDict
from typing import Any

from torch import nn

NEVER_RUN_SOURCE = "raise RuntimeError('the module source stored in a pickle must never run')\n"


def _install_fake_persistence_module(name: str) -> types.ModuleType:
    """Make ``<name>._reconstruct_persistent_obj`` importable so that pickle can reference it."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        mod_name = ".".join(parts[:i])
        if mod_name not in sys.modules:
            sys.modules[mod_name] = types.ModuleType(mod_name)
    module = sys.modules[name]
    if hasattr(module, "_reconstruct_persistent_obj"):
        return module

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - never called by vgz
        raise RuntimeError("official reconstruction must not be called")

    _reconstruct_persistent_obj.__module__ = name
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    return module


class Persistent:
    """Pickles like an official persistent network object."""

    def __init__(self, persistence_module: types.ModuleType, class_name: str, state: dict):
        self._fn = persistence_module._reconstruct_persistent_obj
        self.meta = dict(type="class", version=6, module_src=NEVER_RUN_SOURCE, class_name=class_name, state=state)

    def __reduce__(self):
        return (self._fn, (self.meta,))


def persistent_tree(module: nn.Module, persistence: types.ModuleType, class_name: str | None = None,
                    init_kwargs: dict | None = None, extra_state: dict | None = None,
                    plain: tuple[type, ...] = (nn.Sequential, nn.LSTM, nn.Embedding)) -> Any:
    """``module`` (with its children) in official form; ``plain`` modules stay real nn.Modules."""
    if isinstance(module, plain):
        return module
    state = {
        "training": False,
        "_parameters": OrderedDict((k, v) for k, v in module._parameters.items()),
        "_buffers": OrderedDict(module._buffers),
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set),
        "_modules": OrderedDict((k, persistent_tree(v, persistence, plain=plain)) for k, v in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": dict(init_kwargs or {}),
        **(extra_state or {}),
    }
    return Persistent(persistence, class_name or type(module).__name__, state)


def dump_snapshot(snapshot: dict, persistence_module: str = "torch_utils.persistence") -> bytes:
    """Pickle ``snapshot`` (values may be :func:`persistent_tree` results) like the official training loop."""
    _install_fake_persistence_module(persistence_module)
    return pickle.dumps(snapshot, protocol=4)
