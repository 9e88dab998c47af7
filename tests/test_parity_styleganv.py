"""Numerical parity with universome/stylegan-v's generator (mapping, motion, synthesis).

``tests/fixtures/make_styleganv_fixture.py`` made the fixture with the official code (random,
perturbed weights; fixed z, c, t and motion noise). vgz builds its components from the official
kwargs and cfg, loads the official weights by name and must reproduce every output within 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from einops import rearrange
from safetensors import safe_open
from safetensors.torch import load_file

from vgz.conversion.styleganv import generator_configs, split_generator_state
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
