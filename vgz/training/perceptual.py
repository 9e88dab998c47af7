"""Loss networks with weights that come from files: LPIPS (the ``lpips`` package) and ArcFace.

Nothing here downloads. LPIPS's linear heads ship inside the ``lpips`` package; its backbone
(AlexNet or VGG16 on ImageNet, torchvision's weights) is read from the file given, or from the
torch hub cache where torchvision keeps it (``torch.hub.get_dir()/checkpoints``). When neither has
it, the error names the file and where it comes from. ``random_backbone=True`` (tests) skips it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LPIPS_BACKBONES", "WeightsNotFoundError", "load_lpips", "load_arcface", "identity_loss"]

#: torchvision's ImageNet weights of each LPIPS backbone (the file names in the torch hub cache).
LPIPS_BACKBONES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
}
_DOWNLOADS = "https://download.pytorch.org/models/"


class WeightsNotFoundError(FileNotFoundError):
    """A loss network's weights file is not there (nothing is downloaded at run time)."""


def _read_state(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or a pickle with code in it
        raise ValueError(f"{path}: cannot be read as {what} weights (a state dict of tensors): "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict of {what} weights, found a {type(state).__name__}")
    return state


def load_lpips(net: str = "alex", backbone: str | os.PathLike | None = None, *,
               random_backbone: bool = False) -> nn.Module:
    """LPIPS (Zhang et al. 2018) as pSp uses it: ``lpips(x, y)`` of images in [-1, 1] -> ``[N, 1, 1, 1]``.

    Args:
        net: ``"alex"`` (pSp) or ``"vgg"``.
        backbone: the backbone's torchvision weights file; default: the torch hub cache's.
        random_backbone: random backbone weights (tests only: the distances mean nothing).

    Raises:
        WeightsNotFoundError: the backbone weights are in neither place (the message says which file).
    """
    import lpips

    if net not in LPIPS_BACKBONES:
        raise ValueError(f"LPIPS net {net!r}: choose one of {', '.join(LPIPS_BACKBONES)}")
    path = None
    if not random_backbone:
        name = LPIPS_BACKBONES[net]
        path = Path(backbone) if backbone is not None else Path(torch.hub.get_dir()) / "checkpoints" / name
        if not path.is_file():
            where = f"{path} does not exist" if backbone is not None else f"it is not in the torch hub cache ({path})"
            raise WeightsNotFoundError(
                f"LPIPS ({net}) needs torchvision's ImageNet weights {name}, and {where}. Download "
                f"{_DOWNLOADS}{name} to {path.parent}/ (or pass its path as the LPIPS backbone weights); "
                "nothing is downloaded at run time")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's notes on its deprecated `pretrained` argument
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    if path is not None:
        state = _read_state(path, f"torchvision {net}")
        # lpips slices torchvision's `features` into slice1..5 keeping the layer indices.
        mine = {name.split(".", 1)[1]: name for name, _ in model.net.named_parameters()}
        loaded = {mine[k[len("features."):]]: v for k, v in state.items()
                  if k.startswith("features.") and k[len("features."):] in mine}
        missing = sorted(set(mine.values()) - set(loaded))
        if missing:
            raise ValueError(f"{path}: not torchvision's {net} weights (no features.* for {', '.join(missing[:4])})")
        model.net.load_state_dict(loaded)
    return model.eval().requires_grad_(False)


def load_arcface(path: str | os.PathLike) -> nn.Module:
    """pSp's identity network, ArcFace IR-SE50, from ``model_ir_se50.pth`` (frozen, eval mode)."""
    from vgz.encoders.irse import ArcFace

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"the identity loss needs ArcFace IR-SE50 weights, model_ir_se50.pth, and {path} does not exist; "
            "pSp's README links it (TreB1eN/InsightFace_Pytorch's model_ir_se50.pth)")
    net = ArcFace()
    net.load_state_dict(_read_state(path, "ArcFace IR-SE50"))
    return net


def identity_loss(arcface: nn.Module, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """pSp's (and StyleInV's) ``IDLoss``: ``1 - cos`` of ArcFace embeddings of the central face crop
    (rows 35:223, columns 32:220 of 256x256 images, pooled to 112x112), ``y`` detached; a scalar."""
    def feats(images: torch.Tensor) -> torch.Tensor:
        return arcface(F.adaptive_avg_pool2d(images[:, :, 35:223, 32:220], (112, 112)))

    return (1 - (feats(y_hat) * feats(y).detach()).sum(dim=1)).mean()
