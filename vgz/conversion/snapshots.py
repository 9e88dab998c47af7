"""Convert official training snapshots (``network-snapshot-*.pkl``) into vgz folders.

    vgz convert styleganv network-snapshot.pkl out/          # -> a StyleGANVPipeline folder
    vgz convert stylegan2-ada network-snapshot.pkl out/      # -> mapping/ and synthesis/ component folders

or from Python, :func:`convert_styleganv` / :func:`convert_stylegan2_ada`. The pickle is read by
:func:`~vgz.conversion.pickles.read_pickle`, which never runs the code stored in it: the networks'
constructor kwargs (including StyleGAN-V's OmegaConf config, resolved as data) become vgz configs
and their state dicts load by name, strictly. The output folder appears only once complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vgz.conversion.omegaconf_records import OmegaConfRecordError, omegaconf_to_plain
from vgz.conversion.pickles import PersistentObject, module_state_dict, read_pickle
from vgz.conversion.stylegan2_ada import ConversionError
from vgz.utils import atomic_dir

__all__ = ["read_snapshot", "convert_styleganv", "convert_stylegan2_ada"]


def read_snapshot(path: str | os.PathLike) -> dict[str, Any]:
    """Read an official snapshot pickle as data: a dict with ``G_ema`` (and ``G``, ``D``...)."""
    snapshot = read_pickle(path)
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("G_ema"), PersistentObject):
        found = sorted(map(str, snapshot)) if isinstance(snapshot, dict) else type(snapshot).__name__
        raise ConversionError(f"{path} is not an official network snapshot: expected a dict holding the network "
                              f"'G_ema' (as saved by the StyleGAN2-ADA/StyleGAN-V training loops), found {found}")
    return snapshot


def _network(snapshot: dict, key: str, path: Any, class_name: str) -> tuple[dict, dict]:
    """``(plain constructor kwargs, state dict)`` of ``snapshot[key]``."""
    net = snapshot.get(key)
    if not isinstance(net, PersistentObject):
        raise ConversionError(f"{path} holds no network {key!r} (it has {', '.join(sorted(map(str, snapshot)))})")
    if net.class_name != class_name:
        raise ConversionError(f"{path}: {key} is a {net.class_name}, expected a {class_name}")
    if net.init_args:
        raise ConversionError(f"{path}: {key} was built with positional arguments, which vgz cannot map by name")
    try:
        kwargs = omegaconf_to_plain(net.init_kwargs)
    except OmegaConfRecordError as exc:
        raise ConversionError(f"{path}: the config of {key} cannot be read: {exc}") from None
    return kwargs, module_state_dict(net)


def _is_styleganv(kwargs: dict) -> bool:
    return "cfg" in kwargs


def convert_styleganv(path: str | os.PathLike, out_dir: str | os.PathLike, *, discriminator: bool = False,
                      overwrite: bool = False) -> Path:
    """Convert a universome/stylegan-v snapshot into a :class:`~vgz.pipelines.StyleGANVPipeline` folder.

    Args:
        path: ``network-snapshot-*.pkl``.
        out_dir: the pipeline folder to write (must not exist unless ``overwrite``).
        discriminator: also convert ``D`` (for fine-tuning).

    Returns:
        ``out_dir``; load it with ``VideoPipeline.from_pretrained(out_dir)``.
    """
    from vgz.conversion.styleganv import (discriminator_config, generator_configs, split_discriminator_state,
                                          split_generator_state)
    from vgz.discriminators.styleganv import StyleGANVDiscriminator
    from vgz.generators.stylegan2 import MappingNetwork
    from vgz.generators.styleganv import MotionMappingNetwork, StyleGANVSynthesisNetwork
    from vgz.pipelines.styleganv import StyleGANVPipeline, StyleGANVPipelineConfig

    snapshot = read_snapshot(path)
    kwargs, state = _network(snapshot, "G_ema", path, "Generator")
    if not _is_styleganv(kwargs):
        raise ConversionError(f"{path} is not a StyleGAN-V snapshot (its Generator takes no cfg); "
                              "for StyleGAN2-ADA image generators use `vgz convert stylegan2-ada`")
    cfg = kwargs["cfg"]
    mapping_cfg, motion_cfg, synthesis_cfg = generator_configs(kwargs, cfg)
    parts = {"mapping": MappingNetwork(mapping_cfg), "motion": MotionMappingNetwork(motion_cfg),
             "synthesis": StyleGANVSynthesisNetwork(synthesis_cfg)}
    for net, sd in zip(parts.values(), split_generator_state(state)):
        net.load_weights(sd, source=f"{path} (G_ema)")
    if discriminator:
        d_kwargs, d_state = _network(snapshot, "D", path, "Discriminator")
        disc = StyleGANVDiscriminator(discriminator_config({k: v for k, v in d_kwargs.items() if k != "cfg"},
                                                           d_kwargs.get("cfg") or {}))
        disc.load_weights(split_discriminator_state(d_state), source=f"{path} (D)")
        parts["discriminator"] = disc
    fps = float(cfg.get("sampling", {}).get("fps") or 25)  # the dataset's rate; StyleGAN-V's default is 25
    pipe = StyleGANVPipeline(StyleGANVPipelineConfig(fps=fps), **parts)  # type: ignore[arg-type]
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        pipe.save_pretrained(tmp)
    return Path(out_dir)


def convert_stylegan2_ada(path: str | os.PathLike, out_dir: str | os.PathLike, *, discriminator: bool = False,
                          overwrite: bool = False) -> Path:
    """Convert an NVlabs StyleGAN2-ADA snapshot into component folders ``mapping/``, ``synthesis/``
    (and ``discriminator/``), each loadable with :func:`vgz.load_component`."""
    from vgz.conversion.stylegan2_ada import discriminator_config, generator_configs, split_state
    from vgz.discriminators.stylegan2 import Discriminator
    from vgz.generators.stylegan2 import MappingNetwork, SynthesisNetwork

    snapshot = read_snapshot(path)
    kwargs, state = _network(snapshot, "G_ema", path, "Generator")
    if _is_styleganv(kwargs):
        raise ConversionError(f"{path} is a StyleGAN-V snapshot (its Generator takes a cfg); "
                              "use `vgz convert styleganv`")
    mapping_cfg, synthesis_cfg = generator_configs(kwargs)
    parts: dict[str, Any] = {"mapping": MappingNetwork(mapping_cfg), "synthesis": SynthesisNetwork(synthesis_cfg)}
    for name, net in parts.items():
        net.load_weights(split_state(state, name), source=f"{path} (G_ema.{name})")
    if discriminator:
        d_kwargs, d_state = _network(snapshot, "D", path, "Discriminator")
        parts["discriminator"] = Discriminator(discriminator_config(d_kwargs))
        parts["discriminator"].load_weights(d_state, source=f"{path} (D)")
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for name, net in parts.items():
            net.eval().save_pretrained(tmp / name)
    return Path(out_dir)
