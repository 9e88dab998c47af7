"""Convert pSp checkpoints into :class:`~vgz.pipelines.psp.PSPPipeline` folders.

    vgz convert psp psp_ffhq_encode.pt psp-faces/        # eladrich/pixel2style2pixel (coach.py)
    vgz convert psp network-snapshot-000100.pkl psp-sky/  # StyleInV's pSp stage ({'pSp', 'G'})

Two formats:

* pSp's ``coach.py`` checkpoints, ``torch.save({'state_dict', 'opts', 'latent_avg'})``: read with
  ``torch.load(weights_only=True)``, so ``opts`` is read as data, never as code. The encoder is
  ``state_dict['encoder.*']`` (``opts.encoder_type``), the decoder ``state_dict['decoder.*']``, a
  rosinality StyleGAN2 (converted by :mod:`vgz.conversion.stylegan2_rosinality`);
* StyleInV's pSp-stage snapshots, ``pickle.dump({'pSp', 'G', ...})`` of NVlabs persistent
  networks: read by vgz's restricted pickle reader (:mod:`vgz.conversion.pickles`). Its ``pSp``
  holds a W encoder and the ``latent_avg`` it adds; its ``G`` is a StyleGAN2-ADA generator.

Encoders were trained on 256x256 inputs in both codes (their datasets' transforms); pass
``input_size`` for another.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from vgz.conversion.stylegan2_ada import ConversionError
from vgz.utils import atomic_dir

__all__ = ["psp_pipeline", "convert_psp"]

_ENCODERS = {"GradualStyleEncoder": "psp", "BackboneEncoderUsingLastLayerIntoW": "psp-w"}


def _opts(value: Any, path: Any) -> dict[str, Any]:
    """pSp's opts (a dict in coach.py checkpoints; an argparse.Namespace or EasyDict elsewhere)."""
    from vgz.conversion.pickles import PickledObject, _plain

    if isinstance(value, PickledObject):  # an EasyDict holds items; an argparse.Namespace its __dict__ as state
        value = _plain(value) if value.items or value.name == "EasyDict" else value.state
    elif value is not None and not isinstance(value, dict):
        value = getattr(value, "__dict__", value)  # an argparse.Namespace read by torch.load
    if not isinstance(value, dict):
        raise ConversionError(f"{path}: opts is a {type(value).__name__}, expected pSp's options (a dict)")
    return value


def _encoder(opts: Mapping[str, Any], state: dict[str, torch.Tensor], latent_avg: torch.Tensor | None,
             input_size: int, path: Any):
    from vgz.encoders.psp import GradualStyleEncoder, GradualStyleEncoderConfig, WEncoder, WEncoderConfig

    encoder_type = opts.get("encoder_type", "GradualStyleEncoder")
    if encoder_type not in _ENCODERS:
        raise ConversionError(f"{path}: encoder_type {encoder_type!r} is not supported; vgz converts "
                              f"{', '.join(_ENCODERS)}")
    if int(opts.get("label_nc") or 0):
        raise ConversionError(f"{path}: label_nc={opts['label_nc']}: encoders of label maps are not supported")
    start = bool(opts.get("start_from_latent_avg"))
    if start and latent_avg is None:
        raise ConversionError(f"{path}: opts.start_from_latent_avg is set, so the encoder's codes are offsets from "
                              "the generator's mean w, but the checkpoint holds no latent_avg")
    common = dict(input_nc=int(opts.get("input_nc", 3)), input_size=input_size, start_from_latent_avg=start)
    if _ENCODERS[encoder_type] == "psp":
        encoder: Any = GradualStyleEncoder(GradualStyleEncoderConfig(output_size=int(opts.get("output_size", 1024)),
                                                                     **common))
    else:
        encoder = WEncoder(WEncoderConfig(**common))
    if start:
        shape = encoder.latent_avg.shape
        if latent_avg.numel() != shape.numel():
            raise ConversionError(f"{path}: latent_avg has shape {list(latent_avg.shape)}, the encoder adds "
                                  f"{list(shape)}")
        state = {**state, "latent_avg": latent_avg.detach().float().reshape(shape)}
    encoder.load_weights(state, source=f"{path} (encoder)")
    return encoder.eval()


