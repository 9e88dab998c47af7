"""Loading feature detectors: a file, a folder or a Hub repo id in, a :class:`FeatureDetector` out.

The format is told from the content: TorchScript files (StyleGAN-V's ``i3d_torchscript.pt``,
StyleGAN2-ADA's ``inception-2015-12-05.pt``) run as :class:`TorchScriptDetector`, called as the
official metric code calls them; state dicts run in vgz's own I3D (:mod:`vgz.metrics.i3d`) or FID
Inception (:mod:`vgz.metrics.inception`). The contract every detector follows (uint8 frames in, one
feature vector per clip or image out) and the shared helpers live in :mod:`vgz.metrics.features`,
re-exported here.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from vgz.metrics.features import (WEIGHT_SUFFIXES, DetectorError, FeatureDetector, check_detector,
                                  check_state_dict, file_sha256, randomize_, read_state_dict, weights_sha256)
from vgz.metrics.i3d import load_i3d
from vgz.metrics.inception import load_inception

__all__ = ["FeatureDetector", "TorchScriptDetector", "DetectorError", "load_detector", "read_state_dict",
           "resolve_detector_file", "file_sha256", "check_state_dict", "check_detector", "KNOWN_FILES", "randomize_"]


class TorchScriptDetector(FeatureDetector):
    """A TorchScript detector called as the official metric code calls it.

    Video (StyleGAN-V's ``i3d_torchscript.pt``): ``module(x, rescale=True, resize=True,
    return_features=True)`` on uint8 ``[B, C, T, H, W]``. Image (the TorchScript
    ``inception-2015-12-05.pt`` of StyleGAN2-ADA): ``module(x, return_features=True)`` on uint8
    ``[N, C, H, W]``.
    """

    def __init__(self, module: torch.jit.ScriptModule, kind: str, name: str | None = None,
                 call_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if kind not in ("video", "image"):
            raise ValueError(f"kind must be 'video' or 'image', got {kind!r}")
        self.kind = kind  # type: ignore[misc]  # per instance: the file decides
        self.module = module
        self.name = name or f"{kind}-torchscript"
        if call_kwargs is None:
            call_kwargs = (dict(rescale=True, resize=True, return_features=True) if kind == "video"
                           else dict(return_features=True))
        self.call_kwargs = call_kwargs
        self.settings = {"call": call_kwargs}
        self.feature_dim = 0  # known after the first call

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "video":
            x = x.permute(0, 2, 1, 3, 4).contiguous()  # the official detector takes [B, C, T, H, W]
        out = self.module(x, **self.call_kwargs)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise DetectorError(f"{self.label}: expected features [{x.shape[0]}, D] from the TorchScript module, "
                             f"found {type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
        self.feature_dim = out.shape[1]
        return out


# --------------------------------------------------------------------------------- loading

#: File names looked for in a folder or Hub repo given as a detector, in this order.
KNOWN_FILES = ("i3d_torchscript.pt", "i3d_pretrained_400.pt", "inception-2015-12-05.pt",
               "pt_inception-2015-12-05-6726825d.pth")
# A key prefix only each family's state dict has (I3D's 3D stem, Inception-v3's 2D stem).
I3D_KEY, INCEPTION_KEY = "Conv3d_1a_7x7", "Conv2d_1a_3x3"


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zips holding ``constants.pkl`` and a ``code/`` folder; torch.save
    state dicts are zips with ``data.pkl`` only (or legacy non-zip pickles)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _torchscript_kind(module: torch.jit.ScriptModule, path: Path) -> str:
    try:
        args = [a.name for a in module.forward.schema.arguments]
    except AttributeError as exc:
        raise DetectorError(f"{path}: expected a TorchScript module with a forward method, found none") from exc
    if "rescale" in args or "resize" in args:
        return "video"  # StyleGAN-V's i3d_torchscript.pt: forward(x, rescale, resize, return_features)
    if "return_features" in args:
        return "image"  # StyleGAN2-ADA's inception-2015-12-05.pt: forward(x, return_features)
    raise DetectorError(f"{path}: expected a TorchScript detector taking (x, rescale, resize, return_features) "
                        f"like StyleGAN-V's i3d_torchscript.pt or (x, return_features) like inception-2015-12-05.pt, "
                        f"found forward({', '.join(args[1:])})")


def _state_dict_family(state: dict[str, torch.Tensor], path: Path) -> str:
    keys = state.keys()
    if any(I3D_KEY in k for k in keys):
        return "i3d"
    if any(INCEPTION_KEY in k for k in keys):
        return "inception"
    shown = ", ".join(list(keys)[:4])
    raise DetectorError(f"{path}: expected the state dict of an I3D (keys like '{I3D_KEY}...', as in "
                        f"i3d_pretrained_400.pt) or of the FID Inception (keys like '{INCEPTION_KEY}...', as in "
                        f"pt_inception-2015-12-05-6726825d.pth), found keys {shown}...")


def resolve_detector_file(ref: str | os.PathLike, *, revision: str | None = None,
                          cache_dir: str | os.PathLike | None = None, local_files_only: bool | None = None,
                          token: str | bool | None = None) -> Path:
    """The local file a detector reference names.

    ``ref`` is a file, a folder holding one of :data:`KNOWN_FILES` (or a single weights file), a
    Hub repo id ``org/name`` (the same rule inside the repo), or ``org/name/path/in/repo.pt``.
    Hub files come from the Hub cache when offline (``HF_HUB_OFFLINE=1``).
    """
    from vgz.hub import ModelNotFoundError, is_repo_id, resolve_folder

    path = Path(ref).expanduser()
    if path.is_file():
        return path
    if not path.exists():
        text = str(ref)
        parts = text.split("/")
        if len(parts) > 2 and is_repo_id("/".join(parts[:2])) and not text.startswith((".", "/")):
            repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
            from huggingface_hub import hf_hub_download

            try:
                return Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache_dir,
                                            local_files_only=bool(local_files_only), token=token))
            except Exception as exc:  # noqa: BLE001 - offline, missing file, auth: one clear message
                raise DetectorError(f"{ref}: no local file, and {filename!r} could not be had from Hub repo "
                                    f"{repo!r}: {type(exc).__name__}: {exc}") from exc
        try:
            path = resolve_folder(text, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                                  token=token)
        except ModelNotFoundError as exc:
            raise DetectorError(f"detector {text!r}: expected a file, a folder or a Hub repo id holding one of "
                                f"{', '.join(KNOWN_FILES)}; {exc}") from exc
    for name in KNOWN_FILES:
        if (path / name).is_file():
            return path / name
    weights = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if len(weights) == 1:
        return weights[0]
    raise DetectorError(f"{path}: expected one of {', '.join(KNOWN_FILES)} or a single weights file, found "
                        f"{', '.join(p.name for p in weights) or 'none'}")


def load_detector(ref: str | os.PathLike, *, kind: str | None = None, bn_eps: float | None = None,
                  device: torch.device | str = "cpu", **hub_kwargs: Any) -> FeatureDetector:
    """Load a feature detector from a file, a folder or the Hub, its format told from its content.

    * a TorchScript file (StyleGAN-V's ``i3d_torchscript.pt``, StyleGAN2-ADA's ``inception-2015-12-05.pt``)
      becomes a :class:`TorchScriptDetector` called as the official code calls it;
    * an I3D state dict (``i3d_pretrained_400.pt``, the VideoGPT/TATS port) becomes vgz's I3D, with
      batch-norm epsilon ``bn_eps`` (the port's 1e-5 by default; 1e-3 as in the TF-Hub original);
    * an Inception state dict (``pt_inception-2015-12-05-6726825d.pth``) becomes vgz's FID Inception.

    Args:
        ref: see :func:`resolve_detector_file`.
        kind: ``"video"`` or ``"image"`` to insist on one (a clear error otherwise).
        hub_kwargs: ``revision``, ``cache_dir``, ``local_files_only``, ``token``.

    Raises:
        DetectorError: naming the file, what was expected and what was found. Pickles (``.pkl``)
        are refused: loading them runs the code stored in them.
    """
    path = resolve_detector_file(ref, **hub_kwargs)
    if path.suffix == ".pkl":
        raise DetectorError(f"{path}: a pickle runs the code stored in it when loaded, so vgz does not load "
                            "detector pickles; use the TorchScript file (i3d_torchscript.pt, "
                            "inception-2015-12-05.pt) or a state dict (.pt/.pth/.safetensors)")
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # recent torch deprecates TorchScript; the official detectors are in it
                warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+. is deprecated", category=FutureWarning)
                module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # noqa: BLE001
            raise DetectorError(f"{path}: expected a TorchScript detector, torch.jit.load failed: {exc}") from exc
        found = _torchscript_kind(module, path)
        name = path.stem.replace("_", "-")
        detector: FeatureDetector = TorchScriptDetector(module, found, name=name)
    else:
        state = read_state_dict(path)  # read once: the keys tell the family, the loader takes the tensors
        if _state_dict_family(state, path) == "i3d":
            detector = load_i3d(path, bn_eps=bn_eps, state=state)
        else:
            detector = load_inception(path, state=state)
    if kind is not None and detector.kind != kind:
        raise DetectorError(f"{path}: expected a {kind} detector, found a {detector.kind} one ({detector.name})")
    detector.source = str(ref)
    if detector.sha256 is None:
        detector.sha256 = file_sha256(path)
    detector.weights_sha256 = weights_sha256(detector)
    return detector.eval().requires_grad_(False).to(device)
