"""Convert johannwyh/StyleInV training snapshots into :class:`~vgz.pipelines.StyleInVPipeline` folders.

    vgz convert styleinv network-snapshot-001000.pkl styleinv-ffs/ [--discriminator] [--psp psp-stage.pkl]

A StyleInV snapshot is ``pickle.dump({'G', 'D', 'SI', 'SI_ema', 'augment_pipe', ...})`` of NVlabs
persistent networks, read by vgz's restricted pickle reader (nothing stored in it runs). ``SI_ema``
(else ``SI``) holds the temporal style (``SI.mapping``: ``MappingFuse``) and the modulated encoder
(``SI.encoder``: ``StyleEncoderIntoW``), described by its constructor's ``mapping_opts`` and
``encoder_opts`` (OmegaConf configs, resolved as data); ``G`` is the frozen StyleGAN2-ADA generator;
``D`` StyleGAN-V's discriminator. Parameter names are vgz's below ``SI.mapping``/``SI.encoder``.

The pSp stage's pickle (``{'pSp', 'G'}``, the encoder's initialisation) converts with ``vgz convert
psp``; given as ``psp=``, its W encoder becomes the pipeline's ``inversion_encoder`` (for
``animate``). StyleInV's discriminator takes times normalised by ``max_num_frames - 1`` and scales
the gaps back to frames inside; vgz's takes frames, so it is the same network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from vgz.conversion.stylegan2_ada import ConversionError, split_state
from vgz.conversion.styleganv import _get as _dotted
from vgz.utils import atomic_dir

__all__ = ["styleinv_configs", "split_si_state", "styleinv_discriminator_config", "read_styleinv_snapshot",
           "styleinv_pipeline", "convert_styleinv"]


def _get(opts: Mapping[str, Any], dotted: str, default: Any = ..., where: str = "mapping_opts") -> Any:
    return _dotted(opts, dotted, default, where=f"StyleInV {where}")


def styleinv_configs(si_kwargs: Mapping[str, Any], img_resolution: int, img_channels: int = 3) -> tuple[Any, Any, Any]:
    """The official ``StyleInV(**si_kwargs)`` (opts resolved to plain data) -> ``(TemporalStyleConfig,
    ModulatedEncoderConfig, StyleInVPipelineConfig)``; settings vgz cannot represent are refused."""
    from vgz.encoders.styleinv import ModulatedEncoderConfig
    from vgz.generators.styleinv import TemporalStyleConfig
    from vgz.pipelines.styleinv import StyleInVPipelineConfig

    m, e = si_kwargs.get("mapping_opts") or {}, si_kwargs.get("encoder_opts") or {}
    refused = [(si_kwargs.get("skip_encoder"), "skip_encoder=True (the ablation without an encoder)"),
               (_get(m, "motion.type", "acyclic_pe") != "acyclic_pe",
                f"mapping_opts.motion.type={_get(m, 'motion.type', None)!r} (only acyclic_pe, the paper's FFA-APE)"),
               (_get(m, "motion.gen_strategy", "conv") != "conv",
                f"motion.gen_strategy={_get(m, 'motion.gen_strategy', None)!r} (only conv, the causal first-frame-"
                "aware convs)"),
               (not _get(m, "motion.fourier", True), "motion.fourier=False"),
               (_get(e, "use_modulation", False, "encoder_opts"), "encoder_opts.use_modulation=True"),
               (_get(e, "pca.use_pca", False, "encoder_opts"), "encoder_opts.pca.use_pca=True")]
    problems = [what for bad, what in refused if bad]
    if int(_get(m, "c_dim", 0) or 0):
        problems.append(f"mapping_opts.c_dim={_get(m, 'c_dim')} (class-conditional motion)")
    if problems:
        raise ConversionError("StyleInV settings vgz does not support: " + "; ".join(problems))
    w_dim = int(_get(m, "w_dim"))
    motion = TemporalStyleConfig(
        w_dim=w_dim, content_dim=int(_get(m, "content_dim")) if _get(m, "concat_content") else 0,
        layers_after_fuse=int(_get(m, "layers_after_fuse")), lr_multiplier=float(_get(m, "lr_multiplier", 0.01)),
        z_dim=int(_get(m, "motion.z_dim")), v_dim=int(_get(m, "motion.v_dim")),
        kernel_size=int(_get(m, "motion.kernel_size")), motion_z_distance=float(_get(m, "motion.motion_z_distance")),
        time_enc_dim=int(_get(m, "motion.time_enc.dim")),
        min_period_len=float(_get(m, "motion.time_enc.min_period_len")),
        max_period_len=float(_get(m, "motion.time_enc.max_period_len")),
        max_num_frames=int(_get(m, "sampling.max_num_frames")))
    # StyleEncoderIntoW is always IR-SE50 into 512 values (num_layers=50, mode='ir_se' are hard-coded).
    encoder = ModulatedEncoderConfig(
        input_nc=img_channels, input_size=img_resolution, w_dim=512, style_dim=w_dim,
        adain_mode=_get(e, "adain_mode", "block", "encoder_opts"),
        normalize_adain=bool(_get(e, "normalize_adain", False, "encoder_opts")),
        # configs/ffs.yaml and taichi.yaml lack it (the official code then fails); dfuf.yaml says 1.
        lr_multiplier=float(_get(e, "lr_multiplier", 1.0, "encoder_opts")))
    pipeline = StyleInVPipelineConfig(fps=float(si_kwargs.get("fps") or 30.0),
                                      input_residual=bool(si_kwargs.get("input_residual", False)))
    return motion, encoder, pipeline


def split_si_state(state: Mapping[str, Any]) -> tuple[dict, dict]:
    """``SI`` state dict -> (temporal style, encoder) state dicts in vgz names (``H.*``, the unused
    mutual-information head, is dropped)."""
    unknown = sorted({k.split(".")[0] for k in state} - {"mapping", "encoder", "H"})
    if unknown:
        raise ConversionError(f"StyleInV SI state holds tensors vgz does not know: {', '.join(unknown)}")
    return split_state(state, "mapping"), split_state(state, "encoder")


def styleinv_discriminator_config(init_kwargs: Mapping[str, Any]) -> Any:
    """StyleInV's ``networks_sgv.Discriminator(**kwargs, cfg=...)`` -> vgz's StyleGAN-V discriminator config."""
    from vgz.conversion.styleganv import discriminator_config

    kwargs = {k: v for k, v in init_kwargs.items() if k != "cfg"}
    cfg = dict(init_kwargs.get("cfg") or {})
    pe = dict(cfg.pop("pe", None) or {})
    if not pe.get("use_const_embed", False) or pe.get("t_is_frame_idx", False):
        raise ConversionError(f"StyleInV Discriminator cfg.pe={pe}: vgz's discriminator embeds the gaps in frames with "
                              "a learned table (use_const_embed=True, t_is_frame_idx=False, every official config)")
    return discriminator_config(kwargs, cfg)


def read_styleinv_snapshot(path: str | os.PathLike) -> tuple[dict, str]:
    """The snapshot as data and the key of its StyleInV network (``SI_ema`` when present, else ``SI``)."""
    from vgz.conversion.pickles import PersistentObject, read_pickle

    snapshot = read_pickle(path)
    if isinstance(snapshot, dict):
        for key in ("SI_ema", "SI"):
            if isinstance(snapshot.get(key), PersistentObject):
                return snapshot, key
    found = sorted(map(str, snapshot)) if isinstance(snapshot, dict) else type(snapshot).__name__
    hint = "; a pSp-stage pickle ({'pSp', 'G'}) converts with `vgz convert psp`" if isinstance(snapshot, dict) and \
        "pSp" in snapshot else ""
    raise ConversionError(f"{path} is not a StyleInV snapshot: expected a dict holding 'SI_ema' or 'SI' (as "
                          f"training_loop_styleinv.py saves it), found {found}{hint}")


def styleinv_pipeline(path: str | os.PathLike, *, discriminator: bool = False, psp: str | os.PathLike | None = None):
    """A :class:`~vgz.pipelines.StyleInVPipeline` from a StyleInV snapshot (and, optionally, the pSp
    stage's pickle or checkpoint for its ``inversion_encoder``)."""
    from vgz.conversion.snapshots import _network
    from vgz.conversion.stylegan2_ada import generator_configs
    from vgz.discriminators.styleganv import StyleGANVDiscriminator
    from vgz.encoders.styleinv import ModulatedEncoder
    from vgz.generators.stylegan2 import MappingNetwork, SynthesisNetwork
    from vgz.generators.styleinv import TemporalStyle
    from vgz.pipelines.styleinv import StyleInVPipeline

    snapshot, si_key = read_styleinv_snapshot(path)
    g_kwargs, g_state = _network(snapshot, "G", path, "Generator")
    if "cfg" in g_kwargs:
        raise ConversionError(f"{path}: its G is a StyleGAN-V generator; StyleInV animates a StyleGAN2")
    mapping_cfg, synthesis_cfg = generator_configs(g_kwargs)
    mapping, synthesis = MappingNetwork(mapping_cfg), SynthesisNetwork(synthesis_cfg)
    mapping.load_weights(split_state(g_state, "mapping"), source=f"{path} (G.mapping)")
    synthesis.load_weights(split_state(g_state, "synthesis"), source=f"{path} (G.synthesis)")
    si_kwargs, si_state = _network(snapshot, si_key, path, "StyleInV")
    motion_cfg, encoder_cfg, pipe_cfg = styleinv_configs(si_kwargs, synthesis_cfg.img_resolution,
                                                         synthesis_cfg.img_channels)
    motion, encoder = TemporalStyle(motion_cfg), ModulatedEncoder(encoder_cfg)
    motion_state, encoder_state = split_si_state(si_state)
    motion.load_weights(motion_state, source=f"{path} ({si_key}.mapping)")
    encoder.load_weights(encoder_state, source=f"{path} ({si_key}.encoder)")
    parts: dict[str, Any] = {}
    if discriminator:
        d_kwargs, d_state = _network(snapshot, "D", path, "Discriminator")
        parts["discriminator"] = StyleGANVDiscriminator(styleinv_discriminator_config(d_kwargs))
        parts["discriminator"].load_weights(dict(d_state), source=f"{path} (D)")
    if psp is not None:
        from vgz.conversion.psp import psp_pipeline

        inversion = psp_pipeline(psp, input_size=256).encoder
        if inversion.registry_key() != ("encoder", "psp-w"):
            raise ConversionError(f"{psp}: its encoder is {'/'.join(inversion.registry_key())}; StyleInV inverts real "
                                  "images with the W encoder of its pSp stage (encoder/psp-w)")
        parts["inversion_encoder"] = inversion
    return StyleInVPipeline(pipe_cfg, mapping=mapping, synthesis=synthesis, motion=motion, encoder=encoder,
                            **parts).eval()


def convert_styleinv(path: str | os.PathLike, out_dir: str | os.PathLike, *, discriminator: bool = False,
                     psp: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Convert a StyleInV snapshot into a pipeline folder (see :func:`styleinv_pipeline`); the folder
    appears only once complete."""
    pipe = styleinv_pipeline(path, discriminator=discriminator, psp=psp)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        pipe.save_pretrained(tmp)
    return Path(out_dir)
