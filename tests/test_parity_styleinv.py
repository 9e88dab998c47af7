"""StyleInV against its official code: a snapshot in the official format (the fixture's seeded weights,
a Hydra-like config with interpolations) converts with ``vgz convert styleinv``, and the pipeline's
latents, first frames, temporal styles, codes, frames and discriminator logits equal those the official
code computed (tests/fixtures/make_styleinv_fixture.py) for the same z, motion noise and times, fractional
and past the 128-frame training window."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from einops import rearrange
from safetensors import safe_open

import vgz
from official_format import _install_fake_persistence_module, dump_snapshot, omegaconf_child, omegaconf_tree, state_tree
from vgz.conversion.stylegan2_ada import ConversionError
from vgz.conversion.styleinv import convert_styleinv, styleinv_configs, styleinv_pipeline

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from seeded_weights import seeded_tensor  # noqa: E402

FIXTURE = FIXTURES / "styleinv_parity.safetensors"
ATOL = 1e-4  # the bar

with safe_open(str(FIXTURE), "pt") as _f:
    META = {k: json.loads(v) if v[:1] in "[{" else v for k, v in _f.metadata().items()}
    DATA = {k: _f.get_tensor(k) for k in _f.keys()}


def _state(net: str) -> dict[str, torch.Tensor]:
    """The official state dict of ``net`` (SI, G or D): seeded tensors plus the buffers kept as built."""
    state = {name[len(net) + 1:]: seeded_tensor(name, tuple(shape)) for name, shape in META["seeded"][net].items()}
    state.update({k[len("state/") + len(net) + 1:]: v for k, v in DATA.items() if k.startswith(f"state/{net}.")})
    return state


def _root() -> object:
    """A config tree like StyleInV's configs/ffs.yaml: the generator's options read the clip length and
    sampling through interpolations."""
    si = copy.deepcopy(META["si"])
    mapping_opts = si["mapping_opts"]
    mapping_opts["sampling"] = "${g_sampling}"
    mapping_opts["motion"]["time_enc"]["max_period_len"] = "${dataset.nframes}"
    mapping_opts["motion"]["time_enc"]["min_period_len"] = "${styleinv.mapping_opts.motion.motion_z_distance}"
    g_sampling = {**META["si"]["mapping_opts"]["sampling"], "max_num_frames": "${dataset.nframes}"}
    d_cfg = {**META["d"]["cfg"], "sampling": "${real_sampling}"}
    real_sampling = {**META["d"]["cfg"]["sampling"], "max_dist": "${g_sampling.max_dist}"}
    return omegaconf_tree({"dataset": {"nframes": 128, "fps": 30}, "g_sampling": g_sampling,
                           "real_sampling": real_sampling,
                           "styleinv": {"mapping_opts": mapping_opts, "encoder_opts": si["encoder_opts"]},
                           "discriminator": {"cfg": d_cfg}})


def styleinv_snapshot(keys: tuple[str, ...] = ("G", "D", "SI", "SI_ema"), **si_changes) -> bytes:
    persistence = _install_fake_persistence_module("torch_utils.persistence")
    root = _root()
    si_kwargs = {"checkpoint": "pretrained_models/psp.pkl", "mapping_opts": omegaconf_child(root, "styleinv.mapping_opts"),
                 "encoder_opts": omegaconf_child(root, "styleinv.encoder_opts"), "input_residual": True,
                 "clip_len": 128, "fps": 30, "mutual_recon": False, "skip_encoder": False, **si_changes}
    g = META["g"]
    g_kwargs = {k: g[k] for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs",
                                  "synthesis_kwargs")}
    d = META["d"]
    d_kwargs = {k: d[k] for k in ("c_dim", "img_resolution", "img_channels", "block_kwargs", "mapping_kwargs",
                                  "epilogue_kwargs", "channel_base", "channel_max", "num_fp16_res", "conv_clamp")}
    d_kwargs["cfg"] = omegaconf_child(root, "discriminator.cfg")
    nets = {"G": state_tree(_state("G"), persistence, "Generator", g_kwargs),
            "D": state_tree(_state("D"), persistence, "Discriminator", d_kwargs),
            "SI": state_tree(_state("SI"), persistence, "StyleInV", si_kwargs)}
    nets["SI_ema"] = nets["SI"]
    return dump_snapshot({"training_set_kwargs": {"class_name": "training.dataset_styleinv.StyleInVDataset"},
                          **{k: nets[k] for k in keys}})


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("styleinv")
    (folder / "snapshot.pkl").write_bytes(styleinv_snapshot())
    out = subprocess.run([sys.executable, "-m", "vgz", "convert", "styleinv", str(folder / "snapshot.pkl"),
                          str(folder / "pipe"), "--discriminator"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "discriminator, encoder, mapping, motion, synthesis" in out.stdout
    return folder / "pipe"


@pytest.fixture(scope="module")
def pipe(converted):
    return vgz.VideoPipeline.from_pretrained(converted)


def test_latents_first_frames_styles_and_codes_equal_the_official(pipe):
    z, motion_z, t = DATA["in/z"], DATA["in/motion_z"], DATA["in/t"]
    with torch.no_grad():
        ws = pipe.mapping(z)
        torch.testing.assert_close(ws, DATA["out/wc"], atol=ATOL, rtol=0)
        x0 = pipe.synthesis(ws, noise_mode="const")
        torch.testing.assert_close(x0, DATA["out/x0"], atol=ATOL, rtol=0)
        w0 = ws[:, 0]
        torch.testing.assert_close(pipe.motion.motion_encoder(t, motion_z=motion_z), DATA["out/motion_v"],
                                   atol=ATOL, rtol=0)
        torch.testing.assert_close(pipe.motion(t, w0, motion_z), DATA["out/styles"], atol=ATOL, rtol=0)
        codes = pipe.latents(t, w0, motion_z, x0=x0)
        torch.testing.assert_close(codes, DATA["out/codes"], atol=ATOL, rtol=0)
        # The plain path (every frame through the whole encoder, as the official code runs it) agrees.
        plain = pipe.encoder(x0, pipe.motion(t, w0, motion_z), shared_prefix=False) + w0.unsqueeze(1)
        torch.testing.assert_close(plain, DATA["out/codes"], atol=ATOL, rtol=0)
    # The motion matters: styles at different times differ by far more than the tolerance.
    assert (DATA["out/styles"][:, 1:] - DATA["out/styles"][:, :1]).abs().max() > 100 * ATOL


def test_frames_equal_the_official_at_fractional_times_past_the_window(pipe):
    z, motion_z, t = DATA["in/z"], DATA["in/motion_z"], DATA["in/t"]
    expected = ((DATA["out/frames"] + 1) / 2).clamp(0, 1)
    out = pipe(2, timestamps=t / pipe.config.fps, z=z, motion_z=motion_z, noise_mode="const", chunk_size=3)
    torch.testing.assert_close(out.frames, expected, atol=ATOL, rtol=0)
    assert float(t.max()) > 127  # past the training window
    # Every later frame moves away from frame 0 (by 0.01-0.2 here), far more than the tolerance.
    assert (expected[:, 1:] - expected[:, :1]).abs().amax(dim=(2, 3, 4)).min() > 50 * ATOL


def test_discriminator_logits_equal_the_official(pipe):
    frames = rearrange(DATA["in/d_images"], "(b t) c h w -> b t c h w", t=4)
    t = torch.tensor(META["d_frames"], dtype=torch.float32)  # the official D scales its normalised times by 127
    torch.testing.assert_close(DATA["in/d_t"] * 127, t, atol=1e-4, rtol=0)
    with torch.no_grad():
        logits = pipe.discriminator(frames, None, t).reshape(-1)
    torch.testing.assert_close(logits, DATA["out/d_logits"].reshape(-1), atol=ATOL, rtol=0)


def test_snapshot_variants_and_refusals(tmp_path):
    # SI alone (no EMA copy) converts too.
    (tmp_path / "si.pkl").write_bytes(styleinv_snapshot(keys=("G", "SI")))
    pipe = styleinv_pipeline(tmp_path / "si.pkl")
    assert pipe.discriminator is None and pipe.config.fps == 30 and pipe.config.input_residual
    # A pSp-stage pickle is pointed to its own converter.
    (tmp_path / "psp.pkl").write_bytes(dump_snapshot({"pSp": 1, "G": 2}))
    with pytest.raises(ConversionError, match="vgz convert psp"):
        convert_styleinv(tmp_path / "psp.pkl", tmp_path / "out")
    (tmp_path / "pca.pkl").write_bytes(styleinv_snapshot(skip_encoder=True))
    with pytest.raises(ConversionError, match="skip_encoder=True"):
        convert_styleinv(tmp_path / "pca.pkl", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    opts = {"mapping_opts": {**META["si"]["mapping_opts"], "c_dim": 0}, "encoder_opts": {"pca": {"use_pca": True}}}
    with pytest.raises(ConversionError, match="pca.use_pca=True"):
        styleinv_configs(opts, 32)
    # ffs.yaml's encoder_opts lack lr_multiplier: the value dfuf.yaml gives (1) is used.
    _, encoder, _ = styleinv_configs({"mapping_opts": META["si"]["mapping_opts"],
                                      "encoder_opts": {"adain_mode": "block", "normalize_adain": True}}, 32)
    assert encoder.lr_multiplier == 1.0 and encoder.adain_units == (2, 6, 20, 23)
