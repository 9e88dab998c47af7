"""Map StyleGAN-V (universome/stylegan-v) generators onto vgz components.

The official ``Generator`` is described by its constructor kwargs and its (resolved) OmegaConf
``cfg``; its state dict holds the mapping network (``mapping.*``), the motion network
(``synthesis.motion_encoder.*``) and the synthesis network (``synthesis.*``). vgz splits these into
three components with the same parameter names, except the 4x4 input, which StyleGAN-V stores as
``b4.input.input.const [1, C, 4, 4]`` and vgz as ``b4.const [C, 4, 4]``.

The official ``Discriminator`` (also kwargs + ``cfg``) maps onto
:class:`~vgz.discriminators.styleganv.StyleGANVDiscriminator`, whose parameter names are the official ones.
"""

from __future__ import annotations

from typing import Any, Mapping

from vgz.configs import ConfigError
from vgz.conversion.stylegan2_ada import ConversionError, _take, split_state
from vgz.conversion.stylegan2_ada import discriminator_config as _stylegan2_discriminator_config
from vgz.discriminators.styleganv import StyleGANVDiscriminatorConfig
from vgz.generators.stylegan2 import MappingConfig
from vgz.generators.styleganv import MotionConfig, StyleGANVSynthesisConfig

__all__ = ["generator_configs", "split_generator_state", "discriminator_config", "split_discriminator_state"]

_SYNTHESIS_KW = {k: k for k in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture",
                                "resample_filter", "activation", "fp16_channels_last")}
_MAPPING_KW = {k: k for k in ("num_layers", "embed_features", "layer_features", "activation", "lr_multiplier",
                              "w_avg_beta")}


