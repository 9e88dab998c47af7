"""The component registry.

Every component of vgz (mapping networks, synthesis networks, motion modules, discriminators,
encoders, pipelines, and later recipes, datasets and metrics) is registered under a *kind* and a
*name*, together with its config class::

    @register("mapping", "stylegan2")
    class MappingNetwork(ModelMixin): ...

    net = vgz.create("mapping", "stylegan2", preset="tiny", z_dim=64)
    vgz.list_components("synth*")

Third-party packages add components without touching vgz by declaring an entry point in the
``vgz.plugins`` group; the entry point names a module (or a zero-argument function) whose import
(or call) registers the package's components::

    [project.entry-points."vgz.plugins"]
    my_components = "my_package.vgz_components"

Plugins are discovered lazily on the first lookup. A plugin that fails to load is reported with a
warning and listed as broken; the others keep working.

This module does not import torch, so ``import vgz`` and ``vgz --help`` stay cheap.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

__all__ = [
    "ENTRY_POINT_GROUP",
    "BrokenPlugin",
    "RegistryEntry",
    "RegistryError",
    "UnknownComponentError",
    "DuplicateComponentError",
    "register",
    "register_kind",
    "registry_key",
    "get",
    "create",
    "list_components",
    "list_kinds",
    "broken_plugins",
    "reload_plugins",
]

ENTRY_POINT_GROUP = "vgz.plugins"

#: Kinds known from the start; later subsystems add theirs with :func:`register_kind`.
_KINDS: dict[str, str] = {
    "mapping": "z (and labels) -> intermediate latents w",
    "synthesis": "w (and time) -> images or frames",
    "motion": "motion noise and timestamps -> motion codes / time embeddings",
    "discriminator": "images or clips -> realness logits",
    "encoder": "images or frames -> latents (GAN inversion)",
    "pipeline": "components combined into a ready-to-call video generator",
    "dataset": "video datasets: clips of real or synthetic videos for training and evaluation",
    "recipe": "training recipes: components, losses and hyper-parameters for the trainer",
    "detector": "frozen networks that turn clips or images into features for the Frechet metrics",
    "metric": "evaluation metrics with a fixed protocol (FVD, FID): real and generated samples -> a number",
}

#: vgz's own modules that register components. Imported on first lookup (not at `import vgz`),
#: so that importing vgz does not import torch.
_BUILTIN_MODULES: tuple[str, ...] = (
    "vgz.generators.stylegan2",
    "vgz.generators.styleganv",
    "vgz.generators.styleinv",
    "vgz.generators.stylevideogan",
    "vgz.discriminators.stylegan2",
    "vgz.discriminators.styleganv",
    "vgz.discriminators.stylevideogan",
    "vgz.encoders.psp",
    "vgz.encoders.styleinv",
    "vgz.pipelines.styleganv",
    "vgz.pipelines.stylegan2",
    "vgz.pipelines.psp",
    "vgz.pipelines.styleinv",
    "vgz.pipelines.stylevideogan",
    "vgz.data.video_folder",
    "vgz.data.frame_folder",
    "vgz.data.shapes",
    "vgz.data.latents",
    "vgz.training.recipes",
    "vgz.metrics.protocol",
    "vgz.metrics.windows",
    "vgz.metrics.i3d",
    "vgz.metrics.inception",
)

T = TypeVar("T")


class RegistryError(Exception):
    """Base class of registry errors."""


class UnknownComponentError(RegistryError, KeyError):
    """Raised for a (kind, name) that is not registered; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateComponentError(RegistryError):
    """Raised when a (kind, name) is registered twice without ``override=True``."""


@dataclass(frozen=True)
class RegistryEntry:
    """One registered component."""

    kind: str
    name: str
    cls: type
    config_cls: type | None
    source: str  # "vgz" or the distribution name of the plugin that registered it
    description: str = ""

    @property
    def qualname(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


@dataclass(frozen=True)
class BrokenPlugin:
    """A ``vgz.plugins`` entry point that failed to load."""

    name: str
    value: str
    source: str
    error: str


@dataclass
class _State:
    entries: dict[tuple[str, str], RegistryEntry] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)
    builtins_loaded: bool = False
    plugins_loaded: bool = False
    # The source recorded for registrations made while a plugin loads.
    current_source: str | None = None
    # Modules imported through entry points, re-imported by reload_plugins().
    plugin_modules: set[str] = field(default_factory=set)
    plugin_sources: set[str] = field(default_factory=set)


