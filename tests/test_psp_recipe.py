"""The psp recipe: a pSp encoder trained against a frozen StyleGAN2 on video frames, its loss
networks (LPIPS, ArcFace) from files only, and pSp's Ranger optimizer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import vgz
from vgz.training.optim import Ranger
from vgz.training.perceptual import WeightsNotFoundError, load_arcface, load_lpips

FIXTURES = Path(__file__).parent / "fixtures"
DATA = "synthetic:shapes?num_videos=8&num_frames=8"


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    """A tiny random StyleGAN2 (16x16) saved as a stylegan2 pipeline folder."""
    from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork
    from vgz.pipelines.stylegan2 import StyleGAN2Pipeline

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("generator") / "sg2"
    StyleGAN2Pipeline(mapping=MappingNetwork(MappingConfig.from_preset("tiny")),
                      synthesis=SynthesisNetwork(SynthesisConfig.from_preset("tiny"))).save_pretrained(folder)
    return folder


def _vgz(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vgz", *args], capture_output=True, text=True, **kwargs)


def _train_args(generator: Path, run: Path) -> list[str]:
    return ["train", "--recipe", "psp", "--preset", "tiny", "--generator", str(generator), "--data", DATA,
            "--outdir", str(run), "--num-workers", "0", "--progress", "false", "--log-every", "5"]


def test_trains_on_frames_and_the_reconstruction_loss_falls(generator, tmp_path):
    run = tmp_path / "run"
    out = _vgz(*_train_args(generator, run), "--steps", "40", "--sample-every", "40")
    assert out.returncode == 0, out.stderr
    assert f"vgz invert {run / 'pipeline'}" in out.stdout
    records = [json.loads(line) for line in (run / "logs" / "stats.jsonl").read_text().splitlines()]
    l2 = [r["loss/l2"] for r in records]
    assert len(l2) == 8 and l2[-1] < 0.5 * l2[0], l2  # logged every 5 steps, and falling
    assert "lr/encoder" in records[-1] and "augment/p" not in records[-1]
    pipe = vgz.VideoPipeline.from_pretrained(run / "pipeline")
    assert type(pipe).__name__ == "PSPPipeline" and pipe.encoder.config.start_from_latent_avg
    assert torch.equal(pipe.mapping.w_avg, vgz.load_component(generator / "mapping").w_avg)
    assert (run / "samples" / "step-00000040.png").is_file()
    ckpt = run / "checkpoints" / "step-00000040"
    assert {p.name for p in ckpt.iterdir()} >= {"encoder.safetensors", "encoder_optimizer.safetensors"}
    assert not (ckpt / "ema.safetensors").exists()  # pSp keeps no EMA


def test_resumes_after_a_kill(generator, tmp_path):
    run = tmp_path / "run"
    args = _train_args(generator, run) + ["--checkpoint-every", "3", "--sample-every", "1000"]
    proc = subprocess.Popen([sys.executable, "-m", "vgz", *args, "--steps", "1000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        start = time.time()
        while not (run / "checkpoints" / "step-00000003").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() - start < 120, "no checkpoint"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    latest = max(int(p.name.split("-")[1]) for p in (run / "checkpoints").iterdir() if p.name.startswith("step-"))
    resumed = _vgz(*args, "--steps", str(latest + 2), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"steps from step {latest}" in resumed.stdout and f"done: step {latest + 2}" in resumed.stdout


def test_settings_errors(generator, tmp_path, monkeypatch):
    from accelerate.state import AcceleratorState

    from vgz.training import build_trainer

    out = _vgz("train", "--recipe", "psp", "--preset", "tiny", "--data", DATA, "--outdir", str(tmp_path / "r"))
    assert out.returncode == 1 and "--generator PATH" in out.stderr and "Traceback" not in out.stderr

    def build(**overrides):
        AcceleratorState._reset_state(reset_partial_state=True)
        return build_trainer("psp", preset="tiny", data=DATA, outdir=tmp_path / "run",
                             overrides={"generator": str(generator), **overrides},
                             run_overrides={"num_workers": 0, "progress": False})

    with pytest.raises(ValueError, match=r"renders 16x16.*--resolution 16"):
        build(resolution=32)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    with pytest.raises(WeightsNotFoundError, match=r"alexnet-owt-7be5be79\.pth.*Download"):
        build(lpips_lambda=0.8)
    with pytest.raises(vgz.configs.ConfigError, match="id_weights"):
        build(id_lambda=0.1)
    AcceleratorState._reset_state(reset_partial_state=True)


def test_lpips_and_arcface_load_from_files_only(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError, match=r"alexnet-owt-7be5be79\.pth.*not in the torch hub cache"):
        load_lpips("alex")
    torch.manual_seed(0)
    weights = torchvision.models.alexnet().state_dict()
    torch.save(weights, tmp_path / "alex.pth")
    lp = load_lpips("alex", tmp_path / "alex.pth")
    assert torch.equal(lp.net.slice1[0].weight, weights["features.0.weight"])
    assert torch.equal(getattr(lp.net.slice5, "10").weight, weights["features.10.weight"])
    cache = tmp_path / "hub" / "hub" / "checkpoints"  # torch.hub.get_dir() is $TORCH_HOME/hub
    cache.mkdir(parents=True)
    (cache / "alexnet-owt-7be5be79.pth").write_bytes((tmp_path / "alex.pth").read_bytes())
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.equal(load_lpips("alex")(x, y), lp(x, y))  # the same weights from the cache
    assert (lp(x, x).abs() < 1e-6).all() and (lp(x, y) > 0).all()
    with pytest.raises(ValueError, match="not torchvision's alex weights"):
        torch.save({"other.weight": torch.zeros(1)}, tmp_path / "bad.pth")
        load_lpips("alex", tmp_path / "bad.pth")
    with pytest.raises(WeightsNotFoundError, match="model_ir_se50.pth"):
        load_arcface(tmp_path / "model_ir_se50.pth")
    from vgz.encoders.irse import ArcFace

    torch.save(ArcFace().state_dict(), tmp_path / "model_ir_se50.pth")
    faces = load_arcface(tmp_path / "model_ir_se50.pth")(torch.rand(2, 3, 112, 112) * 2 - 1)
    assert faces.shape == (2, 512) and torch.allclose(faces.norm(dim=1), torch.ones(2))


def test_ranger_matches_psp():
    """pSp's Ranger (RAdam + gradient centralization + Lookahead), fixture by make_ranger_fixture.py."""
    data = load_file(str(FIXTURES / "ranger_parity.safetensors"))
    params = {k: torch.nn.Parameter(data[f"start.{k}"].clone()) for k in ("w", "b")}
    opt = Ranger(list(params.values()), lr=1e-2)
    for i in range(20):
        for k, p in params.items():
            p.grad = data[f"grads.{k}"][i].clone()
        opt.step()
    for k, p in params.items():
        torch.testing.assert_close(p.detach(), data[f"result.{k}"], atol=1e-6, rtol=0)


def test_encoder_starts_from_arcface_weights(tmp_path):
    """pSp initialises its encoder's backbone from model_ir_se50.pth (strict=False: input_layer, body)."""
    from vgz.encoders.irse import ArcFace
    from vgz.training.recipes.psp import PSPRecipe

    torch.manual_seed(0)
    arcface = ArcFace().state_dict()
    torch.save(arcface, tmp_path / "model_ir_se50.pth")
    encoder = vgz.create("encoder", "psp-w")
    PSPRecipe._init_backbone(encoder, str(tmp_path / "model_ir_se50.pth"))
    state = encoder.state_dict()
    assert torch.equal(state["body.23.res_layer.5.fc2.weight"], arcface["body.23.res_layer.5.fc2.weight"])
    assert torch.equal(state["input_layer.0.weight"], arcface["input_layer.0.weight"])
    with pytest.raises(ValueError, match="none of its tensors fit"):
        PSPRecipe._init_backbone(vgz.create("encoder", "psp-w", preset="tiny"), str(tmp_path / "model_ir_se50.pth"))
