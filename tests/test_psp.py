"""pSp encoders: parity with eladrich/pixel2style2pixel (fixture made by tests/fixtures/make_psp_fixture.py)."""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
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


@functools.lru_cache(maxsize=None)
def _official_state(kind: str) -> tuple[dict, str, torch.Tensor]:
    _, meta = _fixture()
    rows = json.loads(meta[f"{kind}.latent_avg_shape"])[0]
    return (seeded_state(json.loads(meta[f"{kind}.shapes"])), meta[f"{kind}.opts"],
            seeded_state({"latent_avg": [512]})["latent_avg"].repeat(rows, 1))


def official_checkpoint(kind: str) -> dict:
    """The pSp checkpoint (coach.py format) the fixture was made from, built again from its names."""
    state, opts, latent_avg = _official_state(kind)  # 100 M seeded numbers: drawn once per kind
    return {"state_dict": dict(state), "opts": json.loads(opts), "latent_avg": latent_avg.clone()}


def test_encoder_presets_and_shapes():
    for name, out_shape in (("psp", (2, 6, 32)), ("psp-w", (2, 32))):
        enc = vgz.create("encoder", name, preset="tiny").eval()
        with torch.no_grad():
            assert enc(**enc.example_inputs(2)).shape == out_shape
    assert vgz.create("encoder", "psp", preset="ir-se50-256", units=(1, 1, 1, 1), feature_taps=(1, 2, 3)).n_styles == 14
    with pytest.raises(ValueError, match=r"expected images \[N, 3, H, W\]"):
        vgz.create("encoder", "psp-w", preset="tiny")(torch.zeros(2, 32, 32))
    with pytest.raises(vgz.configs.ConfigError, match="feature_taps"):
        vgz.create("encoder", "psp", preset="tiny", feature_taps=(1, 1, 3))


@pytest.mark.parametrize("kind", ["wplus", "w"])
def test_converted_checkpoint_encodes_and_decodes_as_official(kind, tmp_path):
    """Done when: a coach.py checkpoint converts; encode = official codes, decode = official images (1e-4)."""
    from vgz.conversion.psp import convert_psp

    tensors, _ = _fixture()
    ckpt = tmp_path / "psp.pt"
    torch.save(official_checkpoint(kind), ckpt)
    folder = convert_psp(ckpt, tmp_path / "pipe")
    pipe = vgz.VideoPipeline.from_pretrained(folder)
    assert type(pipe).__name__ == "PSPPipeline"
    assert pipe.encoder.registry_key() == ("encoder", "psp" if kind == "wplus" else "psp-w")
    ws = pipe.encode(tensors["images"].float() / 255)
    # The encoders are pSp's arithmetic (0 difference here); 1e-5 leaves room for other CPUs' kernels.
    torch.testing.assert_close(ws, tensors[f"{kind}.codes"], atol=1e-5, rtol=0)
    official = tensors[f"{kind}.decoded"]
    with torch.no_grad():
        raw = pipe.synthesis(tensors[f"{kind}.codes"], noise_mode="const")
    torch.testing.assert_close(raw, official, atol=1e-4, rtol=0)
    torch.testing.assert_close(pipe.decode(tensors[f"{kind}.codes"]), ((official + 1) / 2).clamp(0, 1), atol=1e-4,
                               rtol=0)
    assert torch.equal(pipe.mapping.w_avg, official_checkpoint(kind)["latent_avg"][0])


