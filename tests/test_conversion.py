"""Converting official snapshots: pickles in the official format (built from the parity fixtures'
official weights, with a Hydra/OmegaConf config holding interpolations) -> vgz folders whose
outputs equal the official outputs; refusals of code, wrong formats and truncated files."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys

import pytest
import torch
from einops import rearrange

import vgz
from official_format import _install_fake_persistence_module, dump_snapshot, omegaconf_child, omegaconf_tree, state_tree
from test_parity_stylegan2_ada import _case as sg2_case
from test_parity_styleganv import META as SGV_META
from test_parity_styleganv import _part as sgv_part
from vgz.conversion.omegaconf_records import OmegaConfRecordError, omegaconf_to_plain
from vgz.conversion.pickles import PickleFormatError, UnsafePickleError, read_pickle
from vgz.conversion.snapshots import convert_stylegan2_ada, convert_styleganv
from vgz.conversion.stylegan2_ada import ConversionError
from vgz.pipelines import StyleGANVPipeline, VideoPipeline

ATOL = 1e-4  # the bar; the measured difference is ~1e-6


def _hydra_root(g_cfg: dict, d_cfg: dict, fps: int = 25) -> object:
    """A config tree like StyleGAN-V's experiment config: the generator and discriminator read
    their sampling, labels and code distance through interpolations."""
    sampling = dict(g_cfg["sampling"])
    sampling.update(fps="${dataset.fps}", max_num_frames="${dataset.max_num_frames}",
                    name="random${sampling.num_frames_per_video}_max${sampling.max_dist}")
    generator = copy.deepcopy(g_cfg)
    generator.update(c_dim="${dataset.c_dim}", sampling="${sampling}")
    assert generator["motion"]["motion_z_distance"] == generator["time_enc"]["min_period_len"]
    generator["motion"]["motion_z_distance"] = "${model.generator.time_enc.min_period_len}"
    discriminator = {**copy.deepcopy(d_cfg), "sampling": "${..generator.sampling}"}  # a relative one too
    return omegaconf_tree({
        "dataset": {"fps": fps, "c_dim": g_cfg["c_dim"], "max_num_frames": g_cfg["sampling"]["max_num_frames"],
                    "name": "tiny_${dataset.fps}"},
        "sampling": sampling,
        "model": {"generator": generator, "discriminator": discriminator},
    })


def styleganv_snapshot(g_case: str = "g_conv", d_case: str = "d") -> bytes:
    persistence = _install_fake_persistence_module("torch_utils.persistence")
    g_meta, d_meta = SGV_META["cases"][g_case], SGV_META["cases"][d_case]
    root = _hydra_root(g_meta["cfg"], d_meta["cfg"])
    g_kwargs = copy.deepcopy(g_meta["init_kwargs"])
    g_cfg = omegaconf_child(root, "model.generator")
    g_kwargs["mapping_kwargs"]["cfg"] = g_cfg
    g_kwargs["cfg"] = g_cfg
    d_kwargs = {**copy.deepcopy(d_meta["init_kwargs"]), "cfg": omegaconf_child(root, "model.discriminator")}
    g = state_tree(sgv_part(g_case, "state"), persistence, "Generator", g_kwargs)
    d = state_tree(sgv_part(d_case, "state"), persistence, "Discriminator", d_kwargs)
    return dump_snapshot({"training_set_kwargs": {"resolution": 16}, "G": g, "D": d, "G_ema": g,
                          "augment_pipe": None, "stats": {"cur_nimg": 4000}})


@pytest.fixture(scope="module")
def sgv_snapshot(tmp_path_factory):
    path = tmp_path_factory.mktemp("snap") / "network-snapshot-000004.pkl"
    path.write_bytes(styleganv_snapshot())
    return path


def test_styleganv_conversion_matches_official_frames_and_logits(sgv_snapshot, tmp_path):
    out = convert_styleganv(sgv_snapshot, tmp_path / "pipe", discriminator=True)
    pipe = VideoPipeline.from_pretrained(out)
    assert isinstance(pipe, StyleGANVPipeline) and pipe.config.fps == 25
    assert pipe.motion.config.motion_z_distance == 4  # resolved from ${model.generator.time_enc.min_period_len}
    inputs, expected = sgv_part("g_conv", "in"), sgv_part("g_conv", "out")
    frames = pipe(num_videos=2, timestamps=inputs["t"].double() / 25, z=inputs["z"], motion_z=inputs["motion_z"]).frames
    official = ((rearrange(expected["img"], "(b t) c h w -> b t c h w", b=2) + 1) / 2).clamp(0, 1)
    err = (frames - official).abs().max().item()
    assert err <= ATOL, f"frames differ from the official generator's by {err}"
    d_in, d_out = sgv_part("d", "in"), sgv_part("d", "out")
    with torch.no_grad():
        logits = pipe.discriminator(rearrange(d_in["img"], "(b t) c h w -> b t c h w", b=2), None, d_in["t"].long())
    torch.testing.assert_close(logits.flatten(), d_out["logits"], atol=1e-5, rtol=0)


def test_convert_and_generate_from_the_command_line(sgv_snapshot, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "vgz", *a], capture_output=True, text=True,  # noqa: E731
                                    timeout=300)
    out = run("convert", "styleganv", str(sgv_snapshot), str(tmp_path / "pipe"))
    assert out.returncode == 0, out.stderr
    assert "converted" in out.stdout and "mapping, motion, synthesis" in out.stdout
    out = run("generate", str(tmp_path / "pipe"), "--num-frames", "30", "--fps", "50", "--seeds", "2", "-q",
              "--lossless", "--out", str(tmp_path / "video.mp4"))
    assert out.returncode == 0, out.stderr
    frames, fps = vgz.read_video(tmp_path / "video.mp4")
    assert frames.shape == (30, 3, 16, 16) and fps == 50
    pipe = VideoPipeline.from_pretrained(tmp_path / "pipe")
    expected = pipe(num_frames=30, fps=50, generator=2).frames[0]
    assert (frames.float() / 255 - expected).abs().max() <= 1 / 255
    out = run("convert", "styleganv", str(sgv_snapshot), str(tmp_path / "pipe"))
    assert out.returncode == 1 and "already exists" in out.stderr
    out = run("convert", "styleganv", str(sgv_snapshot), str(tmp_path / "pipe"), "--overwrite", "--discriminator")
    assert out.returncode == 0 and "discriminator" in out.stdout


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_in_a_snapshot_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(marker)}, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"evil.pkl.*refusing to load global (posix|os|nt)\.system"):
        convert_styleganv(path, tmp_path / "out")
    out = subprocess.run([sys.executable, "-m", "vgz", "convert", "styleganv", str(path), str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "refused" in out.stderr and "system" in out.stderr
    assert "Traceback" not in out.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_wrong_and_damaged_files(sgv_snapshot, tmp_path):
    data = sgv_snapshot.read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 3])
    with pytest.raises(PickleFormatError, match="truncated"):
        convert_styleganv(tmp_path / "cut.pkl", tmp_path / "o1")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ConversionError, match="is not an official network snapshot: expected a dict holding"):
        convert_styleganv(tmp_path / "list.pkl", tmp_path / "o2")
    torch.save({"w": torch.zeros(2)}, tmp_path / "weights.pt")
    with pytest.raises(PickleFormatError, match="zip"):
        convert_styleganv(tmp_path / "weights.pt", tmp_path / "o3")
    with pytest.raises(ConversionError, match="is a StyleGAN-V snapshot .* use `vgz convert styleganv`"):
        convert_stylegan2_ada(sgv_snapshot, tmp_path / "o4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.pkl", "list.pkl", "weights.pt"]  # no output left


def test_stylegan2_ada_conversion_matches_official(tmp_path):
    case, state, inputs, outputs = sg2_case("g_skip")
    persistence = _install_fake_persistence_module("torch_utils.persistence")
    snapshot = {"G_ema": state_tree(state, persistence, "Generator", case["init_kwargs"])}
    (tmp_path / "sg2.pkl").write_bytes(dump_snapshot(snapshot))
    with pytest.raises(ConversionError, match="is not a StyleGAN-V snapshot"):
        convert_styleganv(tmp_path / "sg2.pkl", tmp_path / "wrong")
    out = convert_stylegan2_ada(tmp_path / "sg2.pkl", tmp_path / "out")
    mapping, synthesis = vgz.load_component(out / "mapping"), vgz.load_component(out / "synthesis")
    with torch.no_grad():
        ws = mapping(inputs["z"], inputs["c"], truncation_psi=0.7)
        torch.testing.assert_close(ws, outputs["ws_psi07"], atol=1e-5, rtol=0)
        img = synthesis(ws, noise_mode="const", fused_modconv=True)
    torch.testing.assert_close(img, outputs["img_const_fused"], atol=1e-5, rtol=0)


def _records(data: dict) -> object:
    return read_pickle(dump_snapshot({"cfg": omegaconf_tree(data)}))["cfg"]


def test_omegaconf_records_resolve_like_omegaconf():
    cfg = _records({"a": {"b": 3, "s": "x${a.b}y${c.0}", "rel": "${.b}", "up": "${..c}"}, "c": [7, "${a.b}"],
                    "whole": "${a}", "none": None})
    assert omegaconf_to_plain(cfg) == {"a": {"b": 3, "s": "x3y7", "rel": 3, "up": [7, 3]}, "c": [7, 3],
                                       "whole": {"b": 3, "s": "x3y7", "rel": 3, "up": [7, 3]}, "none": None}


@pytest.mark.parametrize("data,message", [
    ({"a": "${b.c}", "b": {}}, "no key 'c' in b"),
    ({"a": "${oc.env:HOME}"}, "custom resolver, which is code"),
    ({"a": "${b}", "b": "${a}"}, "interpolation cycle"),
    ({"a": "???"}, "config value a is missing"),
    ({"a": "${b.c}", "b": 1}, "looked up in a value"),
])
def test_omegaconf_record_errors(data, message):
    with pytest.raises(OmegaConfRecordError, match=message):
        omegaconf_to_plain(_records(data))
