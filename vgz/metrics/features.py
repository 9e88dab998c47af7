"""The feature-detector contract, shared by every detector and by the code that loads them.

A detector is a :class:`FeatureDetector` (an ``nn.Module``):

* ``kind == "video"``: ``uint8 [B, T, C, H, W] -> float32 [B, feature_dim]`` (one clip each);
* ``kind == "image"``: ``uint8 [N, C, H, W] -> float32 [N, feature_dim]``.

Single-channel input is repeated to RGB, as the official metric code does. Each detector carries
``name`` (what it is), ``source`` (the file or reference it was loaded from), ``sha256`` (of that
file, None for random weights) and ``settings`` (everything else that changes its features), which
the metric protocol records.

A detector whose output cannot give a meaningful Frechet distance is refused with a
:class:`DetectorError` naming it: features that are not ``[B, D]`` with ``D >= 2``, that are not
finite (:meth:`FeatureDetector.forward`), or that do not change with the input
(:func:`check_detector`: a constant detector makes every distance 0).

This module imports neither :mod:`vgz.metrics.i3d` nor :mod:`vgz.metrics.inception` (they build on
it); :mod:`vgz.metrics.detectors` loads files into either.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

__all__ = ["FeatureDetector", "DetectorError", "read_state_dict", "file_sha256", "weights_sha256", "check_state_dict",
           "check_detector", "randomize_", "save_torchscript", "WEIGHT_SUFFIXES"]

WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors", ".bin")


class DetectorError(ValueError):
    """A detector file or reference cannot be used: says which file, what was expected, what was found."""


class FeatureDetector(nn.Module):
    """Base of feature detectors. Subclasses implement :meth:`features` on checked input."""

    kind: ClassVar[str] = "video"  # "video" or "image"
    feature_dim: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.name = type(self).__name__
        self.sha256: str | None = None  # of the file it was loaded from
        self.weights_sha256: str | None = None  # of what it computes with (see weights_sha256)
        self.source: str | None = None
        self.settings: dict[str, Any] = {}

    @property
    def label(self) -> str:
        """How messages name this detector: the file (or reference) it came from, else its name."""
        return self.source or self.name

    def describe(self) -> dict[str, Any]:
        """What the metric protocol records about this detector (JSON-safe)."""
        return {"name": self.name, "kind": self.kind, "feature_dim": self.feature_dim, "sha256": self.sha256,
                "weights_sha256": self.weights_sha256, "source": self.source,
                **({"settings": self.settings} if self.settings else {})}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ndim = 5 if self.kind == "video" else 4
        layout = "[B, T, C, H, W]" if self.kind == "video" else "[N, C, H, W]"
        if x.dtype != torch.uint8 or x.ndim != ndim or x.shape[-3] not in (1, 3):
            raise ValueError(f"{self.name}: expected uint8 {layout} with 1 or 3 channels, "
                             f"found {x.dtype} {tuple(x.shape)}")
        if x.shape[-3] == 1:
            x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
        out = self.features(x)
        _check_output(self, out, x.shape[0])
        return out.float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 RGB input of this detector's layout -> ``[B, feature_dim]``."""
        raise NotImplementedError