def test_styleinv_snapshot_converts(tmp_path):
    """StyleInV's pSp stage pickles {'pSp', 'G'} (NVlabs persistent networks): read as data, never run."""
    from official_format import _install_fake_persistence_module, dump_snapshot, state_tree

    from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork

    tensors, _ = _fixture()
    ckpt = official_checkpoint("w")
    psp_state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    psp_state["latent_avg"] = ckpt["latent_avg"][0]  # StyleInV registers G.mapping.w_avg as a buffer
    opts = {"encoder_type": "BackboneEncoderUsingLastLayerIntoW", "input_nc": 3, "output_size": 16,
            "start_from_latent_avg": True, "learn_in_w": True, "irse50": "pretrained/model_ir_se50.pth"}
    g_kwargs = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=16, img_channels=3,
                    mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=256, channel_max=16))
    torch.manual_seed(0)
    mapping = MappingNetwork(MappingConfig(z_dim=512, w_dim=512, num_ws=6, num_layers=2))
    synthesis = SynthesisNetwork(SynthesisConfig(w_dim=512, img_resolution=16, channel_base=256, channel_max=16))
    g_state = {f"mapping.{k}": v for k, v in mapping.state_dict().items()}
    g_state.update({f"synthesis.{k}": v for k, v in synthesis.state_dict().items()})
    persistence = _install_fake_persistence_module("torch_utils.persistence")
    snapshot = {"training_set_kwargs": {"resolution": 256},  # StyleInV's opts: an argparse.Namespace
                "pSp": state_tree(psp_state, persistence, "pSp", {"opts": argparse.Namespace(**opts), "rank": 0}),
                "G": state_tree(g_state, persistence, "Generator", g_kwargs)}
    (tmp_path / "snapshot.pkl").write_bytes(dump_snapshot(snapshot))
    from vgz.conversion.psp import convert_psp

    pipe = vgz.VideoPipeline.from_pretrained(convert_psp(tmp_path / "snapshot.pkl", tmp_path / "pipe"))
    assert set(pipe.components) == {"encoder", "mapping", "synthesis"}
    ws = pipe.encode(tensors["images"].float() / 255)
    assert ws.shape == (2, 6, 512)  # the W code over the 16x16 generator's 6 layers
    torch.testing.assert_close(ws, tensors["w.codes"][:, :6], atol=1e-4, rtol=0)
    with torch.no_grad():
        expected = synthesis.eval()(ws, noise_mode="const")
    torch.testing.assert_close(pipe.decode(ws), ((expected + 1) / 2).clamp(0, 1), atol=1e-6, rtol=0)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    from vgz.conversion.psp import convert_psp
    from vgz.conversion.stylegan2_ada import ConversionError

    torch.save({"state_dict": {}, "nothing": 1}, tmp_path / "a.pt")
    with pytest.raises(ConversionError, match=r"a\.pt is not a pSp checkpoint: expected 'state_dict' and 'opts'"):
        convert_psp(tmp_path / "a.pt", tmp_path / "out")
    ckpt = official_checkpoint("w")
    ckpt["opts"]["encoder_type"] = "BackboneEncoderUsingLastLayerIntoWPlus"
    torch.save(ckpt, tmp_path / "b.pt")
    with pytest.raises(ConversionError, match="encoder_type 'BackboneEncoderUsingLastLayerIntoWPlus' is not supported"):
        convert_psp(tmp_path / "b.pt", tmp_path / "out")
    ckpt = official_checkpoint("w")
    del ckpt["latent_avg"]
    torch.save(ckpt, tmp_path / "d.pt")
    with pytest.raises(ConversionError, match="start_from_latent_avg is set.*holds no latent_avg"):
        convert_psp(tmp_path / "d.pt", tmp_path / "out")
    (tmp_path / "c.pt").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ConversionError, match="c.pt is not a readable PyTorch checkpoint"):
        convert_psp(tmp_path / "c.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    out = subprocess.run([sys.executable, "-m", "vgz", "convert", "psp", str(tmp_path / "missing.pt"),
                          str(tmp_path / "out")], capture_output=True, text=True)
    assert out.returncode != 0 and "missing.pt" in out.stderr


def test_pipeline_layouts_and_errors():
    pipe = vgz.create("pipeline", "psp", preset="tiny")
    video = torch.rand(2, 3, 3, 40, 40)  # any size: resized to the encoder's 32x32
    ws = pipe.encode(video)
    assert ws.shape == (2, 3, 6, 32)
    assert torch.allclose(pipe.encode(video.flatten(0, 1), batch_size=4), ws.flatten(0, 1), atol=1e-6)
    frames = pipe.decode(ws)
    assert frames.shape == (2, 3, 3, 16, 16) and 0 <= frames.min() and frames.max() <= 1
    out = pipe(video)
    assert out.frames.shape == (2, 3, 3, 16, 16) and out.fps == 25 and out.timestamps.shape == (2, 3)
    assert pipe(video[0]).frames.shape == (3, 1, 3, 16, 16)  # images: one-frame videos
    assert pipe.encode((video * 255).round().to(torch.uint8)).shape == ws.shape  # uint8 frames too
    with pytest.raises(ValueError, match=r"expected images \[N, C, H, W\] or videos"):
        pipe.encode(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="takes 3-channel images"):
        pipe.encode(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"expected ws \[N, 6, 32\]"):
        pipe.decode(torch.rand(2, 5, 32))
    with pytest.raises(ValueError, match="do not fit together"):
        type(pipe)(encoder=vgz.create("encoder", "psp", preset="tiny", output_size=32), synthesis=pipe.synthesis)