_state = _State()
_lock = threading.RLock()


def register_kind(kind: str, description: str = "") -> None:
    """Declare a new component kind (e.g. ``"recipe"``, ``"dataset"``, ``"metric"``)."""
    if not kind or not kind.replace("_", "").isalnum():
        raise ValueError(f"kind must be a non-empty identifier, got {kind!r}")
    _KINDS.setdefault(kind, description)


def registry_key(cls: type) -> tuple[str, str]:
    """``(kind, name)`` that ``cls`` itself was registered under (first one if several)."""
    names = cls.__dict__.get("_registry_names") or []
    if not names:
        raise TypeError(f"{cls.__name__} is not registered; decorate it with @vgz.register(kind, name)")
    return names[0]


def list_kinds() -> dict[str, str]:
    """Return ``{kind: description}`` for every known kind."""
    return dict(_KINDS)


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        close = difflib.get_close_matches(kind, list(_KINDS), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownComponentError(
            f"Unknown component kind {kind!r}. Known kinds: {', '.join(sorted(_KINDS))}.{hint}"
        )


def register(
    kind: str,
    name: str,
    *,
    config: type | None = None,
    override: bool = False,
    description: str | None = None,
) -> Callable[[type[T]], type[T]]:
    """Class decorator registering a component under ``(kind, name)``.

    Args:
        kind: one of :func:`list_kinds`.
        name: the component's name within its kind (lowercase, ``-`` and ``_`` allowed).
        config: the component's config dataclass; defaults to the class attribute
            ``config_class`` when the class has one.
        override: replace an existing registration instead of raising
            :class:`DuplicateComponentError`.
        description: one line for ``vgz list``; defaults to the first line of the docstring.
    """
    _check_kind(kind)
    if not name or name != name.strip() or any(c.isspace() for c in name):
        raise ValueError(f"component name must be non-empty without whitespace, got {name!r}")

    def decorator(cls: type[T]) -> type[T]:
        config_cls = config if config is not None else getattr(cls, "config_class", None)
        desc = description
        if desc is None:
            doc = (cls.__doc__ or "").strip()
            desc = doc.splitlines()[0].replace("``", "") if doc else ""  # plain text for `vgz list`
        with _lock:
            key = (kind, name)
            existing = _state.entries.get(key)
            if existing is not None and not override and existing.cls is not cls:
                raise DuplicateComponentError(
                    f"{kind} {name!r} is already registered by {existing.source} "
                    f"({existing.qualname}); pass override=True to replace it."
                )
            _state.entries[key] = RegistryEntry(
                kind=kind,
                name=name,
                cls=cls,
                config_cls=config_cls,
                source=_source_of(cls),
                description=desc,
            )
        # Let the class know its registry identity: saved configs record it.
        # (a subclass gets its own list: it must not report its parent's names)
        if "_registry_names" not in cls.__dict__:
            cls._registry_names = []  # type: ignore[attr-defined]
        if (kind, name) not in cls._registry_names:  # type: ignore[attr-defined]
            cls._registry_names.append((kind, name))  # type: ignore[attr-defined]
        return cls

    return decorator


def _source_of(cls: type) -> str:
    """The distribution loading now, else the top-level package of the class ("vgz" for ours)."""
    if _state.current_source is not None:
        return _state.current_source
    return cls.__module__.split(".")[0]


def _load_builtins() -> None:
    if _state.builtins_loaded:
        return
    with _lock:
        if _state.builtins_loaded:
            return
        _state.builtins_loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def _load_plugins() -> None:
    if _state.plugins_loaded:
        return
    with _lock:
        if _state.plugins_loaded:
            return
        _state.plugins_loaded = True
        seen: set[tuple[str, str]] = set()
        for ep in _entry_points():
            dist = getattr(getattr(ep, "dist", None), "name", None) or ep.value.split(":")[0]
            if (ep.name, ep.value) in seen:  # the same dist visible twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            previous, _state.current_source = _state.current_source, dist
            try:
                _state.plugin_modules.add(ep.module)
                _state.plugin_sources.add(dist)
                obj = ep.load()
                if callable(obj) and not isinstance(obj, type):
                    obj()
            except Exception as exc:  # a broken plugin must not break the others
                broken = BrokenPlugin(
                    name=ep.name, value=ep.value, source=dist, error=f"{type(exc).__name__}: {exc}"
                )
                _state.broken.append(broken)
                warnings.warn(
                    f"vgz plugin {ep.name!r} ({ep.value}, from {dist}) failed to load and is "
                    f"skipped: {broken.error}",
                    RuntimeWarning,
                    stacklevel=3,
                )
            finally:
                _state.current_source = previous


def _ensure_loaded() -> None:
    _load_builtins()
    _load_plugins()


def reload_plugins() -> None:
    """Forget discovered plugins and look for ``vgz.plugins`` entry points again.

    Useful after installing a plugin into a running interpreter.
    """
    import sys

    with _lock:
        _state.entries = {k: e for k, e in _state.entries.items() if e.source not in _state.plugin_sources}
        _state.plugin_sources.clear()
        _state.broken = []
        _state.plugins_loaded = False
        # Import plugin modules afresh so that their registrations run again.
        for module in _state.plugin_modules:
            sys.modules.pop(module, None)
        _state.plugin_modules.clear()
    importlib.invalidate_caches()
    _load_plugins()


def get(kind: str, name: str, *, needed_by: str | None = None) -> RegistryEntry:
    """Return the :class:`RegistryEntry` for ``(kind, name)``.

    Args:
        needed_by: what asks for the component (e.g. a saved model's ``config.json``); the error
            then says that a plugin providing it must be installed, and names broken plugins.

    Raises:
        UnknownComponentError: with the closest registered names of that kind.
    """
    _ensure_loaded()  # first: plugins may declare kinds of their own
    try:
        _check_kind(kind)
    except UnknownComponentError as exc:
        raise UnknownComponentError(str(exc) + _plugin_hint(kind, name, needed_by)) from None
    entry = _state.entries.get((kind, name))
    if entry is None:
        names = sorted(n for k, n in _state.entries if k == kind)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
        if close:
            hint = f" Closest: {', '.join(map(repr, close))}."
        elif names:
            hint = f" Registered {kind} components: {', '.join(map(repr, names))}."
        else:
            hint = f" No {kind} component is registered."
        raise UnknownComponentError(f"No {kind} component named {name!r}.{hint}" + _plugin_hint(kind, name, needed_by))
    return entry


def _plugin_hint(kind: str, name: str, needed_by: str | None) -> str:
    """For a saved model naming an unregistered component: what to install, and which plugins broke."""
    if needed_by is None:
        return ""
    hint = (f" {needed_by} needs {kind} {name!r}: install the vgz plugin package that provides it "
            "(`vgz list` shows the installed components).")
    if _state.broken:
        hint += " Plugins that failed to load: " + "; ".join(f"{b.name} from {b.source} ({b.error})"
                                                            for b in _state.broken) + "."
    return hint


def create(kind: str, name: str, *, preset: str | None = None, **overrides: Any) -> Any:
    """Build a registered component from its config.

    Args:
        kind: the component kind, e.g. ``"synthesis"``.
        name: the registered name, e.g. ``"stylegan2"``.
        preset: a named preset of the component's config (see ``Config.presets``).
        **overrides: config fields that replace the preset's (or the defaults') values.

    Returns:
        The component, in training mode with freshly initialised weights (a pipeline: its
        components so built).
    """
    entry = get(kind, name)
    builder = getattr(entry.cls, "from_preset", None)
    if builder is not None:  # pipelines: several components, built from one preset name
        return builder(preset, **overrides)
    if entry.config_cls is None:
        if preset is not None:
            raise ValueError(f"{kind} {name!r} has no config class, so it has no presets")
        return entry.cls(**overrides)
    if preset is not None:
        config = entry.config_cls.from_preset(preset, **overrides)
    else:
        config = entry.config_cls(**overrides)
    return entry.cls(config)


def list_components(kind: str | None = None, pattern: str = "*") -> list[RegistryEntry]:
    """List registered components, sorted by kind then name.

    Args:
        kind: only this kind (all kinds when ``None``).
        pattern: a shell-style wildcard matched against the name (``"style*"``), or against
            ``"kind/name"`` when it contains a ``/``.
    """
    _ensure_loaded()  # first: plugins may declare kinds of their own
    if kind is not None:
        _check_kind(kind)
    out = []
    for (k, n), entry in _state.entries.items():
        if kind is not None and k != kind:
            continue
        target = f"{k}/{n}" if "/" in pattern else n
        if fnmatch.fnmatchcase(target, pattern):
            out.append(entry)
    return sorted(out, key=lambda e: (e.kind, e.name))


def broken_plugins() -> list[BrokenPlugin]:
    """Plugins whose entry point failed to load (after discovery)."""
    _ensure_loaded()
    return list(_state.broken)