def _check_output(detector: FeatureDetector, out: Any, batch: int) -> None:
    """Refuse output no Frechet distance can use (a wrong or broken detector file)."""
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != batch:
        raise DetectorError(f"{detector.label}: expected features [{batch}, D] from the detector, found "
                            f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
    if out.shape[1] < 2:
        # One number per item (a score, a logit) or none: the distance would compare almost nothing.
        raise DetectorError(f"{detector.label}: expected at least 2 features per item (I3D gives 400, Inception "
                            f"2048), found {out.shape[1]}: not a feature detector")
    if not torch.isfinite(out).all():
        raise DetectorError(f"{detector.label}: expected finite features, found NaN or infinite values for "
                            "finite uint8 input (broken weights?)")


@torch.no_grad()
def check_detector(detector: FeatureDetector, *, resolution: int, num_frames: int = 16,
                   device: torch.device | str | None = None) -> None:
    """Refuse a detector that gives the same features for a black and a noise input.

    Such a detector gives every model a Frechet distance of 0 (features constant across samples:
    equal means, zero covariances). Two inputs at ``resolution`` (``num_frames`` frames for a video
    detector) cost little next to an evaluation, so this runs before it.

    Raises:
        DetectorError: naming the detector's file; also for output of the wrong shape, of fewer
            than 2 features, or not finite.
    """
    device = device if device is not None else next((p.device for p in detector.parameters()), "cpu")
    shape = (num_frames, 3, resolution, resolution) if detector.kind == "video" else (3, resolution, resolution)
    noise = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    probe = torch.stack([torch.zeros(shape, dtype=torch.uint8), noise]).to(device)
    features = detector(probe).double()
    spread = (features[0] - features[1]).abs().max().item()
    scale = features.abs().max().item()
    if spread <= 1e-6 * max(scale, 1.0):
        raise DetectorError(f"{detector.label}: expected features that change with the input, found the same "
                            f"{features.shape[1]} features for a black and a noise "
                            f"{'clip' if detector.kind == 'video' else 'image'} (largest difference {spread:.3g}); "
                            "such a detector makes every Frechet distance 0: use the real weights file")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (what the metric protocol records as the detector's identity)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch.save file (``.pt``/``.pth``/``.bin``), read without
    running pickled code (``torch.load(weights_only=True)``); a ``{"state_dict": ...}`` wrapper and a
    ``module.`` prefix (DataParallel) are unwrapped."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise DetectorError(f"{path}: expected a .safetensors, .pt or .pth state dict file, found suffix {suffix!r}")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:  # weights_only: tensors and plain containers; a full unpickle could run any code
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt, or a pickle of more than tensors
        first = (str(exc).strip().splitlines() or [""])[0]
        raise DetectorError(f"{path}: cannot be read as a state dict of tensors ({type(exc).__name__}: "
                            f"{first[:300]})") from exc
    if not isinstance(state, dict):
        raise DetectorError(f"{path}: expected a state dict (a mapping of names to tensors), found {type(state).__name__}")
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise DetectorError(f"{path}: expected a flat state dict of tensors, found non-tensor entries "
                            f"{_few(not_tensors)}")
    return state


def _few(keys: Sequence[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


def check_state_dict(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: str | os.PathLike,
                     what: str) -> dict[str, torch.Tensor]:
    """``state`` checked against a module's ``expected`` state dict: the same keys and shapes, except
    batch-norm ``num_batches_tracked`` counters, which may be absent (files converted from TF have
    none; they only matter for training) and are filled with 0.

    Raises:
        DetectorError: ``"{path}: expected {what}, found ..."`` with a few of the missing,
            unexpected or mis-shaped keys.
    """
    from vgz.modeling import state_dict_problems

    optional = {k for k in expected if k.endswith(".num_batches_tracked")}
    problems, _ = state_dict_problems(expected, state, optional)
    if problems:
        raise DetectorError(f"{path}: expected {what} ({len(expected) - len(optional)} tensors), found "
                            f"{len(state)} tensors with " + "; ".join(problems))
    zero = torch.zeros((), dtype=torch.long)
    return {k: state[k] if k in state else zero for k in expected}


def weights_sha256(module: nn.Module) -> str:
    """Hex SHA-256 of what ``module`` computes with: every tensor of its state dict (name, dtype,
    shape, values) and, for TorchScript, the code of each submodule with TorchScript's per-process
    type numbering (``___torch_mangle_N``) removed. Unlike the file's hash it does not change when
    the same network is exported again (TorchScript archives also hold source paths and type
    numbers), so it keys cached statistics."""
    digest = hashlib.sha256(b"vgz-weights/1\0")
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for name, sub in sorted(module.named_modules(), key=lambda kv: kv[0]):
        code = getattr(sub, "code", None) if isinstance(sub, torch.jit.ScriptModule) else None
        if isinstance(code, str):
            digest.update(f"{name}\0{re.sub(r'___torch_mangle_[0-9]+', '', code)}\0".encode())
    return digest.hexdigest()


def save_torchscript(module: torch.jit.ScriptModule, path: str | os.PathLike) -> Path:
    """Write a TorchScript ``module`` to ``path`` (under a temporary name, then renamed) without its
    debug records, which hold the source files' paths, and with records named ``archive/`` whatever
    the file's name. The bytes still vary between processes (TorchScript numbers the types it
    compiles per process and orders class constants by Python's string hashing): identify
    detectors by :func:`weights_sha256`."""
    import io

    from vgz.utils import atomic_path

    # In memory: written to a file, the archive's records would be named after the (temporary) file.
    saved = io.BytesIO()
    torch.jit.save(module, saved)
    reader = torch._C.PyTorchFileReader(io.BytesIO(saved.getvalue()))
    stripped = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(stripped)
    for record in sorted(reader.get_all_records()):
        if not record.endswith(".debug_pkl"):
            data = reader.get_record(record)
            writer.write_record(record, data, len(data))
    writer.write_end_of_file()
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(stripped.getvalue())
    return path


@torch.no_grad()
def randomize_(detector: nn.Module, seed: int = 0) -> nn.Module:
    """Give ``detector`` random weights whose features still depend on the input (tests, benchmarks).

    PyTorch's default initialisation followed by identity batch norms shrinks activations layer
    after layer until a deep detector outputs the same features for every input; He-normal
    convolutions keep them at unit scale through the ReLUs.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in detector.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            fan_in = module.weight[0].numel()
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            if module.bias is not None:
                module.bias.zero_()
    return detector
