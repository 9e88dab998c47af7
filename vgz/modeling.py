"""The base class of every vgz network: typed config, safetensors weights, Hub loading.

A saved component is a folder::

    config.json            {"_vgz_kind": ..., "_vgz_name": ..., "_vgz_version": ..., <config fields>}
    model.safetensors      the state dict (parameters and persistent buffers)
    model.fp16.safetensors optional half-precision variant

``ModelMixin.from_pretrained(folder_or_repo)`` finds the component class through the registry
from ``_vgz_kind``/``_vgz_name``; no module path is ever read from a file and no pickle is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Iterator, TypeVar

import torch
from torch import nn

from vgz import registry
from vgz._version import __version__
from vgz.configs import ComponentConfig
from vgz.hub import resolve_folder
from vgz.utils import atomic_path, atomic_write_text

__all__ = ["ModelMixin", "WeightsError", "CONFIG_NAME", "weights_name", "load_component", "read_component_config",
           "module_sha256", "frozen"]

CONFIG_NAME = "config.json"
M = TypeVar("M", bound="ModelMixin")
_SHOW = 5  # how many key names an error lists


class WeightsError(ValueError):
    """A weights file does not fit the model: missing, unexpected or mis-shaped tensors, or unreadable."""


def weights_name(variant: str | None = None) -> str:
    """``model.safetensors`` or ``model.<variant>.safetensors``."""
    return f"model.{variant}.safetensors" if variant else "model.safetensors"


def _first(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOW])
    return shown + (f" (and {len(names) - _SHOW} more)" if len(names) > _SHOW else "")


def state_dict_problems(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                        optional: frozenset[str] | set[str] = frozenset()) -> tuple[list[str], list[str]]:
    """How ``state`` differs from a module's ``expected`` state dict: ``(problems, mis-shaped keys)``,
    each problem one phrase naming a few keys (``"2 missing: a, b"``, ``"1 unexpected: c"``,
    ``"1 with other shapes: d: expected (3,), found (4,)"``). Keys in ``optional`` may be absent."""
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_first(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_first(unexpected)}")
    if mismatched:
        shapes = [f"{k}: expected {tuple(expected[k].shape)}, found {tuple(state[k].shape)}" for k in mismatched]
        problems.append(f"{len(mismatched)} with other shapes: {_first(shapes)}")
    return problems, mismatched


def read_component_config(folder: Path) -> tuple[str, str, dict[str, Any]]:
    """Read ``folder/config.json``: ``(kind, name, config fields)``."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise FileNotFoundError(
            f"{folder} has no {CONFIG_NAME}; a vgz component folder holds {CONFIG_NAME} and "
            f"model.safetensors (found: {', '.join(present) or 'nothing'})"
        )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object, found {type(raw).__name__}")
    kind, name = raw.get("_vgz_kind"), raw.get("_vgz_name")
    if not isinstance(kind, str) or not isinstance(name, str):
        raise ValueError(f"{path} lacks '_vgz_kind'/'_vgz_name' (found {kind!r}/{name!r}); "
                         "it was not written by vgz's save_pretrained")
    fields = {k: v for k, v in raw.items() if not k.startswith("_")}
    return kind, name, fields


