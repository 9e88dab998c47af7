"""Converting rosinality-format StyleGAN2 generators (stylegan2-pytorch, pSp, MoCoGAN-HD).

The fixture holds a tiny Generator built with rosinality's code (random, perturbed weights,
non-zero noise strengths, widths 16/8), its latent average, fixed inputs and the images its code
made (``tests/fixtures/make_rosinality_fixture.py`` regenerates it). vgz converts the state dict
and must reproduce every image within 1e-5 (fp32, CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import vgz
from vgz.conversion.pickles import UnsafePickleError
from vgz.conversion.stylegan2_ada import ConversionError
from vgz.conversion.stylegan2_rosinality import (convert_rosinality, convert_state, generator_configs,
                                                 infer_generator_kwargs, load_generator)
from vgz.generators.stylegan2 import MappingNetwork, SynthesisNetwork

FIXTURE = Path(__file__).parent / "fixtures" / "rosinality_parity.safetensors"
ATOL = 1e-5

with safe_open(str(FIXTURE), framework="pt") as _f:
    META = json.loads(_f.metadata()["vgz_fixture"])
# Clone: tensors viewing the file's memory can round differently in CPU matmuls.
T = {k: v.clone() for k, v in load_file(str(FIXTURE)).items()}
STATE = {k[len("state/"):]: v for k, v in T.items() if k.startswith("state/")}


def _close(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    err = (ours - theirs).abs().max().item()
    assert err <= ATOL, f"{what}: max abs difference {err:.3g} > {ATOL}"


def _check_outputs(mapping: MappingNetwork, synthesis: SynthesisNetwork, fused: bool | None = None) -> None:
    z, z2, ws = T["in/z"], T["in/z2"], T["in/ws"]
    run = lambda w: synthesis(w, noise_mode="const", fused_modconv=fused)  # noqa: E731
    with torch.no_grad():
        _close(mapping(z)[:, 0], T["out/w"], "w")
        _close(run(mapping(z)), T["out/img_z"], "img_z")
        _close(run(mapping(z, truncation_psi=META["psi"])), T["out/img_psi"], "img_psi")
        _close(run(ws), T["out/img_ws"], "img_ws")
        i = META["inject_index"]
        mixed = torch.cat([mapping(z)[:, :i], mapping(z2)[:, i:]], dim=1)
        _close(run(mixed), T["out/img_mix"], "img_mix")


def test_inferred_kwargs_and_configs():
    kw = infer_generator_kwargs(STATE)
    assert kw == {"size": 64, "style_dim": 32, "n_mlp": 2, "channel_multiplier": 2, "blur_kernel": (1, 3, 3, 1),
                  "channels": {4: 16, 8: 16, 16: 16, 32: 16, 64: 8}}
    mapping_cfg, synthesis_cfg = generator_configs(**kw)
    assert (synthesis_cfg.channel_base, synthesis_cfg.channel_max, synthesis_cfg.num_ws) == (512, 16, 10)
    assert mapping_cfg.num_ws == 10 and mapping_cfg.lr_multiplier == 0.01 and mapping_cfg.num_layers == 2
    # rosinality's own width table: config F at 1024 is NVlabs' channel_base 32768, channel_max 512.
    _, f = generator_configs(1024, 512, 8, channel_multiplier=2)
    assert (f.channel_base, f.channel_max, f.num_ws) == (32768, 512, 18)
    _, f = generator_configs(256, 512, 8, channel_multiplier=1)
    assert (f.channel_base, f.channel_max) == (16384, 512)
    with pytest.raises(ConversionError, match="do not follow vgz's schedule"):
        generator_configs(256, 512, 8, channel_multiplier=4)  # 1024 wide at 64x64, 512 at 32x32
    with pytest.raises(ConversionError, match=r"upsamples the toRGB skip with \[1, 3, 3, 1\]"):
        generator_configs(64, 32, 2, blur_kernel=(1, 2, 1))


@pytest.mark.parametrize("fused", [True, False])
def test_converted_state_matches_rosinality(fused):
    kw = infer_generator_kwargs(STATE)
    mapping_cfg, synthesis_cfg = generator_configs(**kw)
    mapping_state, synthesis_state = convert_state(STATE, latent_avg=T["latent_avg"])
    mapping, synthesis = MappingNetwork(mapping_cfg).eval(), SynthesisNetwork(synthesis_cfg).eval()
    mapping.load_weights(mapping_state)
    synthesis.load_weights(synthesis_state)
    assert torch.equal(mapping.w_avg, T["latent_avg"])
    assert synthesis.b4.conv1.noise_strength.item() == STATE["conv1.noise.weight"].item() != 0
    _check_outputs(mapping, synthesis, fused)


def test_latent_avg_forms_and_estimate():
    avg = T["latent_avg"]
    for form in (avg[None], avg.repeat(10, 1)):  # pSp keeps [1, 512] or one copy per layer
        assert torch.equal(convert_state(STATE, latent_avg=form)[0]["w_avg"], avg)
    with pytest.raises(ConversionError, match="different average w per layer"):
        convert_state(STATE, latent_avg=torch.randn(10, 32))
    with pytest.raises(ConversionError, match=r"latent_avg has shape \[16\], expected \[32\]"):
        convert_state(STATE, latent_avg=torch.zeros(16))
    # Without one, w_avg is the mean w of many z: close to the fixture's mean of 256.
    estimate = convert_state(STATE)[0]["w_avg"]
    assert (estimate - avg).abs().max() < 0.15 * avg.abs().max()


def test_refusals_name_the_problem():
    with pytest.raises(ConversionError, match=r"unsupported key\(s\) extra.weight"):
        convert_state({**STATE, "extra.weight": torch.zeros(1)})
    broken = dict(STATE)
    del broken["convs.3.noise.weight"]
    with pytest.raises(ConversionError, match="no convs.3.noise.weight"):
        convert_state(broken)
    with pytest.raises(ConversionError, match=r"input.input has shape \[16, 4, 4\], expected \[1, \*, 4, 4\]"):
        convert_state({**STATE, "input.input": STATE["input.input"][0]})
    odd = {k: v for k, v in STATE.items()}
    odd["to_rgbs.1.upsample.kernel"] = odd["convs.0.conv.blur.kernel"][:3, :3].contiguous()
    with pytest.raises(ConversionError, match="the blur kernels differ"):
        convert_state(odd)
    # Older stylegan2-pytorch checkpoints have no noises.*: seeded constant noise stands in.
    quiet = {k: v for k, v in STATE.items() if not k.startswith("noises.")}
    mapping, synthesis = load_generator(quiet, latent_avg=T["latent_avg"])
    assert synthesis.b64.conv1.noise_const.shape == (64, 64)


def _checkpoint(tmp_path: Path) -> Path:
    """A training checkpoint as rosinality's train.py saves it (g_ema, g, d, optimisers, args)."""
    path = tmp_path / "060000.pt"
    args = argparse.Namespace(size=64, latent=32, n_mlp=2, channel_multiplier=1, r1=10.0, path="/data/lmdb")
    g = {k: v if k.endswith("kernel") else torch.zeros_like(v) for k, v in STATE.items()}  # not the EMA
    torch.save({"g": g, "g_ema": STATE,
                "d": {"convs.0.0.weight": torch.zeros(4, 3, 1, 1)}, "g_optim": {"state": {}, "param_groups": []},
                "args": args, "latent_avg": T["latent_avg"]}, path)
    return path