def _get(cfg: Mapping[str, Any], dotted: str, default: Any = ..., where: str = "StyleGAN-V cfg") -> Any:
    """``cfg[a][b]...`` for ``dotted = "a.b..."``; ``default`` when missing, else an error naming ``where``."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is ...:
                raise ConversionError(f"{where} lacks {dotted!r}")
            return default
        node = node[part]
    return node


def generator_configs(init_kwargs: Mapping[str, Any], cfg: Mapping[str, Any]
                      ) -> tuple[MappingConfig, MotionConfig, StyleGANVSynthesisConfig]:
    """Official ``Generator(**init_kwargs, cfg=cfg)`` (cfg resolved to plain data) -> vgz configs."""
    if _get(cfg, "input.type", "const") != "temporal":
        raise ConversionError("only StyleGAN-V generators with input.type='temporal' are supported "
                              f"(found {_get(cfg, 'input.type', 'const')!r})")
    if _get(cfg, "time_enc.cond_type", None) != "concat_const":
        raise ConversionError("only time_enc.cond_type='concat_const' (the released StyleGAN-V) is supported "
                              f"(found {_get(cfg, 'time_enc.cond_type', None)!r})")
    top = {k: v for k, v in init_kwargs.items() if k != "cfg"}
    mapping_kwargs = {k: v for k, v in dict(top.pop("mapping_kwargs", {}) or {}).items() if k != "cfg"}
    synthesis_kwargs = {k: v for k, v in dict(top.pop("synthesis_kwargs", {}) or {}).items() if k != "cfg"}
    base = _take(top, {k: k for k in ("c_dim", "w_dim", "img_resolution", "img_channels")}, "Generator")
    motion = MotionConfig(
        z_dim=_get(cfg, "motion.z_dim"), v_dim=_get(cfg, "motion.v_dim"), c_dim=base["c_dim"],
        gen_strategy=_get(cfg, "motion.gen_strategy"), kernel_size=_get(cfg, "motion.kernel_size", 11),
        motion_z_distance=_get(cfg, "motion.motion_z_distance"), fourier=_get(cfg, "motion.fourier"),
        time_enc_dim=_get(cfg, "time_enc.dim"), min_period_len=_get(cfg, "time_enc.min_period_len"),
        max_period_len=_get(cfg, "time_enc.max_period_len"),
        max_num_frames=_get(cfg, "sampling.max_num_frames", 1024),
    )
    synthesis = StyleGANVSynthesisConfig(
        w_dim=base["w_dim"], img_resolution=base["img_resolution"], img_channels=base["img_channels"],
        use_noise=bool(_get(cfg, "use_noise", True)), motion_v_dim=motion.out_dim,
        **_take(synthesis_kwargs, _SYNTHESIS_KW, "Generator.synthesis_kwargs"),
    )
    mapping = MappingConfig(z_dim=_get(cfg, "z_dim"), c_dim=base["c_dim"], w_dim=base["w_dim"],
                            num_ws=synthesis.num_ws, **_take(mapping_kwargs, _MAPPING_KW, "Generator.mapping_kwargs"))
    return mapping, motion, synthesis


def split_generator_state(state: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """Official generator state dict -> (mapping, motion, synthesis) state dicts in vgz names."""
    mapping = split_state(state, "mapping")
    motion = split_state(state, "synthesis.motion_encoder")
    synthesis = {k: v for k, v in split_state(state, "synthesis").items() if not k.startswith("motion_encoder.")}
    const = synthesis.pop("b4.input.input.const", None)
    if const is None:
        raise ConversionError("StyleGAN-V generator state lacks synthesis.b4.input.input.const")
    synthesis["b4.const"] = const[0]
    return mapping, motion, synthesis


# cfg.model.discriminator keys that src/train.py reads to build the kwargs (already reflected in them).
_D_TRAIN_ONLY = {"source", "mbstd_group_size", "fmaps", "channel_max", "fp32"}
_D_CFG = {"sampling", "concat_res", "num_frames_div_factor", "dummy_c", "skip_small_t_freqs"}


def discriminator_config(init_kwargs: Mapping[str, Any], cfg: Mapping[str, Any]) -> StyleGANVDiscriminatorConfig:
    """Official ``Discriminator(**init_kwargs, cfg=cfg)`` (cfg = resolved ``cfg.model.discriminator``) -> vgz config."""
    unknown = sorted(set(cfg) - _D_TRAIN_ONLY - _D_CFG)
    if unknown:
        raise ConversionError(f"StyleGAN-V Discriminator cfg: unsupported key(s) {', '.join(unknown)}; "
                              f"vgz understands {', '.join(sorted(_D_CFG | _D_TRAIN_ONLY))}")
    if _get(cfg, "source", "networks") != "networks":
        raise ConversionError("only the StyleGAN-V discriminator (cfg.source='networks') is supported "
                              f"(found {_get(cfg, 'source')!r})")
    if _get(cfg, "dummy_c", False):
        raise ConversionError("cfg.dummy_c=True (the ablation that zeroes the labels and time embeddings) "
                              "is not supported")
    top = {k: v for k, v in init_kwargs.items() if k != "cfg"}
    if top.get("architecture", "resnet") == "skip":
        raise ConversionError("architecture='skip' is not supported: its per-frame images cannot be added to "
                              "features joined over frames (the official code fails there too)")
    num_frames = _get(cfg, "sampling.num_frames_per_video")
    # Without gaps (one frame) the official D builds no time encoder and reads neither key.
    max_num_frames = _get(cfg, "sampling.max_num_frames", ... if num_frames > 1 else 1024)
    sampling_type = _get(cfg, "sampling.type", ... if num_frames > 1 else "random")
    try:
        base = _stylegan2_discriminator_config(top).to_dict()  # the StyleGAN2 kwargs, checked and renamed
        return StyleGANVDiscriminatorConfig(
            **base, num_frames=num_frames, max_num_frames=max_num_frames,
            # The official encoder treats every type but 'uniform' as k - 1 independent gaps.
            sampling_type="uniform" if sampling_type == "uniform" else "random",
            concat_res=_get(cfg, "concat_res"), num_frames_div_factor=_get(cfg, "num_frames_div_factor"),
            skip_small_t_freqs=_get(cfg, "skip_small_t_freqs", 0),
        )
    except ConfigError as exc:
        raise ConversionError(f"StyleGAN-V Discriminator settings vgz cannot represent: {exc}") from None


def split_discriminator_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """Official discriminator state dict -> vgz's (the names are the same; a copy of the mapping)."""
    return dict(state)
