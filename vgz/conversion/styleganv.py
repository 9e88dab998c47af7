"""Map StyleGAN-V (universome/stylegan-v) generators onto vgz components.

The official ``Generator`` is described by its constructor kwargs and its (resolved) OmegaConf
``cfg``; its state dict holds the mapping network (``mapping.*``), the motion network
(``synthesis.motion_encoder.*``) and the synthesis network (``synthesis.*``). vgz splits these into
three components with the same parameter names, except the 4x4 input, which StyleGAN-V stores as
``b4.input.input.const [1, C, 4, 4]`` and vgz as ``b4.const [C, 4, 4]``.
"""

from __future__ import annotations

from typing import Any, Mapping

from vgz.conversion.stylegan2_ada import ConversionError, _take, split_state
from vgz.generators.stylegan2 import MappingConfig
from vgz.generators.styleganv import MotionConfig, StyleGANVSynthesisConfig

__all__ = ["generator_configs", "split_generator_state"]

_SYNTHESIS_KW = {k: k for k in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture",
                                "resample_filter", "activation", "fp16_channels_last")}
_MAPPING_KW = {k: k for k in ("num_layers", "embed_features", "layer_features", "activation", "lr_multiplier",
                              "w_avg_beta")}


def _get(cfg: Mapping[str, Any], dotted: str, default: Any = ...) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is ...:
                raise ConversionError(f"StyleGAN-V cfg lacks {dotted!r}")
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
