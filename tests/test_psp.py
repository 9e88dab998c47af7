"""pSp encoders: parity with eladrich/pixel2style2pixel (fixture made by tests/fixtures/make_psp_fixture.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import vgz

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from seeded_weights import seeded_state  # noqa: E402

PARITY = FIXTURES / "psp_parity.safetensors"


def _fixture() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(PARITY), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def official_checkpoint(kind: str) -> dict:
    """The pSp checkpoint (coach.py format) the fixture was made from, built again from its names."""
    _, meta = _fixture()
    shapes = json.loads(meta[f"{kind}.shapes"])
    return {"state_dict": seeded_state(shapes), "opts": json.loads(meta[f"{kind}.opts"]),
            "latent_avg": seeded_state({"latent_avg": json.loads(meta[f"{kind}.latent_avg_shape"])})["latent_avg"]}


@pytest.mark.parametrize("kind", ["wplus", "w"])
def test_encoder_matches_official(kind):
    tensors, _ = _fixture()
    ckpt = official_checkpoint(kind)
    encoder_state = {k[len("encoder."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    if kind == "wplus":
        encoder = vgz.create("encoder", "psp", output_size=32)
    else:
        encoder = vgz.create("encoder", "psp-w")
    encoder.load_weights(encoder_state, source="pSp fixture")
    x = tensors["images"].float() / 255 * 2 - 1
    with torch.no_grad():
        codes = encoder.eval()(x)
    if kind == "w":
        codes = codes.unsqueeze(1).repeat(1, 8, 1)
    codes = codes + ckpt["latent_avg"]
    expected = tensors[f"{kind}.codes"]
    assert codes.shape == expected.shape
    torch.testing.assert_close(codes, expected, atol=1e-5, rtol=0)


def test_encoder_presets_and_shapes():
    for name, out_shape in (("psp", (2, 8, 32)), ("psp-w", (2, 32))):
        enc = vgz.create("encoder", name, preset="tiny").eval()
        with torch.no_grad():
            assert enc(**enc.example_inputs(2)).shape == out_shape
    assert vgz.create("encoder", "psp", preset="ir-se50-256", units=(1, 1, 1, 1), feature_taps=(1, 2, 3)).n_styles == 14
    with pytest.raises(ValueError, match=r"expected images \[N, 3, H, W\]"):
        vgz.create("encoder", "psp-w", preset="tiny")(torch.zeros(2, 32, 32))
    with pytest.raises(vgz.configs.ConfigError, match="feature_taps"):
        vgz.create("encoder", "psp", preset="tiny", feature_taps=(1, 1, 3))
