"""Numerical parity with NVlabs' StyleGAN2-ADA.

The fixture holds tiny official Generators/Discriminators (random, perturbed weights in their
own key layout), fixed inputs and the outputs the official code computed from them
(``tests/fixtures/make_stylegan2_ada_fixture.py`` regenerates it). vgz builds the same networks
from the official constructor kwargs, loads the official state dicts by name and must reproduce
every output within 1e-5 (fp32, CPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from vgz.conversion.stylegan2_ada import discriminator_config, generator_configs, split_state
from vgz.discriminators.stylegan2 import Discriminator
from vgz.generators.stylegan2 import MappingNetwork, SynthesisNetwork

FIXTURE = Path(__file__).parent / "fixtures" / "stylegan2_ada_parity.safetensors"
ATOL = 1e-5


def _load():
    with safe_open(str(FIXTURE), framework="pt") as f:
        meta = json.loads(f.metadata()["vgz_fixture"])
    # Clone: tensors viewing the file's memory can round differently in CPU matmuls.
    tensors = {k: v.clone() for k, v in load_file(str(FIXTURE)).items()}
    return meta, tensors


META, TENSORS = _load()


def _case(name: str) -> tuple[dict, dict, dict, dict]:
    def part(kind: str) -> dict:
        prefix = f"{name}/{kind}/"
        return {k[len(prefix):]: v for k, v in TENSORS.items() if k.startswith(prefix)}

    return META["cases"][name], part("state"), part("in"), part("out")


G_CASES = [n for n, c in META["cases"].items() if c["kind"] == "G"]
D_CASES = [n for n, c in META["cases"].items() if c["kind"] == "D"]


def _assert_close(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    err = (ours - theirs).abs().max().item()
    assert err <= ATOL, f"{what}: max abs difference {err:.3g} > {ATOL}"


def _generator(name: str):
    case, state, inputs, outputs = _case(name)
    mapping_cfg, synthesis_cfg = generator_configs(case["init_kwargs"])
    mapping, synthesis = MappingNetwork(mapping_cfg).eval(), SynthesisNetwork(synthesis_cfg).eval()
    mapping.load_weights(split_state(state, "mapping"), source=f"fixture {name}")
    synthesis.load_weights(split_state(state, "synthesis"), source=f"fixture {name}")
    assert synthesis.num_ws == case["num_ws"]
    return mapping, synthesis, inputs, outputs


def test_fixture_covers_all_architectures():
    archs = {META["cases"][n]["init_kwargs"]["synthesis_kwargs"]["architecture"] for n in G_CASES}
    assert archs == {"orig", "skip", "resnet"}
    archs = {META["cases"][n]["init_kwargs"]["architecture"] for n in D_CASES}
    assert archs == {"orig", "skip", "resnet"}


@pytest.mark.parametrize("name", G_CASES)
def test_state_dict_keys_match_official(name):
    case, state, _, _ = _case(name)
    mapping_cfg, synthesis_cfg = generator_configs(case["init_kwargs"])
    ours = {f"mapping.{k}" for k in MappingNetwork(mapping_cfg).state_dict()}
    ours |= {f"synthesis.{k}" for k in SynthesisNetwork(synthesis_cfg).state_dict()}
    assert ours == set(state)


@pytest.mark.parametrize("name", G_CASES)
def test_mapping_parity(name):
    mapping, _, inputs, outputs = _generator(name)
    z, c = inputs["z"], inputs.get("c")
    with torch.no_grad():
        _assert_close(mapping(z, c), outputs["ws_psi1"], f"{name} ws psi=1")
        _assert_close(mapping(z, c, truncation_psi=0.7), outputs["ws_psi07"], f"{name} ws psi=0.7")
        _assert_close(mapping(z, c, truncation_psi=0.5, truncation_cutoff=2), outputs["ws_psi05_cut2"],
                      f"{name} ws psi=0.5 cutoff=2")


@pytest.mark.parametrize("name", G_CASES)
@pytest.mark.parametrize(
    "output,ws_key,kwargs",
    [
        ("img_const_fused", "ws_psi07", dict(noise_mode="const", fused_modconv=True)),
        ("img_const_unfused", "ws_psi07", dict(noise_mode="const", fused_modconv=False)),
        ("img_none", "ws_psi07", dict(noise_mode="none")),
        ("img_from_random_ws", "ws_random", dict(noise_mode="const")),
    ],
)
def test_synthesis_parity(name, output, ws_key, kwargs):
    _, synthesis, inputs, outputs = _generator(name)
    ws = inputs[ws_key] if ws_key in inputs else outputs[ws_key]
    with torch.no_grad():
        img = synthesis(ws, **kwargs)
    _assert_close(img, outputs[output], f"{name} {output}")


@pytest.mark.parametrize("name", D_CASES)
def test_discriminator_parity(name):
    case, state, inputs, outputs = _case(name)
    disc = Discriminator(discriminator_config(case["init_kwargs"])).eval()
    disc.load_weights(state, source=f"fixture {name}")
    img = inputs["img"].clone().requires_grad_(True)
    logits = disc(img, inputs.get("c"))
    _assert_close(logits.detach(), outputs["logits"], f"{name} logits")
    if "grad_img" in outputs:
        (grad,) = torch.autograd.grad(logits.sum(), img)
        _assert_close(grad, outputs["grad_img"], f"{name} d logits / d img")
