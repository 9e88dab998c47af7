"""Numerical parity with universome/stylegan-v's generator (mapping, motion, synthesis) and discriminator.

``tests/fixtures/make_styleganv_fixture.py`` made the fixture with the official code (random,
perturbed weights; fixed z, c, t and motion noise; fixed clips, labels and frame times). vgz
builds its components from the official kwargs and cfg, loads the official weights by name and
must reproduce every output (and the discriminator's input gradient) within 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from einops import rearrange
from safetensors import safe_open
from safetensors.torch import load_file

from vgz.conversion.stylegan2_ada import ConversionError
from vgz.conversion.styleganv import (discriminator_config, generator_configs, split_discriminator_state,
                                      split_generator_state)
from vgz.discriminators.styleganv import StyleGANVDiscriminator
from vgz.generators.stylegan2 import MappingNetwork
from vgz.generators.styleganv import MotionMappingNetwork, StyleGANVSynthesisNetwork

FIXTURE = Path(__file__).parent / "fixtures" / "styleganv_parity.safetensors"
ATOL = 1e-5

with safe_open(str(FIXTURE), framework="pt") as _f:
    META = json.loads(_f.metadata()["vgz_fixture"])
TENSORS = {k: v.clone() for k, v in load_file(str(FIXTURE)).items()}
G_CASES = [n for n, c in META["cases"].items() if c["kind"] == "G"]


def _part(case: str, kind: str) -> dict:
    prefix = f"{case}/{kind}/"
    return {k[len(prefix):]: v for k, v in TENSORS.items() if k.startswith(prefix)}


def _close(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    assert ours.shape == theirs.shape, f"{what}: {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    err = (ours.float() - theirs.float()).abs().max().item()
    assert err <= ATOL, f"{what}: max abs difference {err:.3g}"


def _build(case: str):
    meta = META["cases"][case]
    mapping_cfg, motion_cfg, synthesis_cfg = generator_configs(meta["init_kwargs"], meta["cfg"])
    mapping, motion = MappingNetwork(mapping_cfg).eval(), MotionMappingNetwork(motion_cfg).eval()
    synthesis = StyleGANVSynthesisNetwork(synthesis_cfg).eval()
    for net, sd in zip((mapping, motion, synthesis), split_generator_state(_part(case, "state"))):
        net.load_weights(sd, source=f"fixture {case}")
    inputs = _part(case, "in")
    c = inputs["c"] if inputs["c"].shape[1] > 0 else None
    return mapping, motion, synthesis, inputs, c, _part(case, "out")


@pytest.mark.parametrize("case", G_CASES)
def test_mapping_and_motion(case):
    mapping, motion, _, inputs, c, out = _build(case)
    with torch.no_grad():
        _close(mapping(inputs["z"], c), out["ws"], f"{case} ws")
        _close(mapping(inputs["z"], c, truncation_psi=0.7), out["ws_psi07"], f"{case} ws psi=0.7")
        motion_v = motion(inputs["t"], c, motion_z=inputs["motion_z"])
    assert motion.num_codes(inputs["t"].max().item()) == inputs["motion_z"].shape[1]
    _close(rearrange(motion_v, "b f d -> (b f) d"), out["motion_v"], f"{case} motion_v")


FRAME_OUTPUTS = {"img_fused": True, "img_unfused": False, "img": None}  # output -> fused_modconv
FRAME_CASES = [(case, output) for case in G_CASES for output in FRAME_OUTPUTS if output in META["cases"][case]["outputs"]]


def test_fixture_covers_motion_variants():
    assert {META["cases"][c]["cfg"]["motion"]["gen_strategy"] for c in G_CASES} == {"conv", "autoregressive"}
    assert any(META["cases"][c]["init_kwargs"]["c_dim"] > 0 for c in G_CASES)
    assert len(FRAME_CASES) >= 7


@pytest.mark.parametrize("case,output", FRAME_CASES)
def test_frames(case, output):
    fused = FRAME_OUTPUTS[output]
    mapping, motion, synthesis, inputs, c, out = _build(case)
    ws_key = "ws" if output == "img" else "ws_psi07"
    with torch.no_grad():
        motion_v = motion(inputs["t"], c, motion_z=inputs["motion_z"])
        frames = synthesis(out[ws_key], motion_v, noise_mode="const", fused_modconv=fused)
    assert frames.shape[:2] == inputs["t"].shape
    _close(rearrange(frames, "b f c h w -> (b f) c h w"), out[output], f"{case} {output}")


# ===================================================================================== discriminator

D_CASES = [n for n, c in META["cases"].items() if c["kind"] == "D"]


def _build_discriminator(case: str):
    meta = META["cases"][case]
    config = discriminator_config(meta["init_kwargs"], meta["cfg"])
    disc = StyleGANVDiscriminator(config).eval()
    state = split_discriminator_state(_part(case, "state"))
    # Buffers vgz computes itself must already equal the official ones before loading.
    fresh = disc.state_dict()["time_encoder.time_encoder.fourier_coefs"]
    assert torch.equal(fresh, state["time_encoder.time_encoder.fourier_coefs"])
    disc.load_weights(state, source=f"fixture {case}")
    return disc.requires_grad_(False), _part(case, "in"), _part(case, "out")


def test_fixture_covers_discriminator_variants():
    assert set(D_CASES) >= {"d", "d_cond"}
    assert any(META["cases"][c]["init_kwargs"]["c_dim"] > 0 for c in D_CASES)


@pytest.mark.parametrize("case", D_CASES)
def test_discriminator_logits_and_input_gradient(case):
    disc, inputs, out = _build_discriminator(case)
    k = disc.config.num_frames
    img = rearrange(inputs["img"], "(b t) c h w -> b t c h w", t=k).clone().requires_grad_(True)
    c = inputs["c"] if inputs["c"].shape[1] > 0 else None
    t = inputs["t"].to(torch.int64)  # the fixture fed int64 frame indices, as real data are
    logits = disc(img, c, t)
    assert logits.shape == (img.shape[0], 1)
    _close(logits[:, 0], out["logits"], f"{case} logits")
    (grad,) = torch.autograd.grad(logits.sum(), img)
    _close(rearrange(grad, "b t c h w -> (b t) c h w"), out["grad_img"], f"{case} grad_img")
    # Float times give the same logits (the gap table row is the rounded gap).
    with torch.no_grad():
        _close(disc(img, c, t.float())[:, 0], out["logits"], f"{case} logits, float t")


def test_discriminator_conversion_refuses_unsupported_settings():
    meta = META["cases"]["d"]
    with pytest.raises(ConversionError, match="dummy_c"):
        discriminator_config(meta["init_kwargs"], {**meta["cfg"], "dummy_c": True})
    with pytest.raises(ConversionError, match="architecture='skip'"):
        discriminator_config({**meta["init_kwargs"], "architecture": "skip"}, meta["cfg"])
    with pytest.raises(ConversionError, match="unsupported key.*hyper_mode"):
        discriminator_config(meta["init_kwargs"], {**meta["cfg"], "hyper_mode": 1})
    with pytest.raises(ConversionError, match="cfg.source='networks'"):
        discriminator_config(meta["init_kwargs"], {**meta["cfg"], "source": "mocogan"})
    with pytest.raises(ConversionError, match="concat_res"):
        discriminator_config(meta["init_kwargs"], {**meta["cfg"], "concat_res": 16})
    with pytest.raises(ConversionError, match="unsupported official argument.*dummy"):
        discriminator_config({**meta["init_kwargs"], "dummy": 1}, meta["cfg"])
    uniform = {**meta["cfg"], "sampling": {**meta["cfg"]["sampling"], "type": "uniform"}}
    assert discriminator_config(meta["init_kwargs"], uniform).sampling_type == "uniform"