def _from_coach(ckpt: dict, path: Any, input_size: int):
    from vgz.conversion.stylegan2_rosinality import load_generator

    state = ckpt.get("state_dict")
    if not isinstance(state, dict) or "opts" not in ckpt:
        raise ConversionError(f"{path} is not a pSp checkpoint: expected 'state_dict' and 'opts' (coach.py's format), "
                              f"found {', '.join(sorted(map(str, ckpt)))}")
    opts = _opts(ckpt["opts"], path)
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise ConversionError(f"{path}: latent_avg is a {type(latent_avg).__name__}, not a tensor")
    encoder = _encoder(opts, _prefixed(state, "encoder", path), latent_avg, input_size, path)
    # pSp's latent_avg is the generator's mean w repeated over the layers: the mapping's w_avg.
    mapping, synthesis = load_generator(_prefixed(state, "decoder", path), latent_avg=latent_avg,
                                        source=f"{path} (decoder)")
    return encoder, mapping, synthesis


def _from_styleinv(snapshot: Any, path: Any, input_size: int):
    from vgz.conversion.pickles import PersistentObject, module_state_dict
    from vgz.conversion.stylegan2_ada import generator_configs, split_state
    from vgz.generators.stylegan2 import MappingNetwork, SynthesisNetwork

    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("pSp"), PersistentObject) or \
            not isinstance(snapshot.get("G"), PersistentObject):
        found = ", ".join(sorted(map(str, snapshot))) if isinstance(snapshot, dict) else type(snapshot).__name__
        raise ConversionError(f"{path} is not a StyleInV pSp snapshot: expected the networks 'pSp' and 'G', "
                              f"found {found}")
    psp, G = snapshot["pSp"], snapshot["G"]
    opts = psp.init_kwargs.get("opts", psp.init_args[0] if psp.init_args else None)
    opts = _opts(opts, path)
    state = module_state_dict(psp)
    latent_avg = state.pop("latent_avg", None)
    encoder = _encoder(opts, _prefixed(state, "encoder", path), latent_avg, input_size, path)
    mapping_cfg, synthesis_cfg = generator_configs(G.init_kwargs)
    g_state = module_state_dict(G)
    mapping, synthesis = MappingNetwork(mapping_cfg), SynthesisNetwork(synthesis_cfg)
    mapping.load_weights(split_state(g_state, "mapping"), source=f"{path} (G.mapping)")
    synthesis.load_weights(split_state(g_state, "synthesis"), source=f"{path} (G.synthesis)")
    return encoder, mapping.eval(), synthesis.eval()


def _prefixed(state: Mapping[str, Any], prefix: str, path: Any) -> dict[str, torch.Tensor]:
    from vgz.conversion.stylegan2_ada import split_state

    out = split_state(state, prefix)
    if not out:
        raise ConversionError(f"{path}: the checkpoint holds no {prefix} weights ({prefix}.*)")
    return out


def psp_pipeline(path: str | os.PathLike, *, input_size: int = 256):
    """Read a pSp checkpoint (either format, see the module docstring) as a :class:`PSPPipeline`."""
    from vgz.conversion.pickles import read_pickle
    from vgz.conversion.stylegan2_rosinality import read_checkpoint
    from vgz.pipelines.psp import PSPPipeline

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no file {path}")
    with open(p, "rb") as f:
        head = f.read(2)
    if head == b"PK":  # torch.save's zip format: pSp's coach.py
        encoder, mapping, synthesis = _from_coach(read_checkpoint(p), path, input_size)
    else:
        encoder, mapping, synthesis = _from_styleinv(read_pickle(p), path, input_size)
    return PSPPipeline(encoder=encoder, synthesis=synthesis, mapping=mapping)


def convert_psp(path: str | os.PathLike, out_dir: str | os.PathLike, *, input_size: int = 256,
                overwrite: bool = False) -> Path:
    """Convert a pSp checkpoint into a ``psp`` pipeline folder (``VideoPipeline.from_pretrained(out_dir)``)."""
    pipe = psp_pipeline(path, input_size=input_size)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        pipe.save_pretrained(tmp)
    return Path(out_dir)