def test_convert_rosinality_checkpoint(tmp_path):
    out = convert_rosinality(_checkpoint(tmp_path), tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["mapping", "synthesis"]
    _check_outputs(vgz.load_component(out / "mapping"), vgz.load_component(out / "synthesis"))
    # A bare state dict; pSp's layout (the generator under state_dict's decoder.*) with --key.
    torch.save(STATE, tmp_path / "bare.pt")
    out = convert_rosinality(tmp_path / "bare.pt", tmp_path / "bare")
    with torch.no_grad():
        img = vgz.load_component(out / "synthesis")(T["in/ws"], noise_mode="const")
    _close(img, T["out/img_ws"], "bare img_ws")
    psp = {"state_dict": {**{f"decoder.{k}": v for k, v in STATE.items()}, "encoder.w": torch.zeros(1)},
           "opts": {"output_size": 64}, "latent_avg": T["latent_avg"].repeat(10, 1)}
    torch.save(psp, tmp_path / "psp.pt")
    with pytest.raises(ConversionError, match="use --key state_dict.decoder"):
        convert_rosinality(tmp_path / "psp.pt", tmp_path / "p")
    out = convert_rosinality(tmp_path / "psp.pt", tmp_path / "psp", key="state_dict.decoder")
    _check_outputs(vgz.load_component(out / "mapping"), vgz.load_component(out / "synthesis"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vgz", "convert", "stylegan2-rosinality", *args],
                          capture_output=True, text=True, timeout=300)


def test_convert_from_the_command_line(tmp_path):
    ckpt = _checkpoint(tmp_path)
    run = _cli(str(ckpt), str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    assert "converted" in run.stdout and "mapping, synthesis" in run.stdout
    _check_outputs(vgz.load_component(tmp_path / "out" / "mapping"), vgz.load_component(tmp_path / "out" / "synthesis"))
    # In-process (each CLI call imports torch): an existing folder, then --overwrite.
    with pytest.raises(FileExistsError, match="already exists"):
        convert_rosinality(ckpt, tmp_path / "out")
    convert_rosinality(ckpt, tmp_path / "out", key="g", overwrite=True)  # g holds zeros: a different w_avg
    run = _cli(str(ckpt), str(tmp_path / "o2"), "--key", "d")
    assert run.returncode == 1 and "060000.pt" in run.stderr and "no mapping layer style.1.weight" in run.stderr
    assert "Traceback" not in run.stderr


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_in_a_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": STATE, "args": _Evil(marker)}, path)
    with pytest.raises(UnsafePickleError, match=r"evil.pt.*refusing to load global (posix|os|nt)\.system"):
        convert_rosinality(path, tmp_path / "out")
    run = _cli(str(path), str(tmp_path / "out"))
    assert run.returncode == 1 and "refused" in run.stderr and "system" in run.stderr
    assert "Traceback" not in run.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_bad_files_are_named(tmp_path):
    good = _checkpoint(tmp_path).read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"model": STATE}, tmp_path / "other.pt")
    cases = {"cut.pt": "is not a readable PyTorch checkpoint", "junk.pt": "is not a readable PyTorch checkpoint",
             "list.pt": "holds a list, not a checkpoint dict", "other.pt": "holds no rosinality generator"}
    for name, message in cases.items():
        with pytest.raises(ConversionError, match=f"{name}.*{message}"):
            convert_rosinality(tmp_path / name, tmp_path / "out")
    run = _cli(str(tmp_path / "junk.pt"), str(tmp_path / "out"))
    assert run.returncode == 1 and "junk.pt is not a readable PyTorch checkpoint" in run.stderr
    run = _cli(str(tmp_path / "missing.pt"), str(tmp_path / "out"))
    assert run.returncode == 1 and "missing.pt" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConversionError, match="other.pt holds no 'g_ema'"):
        convert_rosinality(tmp_path / "other.pt", tmp_path / "out", key="g_ema")
