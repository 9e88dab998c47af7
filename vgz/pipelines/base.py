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
import math
import operator
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence, TypeVar

import numpy as np
import torch

from vgz import registry
from vgz._version import __version__
from vgz.configs import ComponentConfig
from vgz.data.video import raw_to_uint8
from vgz.hub import resolve_folder
from vgz.modeling import ModelMixin
from vgz.utils import atomic_write_text

__all__ = ["VideoPipeline", "VideoPipelineOutput", "MODEL_INDEX", "OUTPUT_TYPES", "NonFiniteOutputError",
           "as_generators", "check_count", "check_finite_frames", "check_number", "check_output_type", "convert_frames",
           "finish_frames", "load_images", "raw_to_uint8", "to_unit_range"]

MODEL_INDEX = "model_index.json"
OUTPUT_TYPES = ("pt", "np", "pil", "uint8", "raw")
P = TypeVar("P", bound="VideoPipeline")


@dataclass
class VideoPipelineOutput:
    """What a pipeline returns.

    Attributes:
        frames: ``[B, T, C, H, W]``: in [0, 1] as a float32 tensor (``"pt"``), a float32 array
            (``"np"``) or a list of B lists of T PIL images (``"pil"``); a uint8 tensor (``"uint8"``,
            converted as StyleGAN-V's metric code does, see :func:`raw_to_uint8`); or the generator's
            own output, float32 in about [-1, 1] and not clamped (``"raw"``).
        timestamps: ``[B, T]`` seconds of each frame.
        fps: the frame rate the timestamps were sampled at (None for arbitrary timestamps).
    """

    frames: Any
    timestamps: torch.Tensor
    fps: float | None = None

    def __iter__(self) -> Iterator[Any]:  # `frames, timestamps, fps = out` like a tuple
        return iter((self.frames, self.timestamps, self.fps))


class NonFiniteOutputError(ValueError):
    """The generator produced NaN or infinite values: its weights or inputs are not finite.

    Attributes:
        videos: indices (in the batch) of the videos with non-finite frames.
        frames: ``(first, last)`` frame indices of the chunk they were found in.
    """

    def __init__(self, message: str, videos: list[int], frames: tuple[int, int]):
        super().__init__(message)
        self.videos, self.frames = videos, frames


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``: a bool, float or other non-integer is a TypeError (a count
    of 2.5 videos is a mistake, not something to round), a smaller integer a ValueError."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= {minimum}, got the bool {value!r}")
    try:
        number = operator.index(value)  # ints, numpy integers and integer 0-d tensors; never floats
    except TypeError:
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})") from None
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


def check_number(name: str, value: Any, *, positive: bool = False) -> float:
    """``value`` as a finite float (> 0 with ``positive``: a frame rate, a time scale); NaN, inf, a
    bool or a non-number is an error naming ``name``."""
    want = "> 0 and finite" if positive else "a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be {want}, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or (positive and not value > 0):
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return float(value)