def test_small_presets_fit_a_64x64_generator_with_w_of_64():
    """The encoders of vgz's built-in 64x64 models: 10 codes (a 64x64 StyleGAN2) or one, of 64."""
    images = torch.rand([2, 3, 64, 64]) * 2 - 1
    assert vgz.create("encoder", "psp", preset="small")(images).shape == (2, 10, 64)
    w_encoder = vgz.create("encoder", "psp-w", preset="small")
    assert w_encoder(images).shape == (2, 64) and w_encoder.num_parameters < 300_000


def test_refine_sharpens_an_encoding_and_smooth_keeps_neighbours_together():
    """pSp codes refined by optimisation reconstruct their frames better; the smoothness term keeps
    consecutive codes closer; the generator is left as it was."""
    torch.manual_seed(0)
    pipe = vgz.create("pipeline", "psp", preset="tiny")
    a, b = torch.randn(2, 1, pipe.num_ws, 32)
    truth = a + torch.linspace(0, 1, 8).view(8, 1, 1) * (b - a)  # a video: codes moving in a line
    frames = pipe.decode(truth)  # [8, 3, 16, 16]
    ws = pipe.encode(frames)  # a random tiny encoder: a poor start

    def error(codes, target=frames):
        rendered = pipe.decode(codes)
        if rendered.shape[-1] != target.shape[-1]:
            rendered = torch.nn.functional.interpolate(rendered, size=target.shape[-2:], mode="bilinear",
                                                       antialias=True, align_corners=False)
        return (rendered - target).square().mean().item()

    def jumps(codes):
        return (codes[1:] - codes[:-1]).square().sum((1, 2)).mean().item()

    weights = {k: v.clone() for k, v in pipe.synthesis.state_dict().items()}
    flags = [p.requires_grad for p in pipe.synthesis.parameters()]
    # In windows of 3 consecutive frames (memory bounded by the window), each frame gets every step.
    refined = pipe.refine(frames, ws, steps=25, lr=0.08, batch_size=3)
    assert refined.shape == ws.shape and error(refined) < 0.3 * error(ws)
    # The smoothness term keeps neighbours together, across the windows' boundaries (frames 2-3 and
    # 5-6) too: the previous window's last code anchors the next window's first step.
    smooth = pipe.refine(frames, ws, steps=25, lr=0.08, smooth=10.0, batch_size=3)
    assert jumps(smooth) < 0.5 * jumps(refined) and error(smooth) < error(ws)
    boundary = [(smooth[i + 1] - smooth[i]).square().sum().item() for i in (2, 5)]
    unsmoothed = [(refined[i + 1] - refined[i]).square().sum().item() for i in (2, 5)]
    assert sum(boundary) < 0.5 * sum(unsmoothed)
    assert all(torch.equal(v, pipe.synthesis.state_dict()[k]) for k, v in weights.items())
    assert [p.requires_grad for p in pipe.synthesis.parameters()] == flags and any(flags)
    # Frames of another size: the rendering is resized to theirs, as pSp pools its output.
    large = torch.nn.functional.interpolate(frames, size=(32, 32), mode="bilinear", align_corners=False)
    assert error(pipe.refine(large, ws, steps=15, lr=0.08), large) < 0.5 * error(ws, large)
    assert torch.equal(pipe.refine(frames, ws, steps=0), ws)
    with pytest.raises(ValueError, match=r"expected ws \[8, 6, 32\] for 8 frames"):
        pipe.refine(frames, ws[:4], steps=1)
    with pytest.raises(ValueError, match="lr > 0"):
        pipe.refine(frames, ws, steps=1, lr=0)
    with pytest.raises(ValueError, match=r"one video's frames \[T, C, H, W\], got \(2, 4, 3, 16, 16\)"):
        pipe.refine(frames.view(2, 4, 3, 16, 16), ws, steps=1)  # no smoothing across two videos
