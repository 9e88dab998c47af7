"""The pipeline base class: registered components combined into one callable video generator.

A saved pipeline is a folder (or Hub repo)::

    model_index.json     {"_vgz_pipeline": "styleganv", "_vgz_version": ..., "config": {...},
                          "components": {"mapping": ["mapping", "stylegan2"], ...}}
    mapping/             one component folder each (config.json + model.safetensors)
    motion/
    synthesis/

Components are named by registry kind and name, never by module path, so loading imports only
registered code. ``VideoPipeline.from_pretrained`` finds the pipeline class through the registry.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence, TypeVar

import numpy as np
import torch

from vgz import registry
from vgz._version import __version__
from vgz.configs import ComponentConfig
from vgz.hub import resolve_folder
from vgz.modeling import ModelMixin
from vgz.utils import atomic_write_text

__all__ = ["VideoPipeline", "VideoPipelineOutput", "MODEL_INDEX", "OUTPUT_TYPES", "as_generators", "convert_frames",
           "to_unit_range"]

MODEL_INDEX = "model_index.json"
OUTPUT_TYPES = ("pt", "np", "pil")
P = TypeVar("P", bound="VideoPipeline")


@dataclass
class VideoPipelineOutput:
    """What a pipeline returns.

    Attributes:
        frames: ``[B, T, C, H, W]`` in [0, 1]: a float32 tensor (``"pt"``), a float32 array
            (``"np"``), or a list of B lists of T PIL images (``"pil"``).
        timestamps: ``[B, T]`` seconds of each frame.
        fps: the frame rate the timestamps were sampled at (None for arbitrary timestamps).
    """

    frames: Any
    timestamps: torch.Tensor
    fps: float | None = None

    def __iter__(self) -> Iterator[Any]:  # `frames, timestamps, fps = out` like a tuple
        return iter((self.frames, self.timestamps, self.fps))


def to_unit_range(raw: torch.Tensor) -> torch.Tensor:
    """Generator output in about [-1, 1] -> float32 in [0, 1]."""
    return ((raw.float() + 1) / 2).clamp(0, 1)


def convert_frames(frames: torch.Tensor, output_type: str) -> Any:
    """Frames ``[B, T, C, H, W]`` in [0, 1] -> ``output_type`` (``"pt"``, ``"np"`` or ``"pil"``)."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {', '.join(map(repr, OUTPUT_TYPES))}, got {output_type!r}")
    if output_type == "pt":
        return frames
    if output_type == "np":
        return frames.cpu().numpy()
    from PIL import Image

    uint8 = (frames * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()
    return [[Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im) for im in video] for video in uint8]