def check_output_type(output_type: str) -> None:
    """Refuse an ``output_type`` other than ``"pt"``, ``"np"``, ``"pil"``, ``"uint8"`` or ``"raw"``."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {', '.join(map(repr, OUTPUT_TYPES))}, got {output_type!r}")


def _seeds_of(generator: Any, num_videos: int) -> list[int] | None:
    """The int seed of each video, when ``generator`` gives them (see :func:`as_generators`)."""
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return [int(generator) + i for i in range(num_videos)]
    if isinstance(generator, Sequence) and not isinstance(generator, str) and len(generator) == num_videos \
            and all(isinstance(g, (int, np.integer)) for g in generator):
        return [int(g) for g in generator]
    return None


def check_finite_frames(raw: torch.Tensor, first_frame: int, generator: Any = None, video_offset: int = 0,
                        num_videos: int | None = None) -> None:
    """Raise :class:`NonFiniteOutputError` when generator output ``raw [B, T, C, H, W]`` holds NaN or
    inf (it would be written as black or white frames); the message names the videos (their seeds
    when ``generator`` gives them) and frames ``first_frame ..``. ``video_offset`` places this batch
    among ``num_videos`` videos."""
    finite = torch.isfinite(raw).flatten(1).all(1)
    if bool(finite.all()):
        return
    videos = [video_offset + int(i) for i in (~finite).nonzero().flatten().tolist()]
    seeds = _seeds_of(generator, num_videos if num_videos is not None else raw.shape[0])
    names = [str(seeds[v]) for v in videos] if seeds is not None else [str(v) for v in videos]
    noun = ("seed" if seeds is not None else "video") + ("s" if len(videos) > 1 else "")
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    last = first_frame + raw.shape[1] - 1
    raise NonFiniteOutputError(
        f"the generator produced NaN or infinite values for {noun} {shown} (frames {first_frame}-{last}): the model's "
        "weights or the inputs (truncation_psi, z, motion_z, labels) are not finite", videos, (first_frame, last))


def to_unit_range(raw: torch.Tensor) -> torch.Tensor:
    """Generator output in about [-1, 1] -> float32 in [0, 1]."""
    return ((raw.float() + 1) / 2).clamp(0, 1)


def finish_frames(raw: torch.Tensor, output_type: str) -> Any:
    """Generator output ``raw [B, T, C, H, W]`` (about [-1, 1]) -> frames of ``output_type``: ``"raw"``
    as they are (float32), ``"uint8"`` by :func:`raw_to_uint8`, the others in [0, 1] through
    :func:`convert_frames`. A float32 ``raw`` may be overwritten (no copy of a long video is made)."""
    check_output_type(output_type)
    if output_type == "raw":
        return raw.float()
    if output_type == "uint8":
        return raw_to_uint8(raw)
    return convert_frames(raw.float().add_(1).div_(2).clamp_(0, 1), output_type)  # to_unit_range, in place


def convert_frames(frames: torch.Tensor, output_type: str) -> Any:
    """Frames ``[B, T, C, H, W]`` in [0, 1] -> ``output_type`` (``"pt"``, ``"np"`` or ``"pil"``)."""
    check_output_type(output_type)
    if output_type in ("uint8", "raw"):
        raise ValueError(f"output_type {output_type!r} is made from the generator's output (finish_frames), "
                         "not from frames in [0, 1]")
    if output_type == "pt":
        return frames
    if output_type == "np":
        return frames.cpu().numpy()
    from PIL import Image

    uint8 = (frames * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()
    return [[Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im) for im in video] for video in uint8]


def load_images(image: Any) -> torch.Tensor:
    """A path, PIL image, ``[H, W, C]`` uint8 array or ``[C, H, W]`` / ``[N, C, H, W]`` tensor in [0, 1]
    (or a list of such) -> uint8 ``[N, 3, H, W]``."""
    if isinstance(image, (list, tuple)):
        return torch.cat([load_images(i) for i in image])
    from vgz.data.frame_folder import image_to_rgb8

    if isinstance(image, (str, os.PathLike)):
        from PIL import Image

        try:
            with Image.open(image) as opened:
                image = image_to_rgb8(opened, where=str(image))  # 16-bit and palette images as frame folders read them
        except OSError as exc:
            raise ValueError(f"{image}: not a readable image ({exc})") from None
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        image = image_to_rgb8(image)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] not in (1, 3) or image.dtype != np.uint8:
            raise ValueError(f"an image array must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
        image = torch.from_numpy(np.array(image)).permute(2, 0, 1).expand(3, -1, -1)
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4) or image.shape[-3] != 3:
        found = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"expected an image: a path, a PIL image, [H, W, 3] uint8, or [3, H, W] / [N, 3, H, W] in "
                         f"[0, 1], got {found}")
    if image.dtype != torch.uint8:
        image = (image.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return image.reshape(-1, *image.shape[-3:])


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

        Over an existing pipeline the old index is removed first and the new one written last: a
        save interrupted in between leaves a folder that does not load, never one that pairs old and
        new components. Other files there (the model card ``README.md``, evaluation results) stay;
        component folders of the old pipeline that this one lacks are removed.
        """
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        index_path = folder / MODEL_INDEX
        old_components = _listed_components(index_path)
        index_path.unlink(missing_ok=True)
        kinds = {}
        for name, module in self.components.items():
            module.save_pretrained(folder / name, variant=variant)
            kinds[name] = list(module.registry_key())
        # Components of an earlier save that this pipeline lacks (e.g. a dropped discriminator) would
        # ship with the folder (`vgz push` uploads every file): those the old index lists, and folders
        # named after this class's components (the index is gone when an earlier save was interrupted).
        for name in (old_components | set(self.component_kinds)) - set(kinds):
            stale = folder / name
            if stale.is_dir() and not stale.is_symlink() and (stale / "config.json").is_file():
                shutil.rmtree(stale)
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
            hint = ""
            if (folder / "config.json").is_file():
                hint = " (it holds a single component: load it with vgz.load_component)"
            elif folder.is_dir():
                parts = sorted(p.name for p in folder.iterdir() if (p / "config.json").is_file())
                if parts:
                    hint = (f" (it holds component folders {', '.join(parts)} but no index: a save_pretrained that "
                            "was interrupted? Save the pipeline again)")
            raise FileNotFoundError(f"{folder} has no {MODEL_INDEX}; it is not a saved vgz pipeline{hint}")
        try:
            index = json.loads(index_path.read_text())
            name, config_fields, saved = index["_vgz_pipeline"], index.get("config", {}), index["components"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{index_path} is not a vgz pipeline index ({type(exc).__name__}: {exc})") from None
        pipeline_cls = registry.get("pipeline", name, needed_by=str(index_path)).cls
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


def _listed_components(index_path: Path) -> set[str]:
    """Component names an existing ``model_index.json`` lists (none when absent or unreadable)."""
    try:
        components = json.loads(index_path.read_text()).get("components", {})
    except (OSError, ValueError, AttributeError):
        return set()
    return {name for name in components if isinstance(name, str) and name and "/" not in name
            and not name.startswith(".")} if isinstance(components, dict) else set()
