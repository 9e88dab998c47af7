"""Every registered component at its tiny preset: shapes, finiteness, gradients, determinism, save/load.

New components get these tests by being registered with a ``tiny`` preset and ``example_inputs``.
"""

from __future__ import annotations

import pytest
import torch

import vgz
from vgz import registry
from vgz.modeling import ModelMixin

# Pipelines, recipes and datasets are not networks; they have their own tests (test_pipelines, test_training,
# test_datasets).
NETWORK_KINDS = ("mapping", "synthesis", "motion", "discriminator", "encoder")
ENTRIES = [e for e in registry.list_components() if e.source == "vgz" and e.kind in NETWORK_KINDS]
IDS = [f"{e.kind}/{e.name}" for e in ENTRIES]


def _build(entry, seed: int = 0) -> ModelMixin:
    torch.manual_seed(seed)
    return vgz.create(entry.kind, entry.name, preset="tiny")


def _inputs(model: ModelMixin, batch_size: int = 2, seed: int = 1) -> dict:
    return model.example_inputs(batch_size, torch.Generator().manual_seed(seed))


def _run(model: ModelMixin, inputs: dict) -> torch.Tensor:
    return model(**inputs)


def test_every_builtin_component_has_a_tiny_preset():
    assert ENTRIES
    for entry in ENTRIES:
        assert "tiny" in entry.config_cls.presets, f"{entry.kind}/{entry.name} lacks a 'tiny' preset"


EXPECTED_SHAPES = {
    ("mapping", "stylegan2"): (2, 6, 32),
    ("synthesis", "stylegan2"): (2, 3, 16, 16),
    ("discriminator", "stylegan2"): (2, 1),
    ("motion", "styleganv"): (2, 3, 12),
    ("synthesis", "styleganv"): (2, 3, 3, 16, 16),
    ("discriminator", "styleganv"): (2, 1),
    ("discriminator", "styleganv-hyper"): (2, 1),
    ("encoder", "psp"): (2, 6, 32),
    ("encoder", "psp-w"): (2, 32),
    ("motion", "styleinv"): (2, 3, 32),
    ("encoder", "styleinv"): (2, 3, 32),
    ("motion", "stylevideogan"): (2, 5, 6, 32),
    ("discriminator", "stylevideogan"): (2,),
}


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_forward_shape_and_finite(entry):
    model = _build(entry).eval()
    with torch.no_grad():
        out = _run(model, _inputs(model))
    assert out.shape[0] == 2
    if (entry.kind, entry.name) in EXPECTED_SHAPES:
        assert tuple(out.shape) == EXPECTED_SHAPES[(entry.kind, entry.name)]
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_backward_reaches_every_parameter(entry):
    model = _build(entry).train()
    inputs = _inputs(model, batch_size=2)
    out = _run(model, inputs)
    # A random projection so no gradient cancels by symmetry.
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"no (finite) gradient for {missing[:5]}"
    zero = [n for n, p in model.named_parameters() if p.requires_grad and p.grad.abs().sum() == 0
            and not n.endswith("noise_strength")]
    assert not zero, f"all-zero gradient for {zero[:5]}"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_deterministic_under_seed(entry):
    a, b = _build(entry, seed=3).eval(), _build(entry, seed=3).eval()
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)
    with torch.no_grad():
        assert torch.equal(_run(a, _inputs(a)), _run(b, _inputs(b)))
    c = _build(entry, seed=4)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_save_load_round_trip(entry, tmp_path):
    model = _build(entry).eval()
    folder = model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = vgz.load_component(folder)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    inputs = _inputs(model)
    with torch.no_grad():
        assert torch.equal(_run(model, inputs), _run(loaded, inputs))
    # The class-specific loader checks the class; the fp16 variant loads close to the original.
    assert type(type(model).from_pretrained(folder)) is type(model)
    model.save_pretrained(folder, variant="fp16")
    half = type(model).from_pretrained(folder, variant="fp16")
    assert all(p.dtype == torch.float32 for p in half.parameters())
    with torch.no_grad():
        ref, out = _run(model, inputs), _run(half, inputs)
    assert torch.allclose(ref, out, atol=5e-2 * ref.abs().max().item() + 1e-3)