def as_generators(generator: Any, num_videos: int, device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One random generator per video.

    ``generator`` may be a ``torch.Generator`` (shared by all videos, consumed in order), an int
    seed (video i gets seed + i), a list of either (one per video), or None (seeds from torch's
    global RNG). With seeds, a video depends only on its own seed, not on the batch it is in.
    """
    if generator is None:
        seed = int(torch.randint(0, 2**62, [1]).item())
        return as_generators(seed, num_videos, device)
    if isinstance(generator, (int, np.integer)):
        return [torch.Generator(device).manual_seed(int(generator) + i) for i in range(num_videos)]
    if isinstance(generator, torch.Generator):
        return [generator] * num_videos
    if isinstance(generator, Sequence) and not isinstance(generator, str):
        if len(generator) != num_videos:
            raise ValueError(f"got {len(generator)} generators/seeds for {num_videos} videos")
        return [g for item in generator for g in as_generators(item, 1, device)]
    raise TypeError(f"generator must be a torch.Generator, an int seed or a list of them, got {type(generator).__name__}")


class VideoPipeline:
    """Base class of vgz pipelines.

    Subclasses declare their components (``{attribute: registry kind}``), a typed config of
    pipeline-level settings, and ``__call__``. This class gives them saving, loading from a folder
    or the Hub, device/dtype moves and the component listing.
    """

    config_class: ClassVar[type[ComponentConfig]]
    #: attribute name -> registry kind, for components every saved pipeline has
    component_kinds: ClassVar[dict[str, str]] = {}
    #: False for image pipelines (one-frame "videos"): video metrics refuse them.
    is_video: ClassVar[bool] = True
    #: components that may be absent (e.g. a discriminator, kept for fine-tuning)
    optional_components: ClassVar[tuple[str, ...]] = ()
    _registry_names: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, config: ComponentConfig | None = None, **components: ModelMixin | None):
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}")
        for name, kind in self.component_kinds.items():
            module = components.pop(name, None)
            if module is None and name not in self.optional_components:
                raise TypeError(f"{type(self).__name__} needs a {kind} component {name!r}")
            if module is not None:
                if not isinstance(module, ModelMixin) or module.registry_key()[0] != kind:
                    found = module.registry_key() if isinstance(module, ModelMixin) else type(module).__name__
                    raise TypeError(f"{type(self).__name__}.{name} must be a registered {kind} component, got {found}")
            setattr(self, name, module)
        if components:
            raise TypeError(f"{type(self).__name__} has no components {', '.join(sorted(components))}; "
                            f"it takes {', '.join(self.component_kinds)}")

    # ----------------------------------------------------------------------------- components

    @property
    def components(self) -> dict[str, ModelMixin]:
        """The components present, by attribute name."""
        return {n: getattr(self, n) for n in self.component_kinds if getattr(self, n, None) is not None}

    @property
    def device(self) -> torch.device:
        for module in self.components.values():
            for tensor in itertools.chain(module.parameters(), module.buffers()):
                return tensor.device
        return torch.device("cpu")

    def to(self: P, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> P:
        """Move (and cast) every component; returns the pipeline."""
        for module in self.components.values():
            module.to(device=device, dtype=dtype)
        return self

    def eval(self: P) -> P:
        for module in self.components.values():
            module.eval()
        return self

    @classmethod
    def registry_key(cls) -> tuple[str, str]:
        """``("pipeline", name)`` this class is registered under."""
        return registry.registry_key(cls)

    def __repr__(self) -> str:
        parts = [f"  {n}: {m.registry_key()[1]} {type(m).__name__} ({m.num_parameters:,} parameters)"
                 for n, m in self.components.items()]
        return f"{type(self).__name__}({self.config!r})\n" + "\n".join(parts)

    # ----------------------------------------------------------------------------- saving / loading

    def save_pretrained(self, save_directory: str | os.PathLike, *, variant: str | None = None) -> Path:
        """Write every component into its own subfolder, then ``model_index.json``.

        The index is written last: a folder interrupted while saving has no index and does not load.
        """
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        kinds = {}
        for name, module in self.components.items():
            module.save_pretrained(folder / name, variant=variant)
            kinds[name] = list(module.registry_key())
        index = {"_vgz_pipeline": self.registry_key()[1], "_vgz_version": __version__,
                 "config": self.config.to_dict(), "components": kinds}
        atomic_write_text(folder / MODEL_INDEX, json.dumps(index, indent=2) + "\n")
        return folder

    def push_to_hub(self, repo_id: str, *, commit_message: str | None = None, private: bool | None = None,
                    token: str | bool | None = None, revision: str | None = None, create_pr: bool = False,
                    variant: str | None = None, **card_kwargs: Any):
        """Save the pipeline and upload it to the Hub repo ``repo_id`` in one commit, with a model card
        (``library_name: vgz``; ``card_kwargs`` such as ``description=`` and ``training=`` fill the
        template). Returns huggingface_hub's ``CommitInfo``."""
        from vgz.hub import save_and_push

        return save_and_push(self, repo_id, variant=variant, commit_message=commit_message, private=private,
                             token=token, revision=revision, create_pr=create_pr, card_kwargs=card_kwargs)

    @classmethod
    def from_pretrained(
        cls: type[P],
        pretrained: str | os.PathLike,
        *,
        variant: str | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool | None = None,
        token: str | bool | None = None,
        **components: ModelMixin,
    ) -> P:
        """Load a pipeline saved by :meth:`save_pretrained` from a folder or a Hub repo id.

        Called on ``VideoPipeline`` it returns whichever pipeline the index names; called on a
        subclass it checks that the folder holds that pipeline. Components passed as keyword
        arguments replace the saved ones (e.g. a fine-tuned synthesis network).
        """
        hub = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
        folder = resolve_folder(pretrained, **hub)
        index_path = folder / MODEL_INDEX
        if not index_path.is_file():
            hint = " (it holds a single component: load it with vgz.load_component)" if (folder / "config.json").is_file() else ""
            raise FileNotFoundError(f"{folder} has no {MODEL_INDEX}; it is not a saved vgz pipeline{hint}")
        try:
            index = json.loads(index_path.read_text())
            name, config_fields, saved = index["_vgz_pipeline"], index.get("config", {}), index["components"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{index_path} is not a vgz pipeline index ({type(exc).__name__}: {exc})") from None
        pipeline_cls = registry.get("pipeline", name).cls
        if cls is not VideoPipeline and not issubclass(pipeline_cls, cls):
            raise TypeError(f"{folder} holds pipeline {name!r} ({pipeline_cls.__name__}), not a {cls.__name__}")
        config = pipeline_cls.config_class.from_dict(config_fields, source=str(index_path))
        loaded: dict[str, ModelMixin] = {}
        for attr, kind in pipeline_cls.component_kinds.items():
            if attr in components:
                loaded[attr] = components.pop(attr)
                continue
            if attr not in saved:
                if attr in pipeline_cls.optional_components:
                    continue
                raise ValueError(f"{index_path} lists no {attr!r} component (it lists {', '.join(saved)})")
            entry = saved[attr]
            if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == kind):
                raise ValueError(f"{index_path}: components.{attr} must be [{kind!r}, name], found {entry!r}")
            sub = folder / attr
            if not sub.is_dir():
                raise FileNotFoundError(f"{folder} has no folder {attr!r}, which {MODEL_INDEX} lists")
            module = ModelMixin.from_pretrained(sub, variant=variant, dtype=dtype, device=device)
            if module.registry_key() != tuple(entry):
                raise ValueError(f"{sub} holds {module.registry_key()}, but {index_path} says {tuple(entry)}")
            loaded[attr] = module
        if components:
            raise TypeError(f"{pipeline_cls.__name__} has no components {', '.join(sorted(components))}")
        return pipeline_cls(config, **loaded).eval()
