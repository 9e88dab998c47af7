"""Map NVlabs StyleGAN2-ADA networks onto vgz components.

The official ``Generator``/``Discriminator`` are described by their constructor kwargs (stored in
their pickles) and their state dicts. vgz uses the same parameter names, so conversion is a
translation of kwargs into typed configs plus a split of the generator's state dict into its
``mapping.*`` and ``synthesis.*`` parts.
"""

from __future__ import annotations

from typing import Any, Mapping

from vgz.discriminators.stylegan2 import DiscriminatorConfig
from vgz.generators.stylegan2 import MappingConfig, SynthesisConfig

__all__ = ["generator_configs", "discriminator_config", "split_state"]


class ConversionError(ValueError):
    """Official kwargs or weights that vgz cannot represent."""


def _take(kwargs: Mapping[str, Any], allowed: dict[str, str], where: str) -> dict[str, Any]:
    """Rename ``kwargs`` by ``allowed`` (official -> vgz), refusing unknown ones."""
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConversionError(f"{where}: unsupported official argument(s) {', '.join(unknown)}; "
                              f"vgz understands {', '.join(sorted(allowed))}")
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, list):
            value = tuple(value)
        out[allowed[key]] = value
    return out


_MAPPING_KW = {k: k for k in ("num_layers", "embed_features", "layer_features", "activation", "lr_multiplier",
                              "w_avg_beta")}
_SYNTHESIS_KW = {k: k for k in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture",
                                "resample_filter", "use_noise", "activation", "fp16_channels_last")}


def generator_configs(init_kwargs: Mapping[str, Any]) -> tuple[MappingConfig, SynthesisConfig]:
    """Official ``Generator(**init_kwargs)`` -> vgz mapping and synthesis configs."""
    top = dict(init_kwargs)
    mapping_kwargs = dict(top.pop("mapping_kwargs", {}) or {})
    synthesis_kwargs = dict(top.pop("synthesis_kwargs", {}) or {})
    base = _take(top, {k: k for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}, "Generator")
    synthesis = SynthesisConfig(w_dim=base["w_dim"], img_resolution=base["img_resolution"],
                                img_channels=base["img_channels"],
                                **_take(synthesis_kwargs, _SYNTHESIS_KW, "Generator.synthesis_kwargs"))
    # num_ws follows from the synthesis network, as in the official Generator.
    mapping = MappingConfig(z_dim=base["z_dim"], c_dim=base["c_dim"], w_dim=base["w_dim"], num_ws=synthesis.num_ws,
                            **_take(mapping_kwargs, _MAPPING_KW, "Generator.mapping_kwargs"))
    return mapping, synthesis


def discriminator_config(init_kwargs: Mapping[str, Any]) -> DiscriminatorConfig:
    """Official ``Discriminator(**init_kwargs)`` -> vgz config."""
    top = dict(init_kwargs)
    block = _take(dict(top.pop("block_kwargs", {}) or {}),
                  {k: k for k in ("activation", "resample_filter", "fp16_channels_last", "freeze_layers")},
                  "Discriminator.block_kwargs")
    mapping = _take(dict(top.pop("mapping_kwargs", {}) or {}), {"num_layers": "mapping_num_layers"},
                    "Discriminator.mapping_kwargs")
    epilogue = _take(dict(top.pop("epilogue_kwargs", {}) or {}),
                     {k: k for k in ("mbstd_group_size", "mbstd_num_channels", "activation")},
                     "Discriminator.epilogue_kwargs")
    if "activation" in epilogue and epilogue["activation"] != block.get("activation", epilogue["activation"]):
        raise ConversionError("Discriminator: different activations in blocks and epilogue are not supported")
    base = _take(top, {k: k for k in ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base",
                                      "channel_max", "num_fp16_res", "conv_clamp", "cmap_dim")}, "Discriminator")
    return DiscriminatorConfig(**base, **block, **mapping, **epilogue)


def split_state(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries of ``state`` under ``prefix.`` with the prefix removed."""
    p = prefix + "."
    return {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
