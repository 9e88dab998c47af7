"""OmegaConf configs inside pickles, turned into plain data without OmegaConf.

StyleGAN-V passes its Hydra config (``cfg.model.generator``...) to the networks, so snapshots
pickle OmegaConf nodes: ``DictConfig``/``ListConfig`` containers (``_content``) and leaf nodes
(``_val``), each with a ``_parent`` link, so the whole config tree comes along. :func:`read_pickle`
records them as :class:`PickledObject` data; :func:`omegaconf_to_plain` turns such a record into
dicts, lists and scalars, resolving interpolations (``${dataset.fps}``, ``random${a}_max${b}``,
relative ``${..x}``) against the recorded tree, as ``OmegaConf.to_container(resolve=True)`` would.
Custom resolvers (``${oc.env:X}``, ``${now:}``) are code and are refused.
"""

from __future__ import annotations

import re
from typing import Any

from vgz.conversion.pickles import PickledObject, _plain

__all__ = ["omegaconf_to_plain", "is_omegaconf", "OmegaConfRecordError"]

_INTERPOLATION = re.compile(r"\$\{([^${}]*)\}")
_CONTAINERS = ("DictConfig", "ListConfig")


class OmegaConfRecordError(ValueError):
    """A recorded OmegaConf config cannot be turned into plain data (bad reference, resolver, cycle)."""


def is_omegaconf(obj: Any) -> bool:
    return isinstance(obj, PickledObject) and obj.module.split(".")[0] == "omegaconf"


def _state(node: PickledObject) -> dict:
    state = node.state
    if isinstance(state, tuple):  # (__dict__, slots) from objects with __slots__
        state = {**(state[0] or {}), **(state[1] or {})}
    if not isinstance(state, dict):
        raise OmegaConfRecordError(f"recorded {node.qualname} has no state")
    return state


def _key(node: PickledObject) -> str:
    meta = _state(node).get("_metadata")
    key = _state(meta).get("key") if isinstance(meta, PickledObject) else None
    return "" if key is None else str(key)


def _path(node: PickledObject | None) -> str:
    parts = []
    while isinstance(node, PickledObject):
        if _key(node):
            parts.append(_key(node))
        node = _state(node).get("_parent")
    return ".".join(reversed(parts)) or "<root>"


def _root(node: PickledObject) -> PickledObject:
    seen = set()
    while isinstance(_state(node).get("_parent"), PickledObject):
        if id(node) in seen:
            raise OmegaConfRecordError("recorded OmegaConf parents form a loop")
        seen.add(id(node))
        node = _state(node)["_parent"]
    return node


def _child(container: Any, part: str, ref: str) -> Any:
    if not (is_omegaconf(container) and container.name in _CONTAINERS):
        raise OmegaConfRecordError(f"interpolation ${{{ref}}}: {part!r} is looked up in a value, not a config node")
    content = _state(container).get("_content")
    if isinstance(content, dict) and part in content:
        return content[part]
    if isinstance(content, list) and part.isdigit() and int(part) < len(content):
        return content[int(part)]
    raise OmegaConfRecordError(f"interpolation ${{{ref}}}: no key {part!r} in {_path(container)}")


def _lookup(ref: str, parent: PickledObject | None, root: PickledObject) -> Any:
    if ":" in ref:
        raise OmegaConfRecordError(f"interpolation ${{{ref}}} uses a custom resolver, which is code; "
                                   "vgz reads configs as data only")
    if ref.startswith("."):
        # Relative: "." is the containing node, every further dot one level up.
        dots = len(ref) - len(ref.lstrip("."))
        node = parent
        for _ in range(dots - 1):
            node = _state(node).get("_parent") if isinstance(node, PickledObject) else None
        if node is None:
            raise OmegaConfRecordError(f"interpolation ${{{ref}}} goes above the config's root")
        rest = ref[dots:]
    else:
        node, rest = root, ref
    for part in filter(None, rest.split(".")):
        node = _child(node, part, ref)
    return node


def _resolve_string(text: str, parent: PickledObject | None, root: PickledObject, active: tuple) -> Any:
    whole = _INTERPOLATION.fullmatch(text)
    if whole:  # "${a.b}" keeps the referenced value's type (int, dict...)
        return _value(_lookup(whole[1].strip(), parent, root), root, active + (text,))
    return _INTERPOLATION.sub(
        lambda m: str(_value(_lookup(m[1].strip(), parent, root), root, active + (text,))), text)


def _value(node: Any, root: PickledObject, active: tuple = ()) -> Any:
    if len(active) > 64 or (active and active[-1] in active[:-1]):
        raise OmegaConfRecordError(f"interpolation cycle: {' -> '.join(map(str, active))}")
    if not is_omegaconf(node):
        return _plain(node)
    state = _state(node)
    parent = state.get("_parent")
    if node.name in _CONTAINERS:
        content = state.get("_content")
        if isinstance(content, str):  # a whole container given as "${...}" or "???"
            return _leaf(content, node, parent, root, active)
        if isinstance(content, dict):
            return {k: _value(v, root, active) for k, v in content.items()}
        if isinstance(content, list):
            return [_value(v, root, active) for v in content]
        return None
    if "_val" not in state:
        raise OmegaConfRecordError(f"recorded {node.qualname} at {_path(node)} has no value")
    return _leaf(state["_val"], node, parent, root, active)


def _leaf(value: Any, node: PickledObject, parent: Any, root: PickledObject, active: tuple) -> Any:
    if isinstance(value, str):
        if value == "???":
            raise OmegaConfRecordError(f"config value {_path(node)} is missing ('???')")
        if "${" in value:
            return _resolve_string(value, parent, root, active)
    return _plain(value)


def omegaconf_to_plain(obj: Any) -> Any:
    """A recorded OmegaConf node (or plain data holding some) -> plain dicts/lists/scalars, resolved."""
    if is_omegaconf(obj):
        return _value(obj, _root(obj))
    if isinstance(obj, dict):
        return {k: omegaconf_to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(omegaconf_to_plain(v) for v in obj)
    return obj