class ModelMixin(nn.Module):
    """Base class of vgz components.

    Subclasses set ``config_class`` and build themselves from one config; they are constructed
    either from a config object or from keyword arguments of that config::

        net = MappingNetwork(MappingConfig(z_dim=64))
        net = MappingNetwork(z_dim=64)
    """

    config_class: ClassVar[type[ComponentConfig]]
    _registry_names: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, config: ComponentConfig | dict | None = None, **kwargs: Any):
        super().__init__()
        self.config = self._make_config(config, kwargs)

    @classmethod
    def _make_config(cls, config: ComponentConfig | dict | None, kwargs: dict[str, Any]) -> Any:
        if config is None:
            return cls.config_class(**kwargs)
        if isinstance(config, dict):
            return cls.config_class.from_dict({**config, **kwargs})
        if not isinstance(config, cls.config_class):
            raise TypeError(f"{cls.__name__} takes a {cls.config_class.__name__}, got {type(config).__name__}")
        return config.replace(**kwargs) if kwargs else config

    # ----------------------------------------------------------------------------- identity

    @classmethod
    def registry_key(cls) -> tuple[str, str]:
        """``(kind, name)`` this class is registered under."""
        return registry.registry_key(cls)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Keyword arguments for a valid ``forward`` call (random, from ``generator``).

        Used by the test suite to exercise every registered component.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define example_inputs")

    # ----------------------------------------------------------------------------- saving

    def save_pretrained(self, save_directory: str | os.PathLike, *, variant: str | None = None) -> Path:
        """Write ``config.json`` and ``model[.variant].safetensors`` into ``save_directory``.

        ``config.json`` is removed first and written last: a save interrupted over an existing
        component leaves a folder that does not load, never one pairing old and new files.

        Args:
            variant: ``"fp16"`` or ``"bf16"`` stores floating tensors in that precision
                (``model.fp16.safetensors``); None stores them as they are.

        Returns:
            The folder.
        """
        from safetensors.torch import save_file

        kind, name = self.registry_key()
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        cast = {None: None, "fp16": torch.float16, "bf16": torch.bfloat16}
        if variant not in cast:
            raise ValueError(f"variant must be None, 'fp16' or 'bf16', got {variant!r}")
        # The old config goes first: a save interrupted from here on leaves a folder that does not
        # load, rather than new weights under an old config (or the reverse).
        (folder / CONFIG_NAME).unlink(missing_ok=True)
        state = {}
        for key, tensor in self.state_dict().items():
            tensor = tensor.detach().to("cpu", memory_format=torch.contiguous_format)
            if cast[variant] is not None and tensor.is_floating_point():
                tensor = tensor.to(cast[variant])
            state[key] = tensor.contiguous().clone()  # clone: safetensors refuses shared storage
        with atomic_path(folder / weights_name(variant)) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "vgz_kind": kind, "vgz_name": name})
        header = {"_vgz_kind": kind, "_vgz_name": name, "_vgz_version": __version__}
        atomic_write_text(folder / CONFIG_NAME, json.dumps({**header, **self.config.to_dict()}, indent=2) + "\n")
        return folder

    # ----------------------------------------------------------------------------- loading

    def push_to_hub(self, repo_id: str, *, commit_message: str | None = None, private: bool | None = None,
                    token: str | bool | None = None, revision: str | None = None, create_pr: bool = False,
                    variant: str | None = None, **card_kwargs: Any):
        """Save this component and upload it to the Hub repo ``repo_id`` in one commit, with a model
        card. Returns huggingface_hub's ``CommitInfo``."""
        from vgz.hub import save_and_push

        return save_and_push(self, repo_id, variant=variant, commit_message=commit_message, private=private,
                             token=token, revision=revision, create_pr=create_pr, card_kwargs=card_kwargs)

    @classmethod
    def from_pretrained(
        cls: type[M],
        pretrained: str | os.PathLike,
        *,
        subfolder: str | None = None,
        variant: str | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        strict: bool = True,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool | None = None,
        token: str | bool | None = None,
    ) -> M:
        """Load a component saved by :meth:`save_pretrained` from a folder or a Hub repo id.

        Called on ``ModelMixin`` it returns whatever component the folder holds; called on a
        concrete class it checks that the folder holds that class.

        Args:
            pretrained: local folder or Hub repo id.
            subfolder: the component's folder inside ``pretrained`` (pipelines).
            variant: load ``model.<variant>.safetensors`` (e.g. ``"fp16"``).
            dtype, device: cast / move after loading.
            strict: every tensor must match (default); False loads what fits and warns.
            revision, cache_dir, local_files_only, token: Hub options.

        Returns:
            The component in eval mode.
        """
        folder = resolve_folder(pretrained, subfolder=subfolder, revision=revision, cache_dir=cache_dir,
                                local_files_only=local_files_only, token=token)
        kind, name, fields = read_component_config(folder)
        entry = registry.get(kind, name, needed_by=str(folder / CONFIG_NAME))
        model_cls = entry.cls
        if cls is not ModelMixin and not issubclass(model_cls, cls):
            raise TypeError(f"{folder} holds {kind} {name!r} ({model_cls.__name__}), not a {cls.__name__}")
        config = model_cls.config_class.from_dict(fields, source=str(folder / CONFIG_NAME))
        with torch.random.fork_rng(devices=[]):  # the throw-away random init must not move the caller's RNG
            model = model_cls(config)
        state = _read_weights(folder, variant)
        model.load_weights(state, strict=strict, source=str(folder))
        if dtype is not None or device is not None:
            model.to(device=device, dtype=dtype)
        return model.eval()

    def load_weights(self, state: dict[str, torch.Tensor], *, strict: bool = True, source: str = "state dict") -> None:
        """Copy ``state`` into this module, with errors that name missing, unexpected and mis-shaped keys."""
        own = self.state_dict()
        problems, mismatched = state_dict_problems(own, state)
        if mismatched or (strict and problems):
            raise WeightsError(f"weights in {source} do not fit {type(self).__name__}: " + "; ".join(problems))
        if problems:
            import warnings

            warnings.warn(f"loading {source} non-strictly: " + "; ".join(problems), stacklevel=3)
        with torch.no_grad():
            for key, value in state.items():
                if key in own:
                    own[key].copy_(value)


def _read_weights(folder: Path, variant: str | None) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / weights_name(variant)
    if not path.is_file():
        # A folder holding only a precision variant still loads when no variant was asked for.
        variants = sorted(p.name for p in folder.glob("model*.safetensors"))
        if variant is None and len(variants) == 1:
            path = folder / variants[0]
        else:
            raise FileNotFoundError(
                f"{folder} has no {path.name} (weights files present: {', '.join(variants) or 'none'})"
            )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"could not read {path}: it is not a valid safetensors file ({exc})") from None


def load_component(pretrained: str | os.PathLike, **kwargs: Any) -> ModelMixin:
    """Load any saved component (class chosen by its ``config.json``); see :meth:`ModelMixin.from_pretrained`."""
    return ModelMixin.from_pretrained(pretrained, **kwargs)


def module_sha256(module: torch.nn.Module) -> str:
    """Hex SHA-256 of what a component computes: its registry name, its config and its state dict
    (names, dtypes, shapes and bytes, in name order). Independent of the device and of how the
    weights were stored; a different dtype is a different hash (it gives different latents)."""
    digest = hashlib.sha256()
    key = module.registry_key() if hasattr(module, "registry_key") else type(module).__qualname__
    config = module.config.to_dict() if hasattr(module, "config") else None
    digest.update(json.dumps({"component": key, "config": config}, sort_keys=True).encode())
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"\0{name}\0{t.dtype}\0{list(t.shape)}\0".encode())
        digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Optimise inputs, not weights: ``module``'s parameters need no gradient inside the block, and
    get back the ``requires_grad`` each had, however the block ends. Gradients are enabled inside."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        with torch.enable_grad():
            yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
