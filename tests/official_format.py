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

import contextlib
import pickle
import sys
import types
from collections import OrderedDict
from typing import Any, Iterator

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


def state_tree(state: dict, persistence: types.ModuleType, class_name: str, init_kwargs: dict | None = None) -> Any:
    """A flat official state dict (``"a.b.weight": tensor``) as a tree of persistent modules."""
    params: dict = OrderedDict()
    children: dict = OrderedDict()
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if rest:
            children.setdefault(head, OrderedDict())[rest] = value
        else:
            params[key] = value
    tree_state = {
        "training": False, "_parameters": params, "_buffers": OrderedDict(), "_non_persistent_buffers_set": set(),
        "_modules": OrderedDict((k, state_tree(v, persistence, k)) for k, v in children.items()),
        "_init_args": (), "_init_kwargs": dict(init_kwargs or {}),
    }
    return Persistent(persistence, class_name, tree_state)


# ----------------------------------------------------------------------------- OmegaConf records
# OmegaConf objects pickle as plain classes (NEWOBJ + BUILD with their __dict__): containers hold
# {_metadata, _parent, _content}, leaves {_metadata, _parent, _val}; parents link up to the root.

_OC_CLASSES = {"omegaconf.dictconfig": ["DictConfig"], "omegaconf.listconfig": ["ListConfig"],
               "omegaconf.nodes": ["AnyNode"], "omegaconf.base": ["ContainerMetadata", "Metadata"]}
_oc_types: dict[str, type] = {}
for _module, _names in _OC_CLASSES.items():
    for _name in _names:
        _oc_types[_name] = type(_name, (), {"__module__": _module, "__qualname__": _name})


def omegaconf_tree(data: Any, parent: Any = None, key: Any = None) -> Any:
    """Plain data (strings may hold ``${...}`` interpolations) as OmegaConf-format node objects."""
    container = isinstance(data, (dict, list))
    meta = _oc_types["ContainerMetadata" if container else "Metadata"]()
    meta.__dict__.update(ref_type="typing.Any", object_type=None, optional=True, key=key, flags={})
    node = _oc_types["DictConfig" if isinstance(data, dict) else "ListConfig" if container else "AnyNode"]()
    node.__dict__.update(_metadata=meta, _parent=parent)
    if isinstance(data, dict):
        node._content = {k: omegaconf_tree(v, node, k) for k, v in data.items()}
    elif isinstance(data, list):
        node._content = [omegaconf_tree(v, node, i) for i, v in enumerate(data)]
    else:
        node._val = data
    return node


def omegaconf_child(node: Any, dotted: str) -> Any:
    """The node at ``dotted`` below ``node`` (what ``cfg.model.generator`` gives in OmegaConf)."""
    for part in dotted.split("."):
        node = node._content[part]
    return node


@contextlib.contextmanager
def _fake_omegaconf_modules() -> Iterator[None]:
    # pickle writes classes by module + name and checks that they import; stand in for OmegaConf
    # (installed or not) only while dumping.
    saved = {name: sys.modules.get(name) for name in ["omegaconf", *_OC_CLASSES]}
    try:
        sys.modules["omegaconf"] = types.ModuleType("omegaconf")
        for module, names in _OC_CLASSES.items():
            sys.modules[module] = types.ModuleType(module)
            for name in names:
                setattr(sys.modules[module], name, _oc_types[name])
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def dump_snapshot(snapshot: dict, persistence_module: str = "torch_utils.persistence") -> bytes:
    """Pickle ``snapshot`` (values may be :func:`persistent_tree` / :func:`omegaconf_tree` results)
    like the official training loop."""
    _install_fake_persistence_module(persistence_module)
    with _fake_omegaconf_modules():
        return pickle.dumps(snapshot, protocol=4)
