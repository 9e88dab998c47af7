"""ADA augmentation (vgz.training.augment): parity with the official pipe, clip consistency,
probabilities, gradients of every order, configs.

The parity fixture (``tests/fixtures/make_ada_fixture.py`` regenerates it) holds the official
StyleGAN-V/StyleGAN2-ADA ``AugmentPipe``'s outputs for fixed inputs and seeds; vgz draws the same
random numbers in the same order, so under the same seed it must reproduce them.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

from vgz.configs import ConfigError
from vgz.training.augment import AUGMENT_PRESETS, AugmentConfig, AugmentPipe, grid_sample

FIXTURE = Path(__file__).parent / "fixtures" / "ada_parity" / "ada_parity.safetensors"
ATOL = 1e-5


def _load():
    with safe_open(str(FIXTURE), framework="pt") as f:
        meta = json.loads(f.metadata()["vgz_fixture"])
    return meta, {k: v.clone() for k, v in load_file(str(FIXTURE)).items()}


META, TENSORS = _load()
CASES = sorted(META["cases"])


def _run(pipe: AugmentPipe, x: torch.Tensor, seed: int) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return pipe(x)


def _pipe(case: dict) -> AugmentPipe:
    pipe = AugmentPipe(AugmentConfig(**case["kwargs"]))
    pipe.p.fill_(case["p"])
    return pipe


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} vs {tuple(b.shape)}"
    return (a - b).abs().max().item()


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("name", CASES)
def test_parity_with_official(name):
    case = META["cases"][name]
    x = TENSORS[f"in/{case['input']}"]
    expected = TENSORS[f"{name}/out"]
    assert _max_diff(expected, x) > 0.1  # the official pipe did change the input
    pipe = _pipe(case)
    with torch.no_grad():
        out = _run(pipe, x, case["seed"])
    err = _max_diff(out, expected)
    assert err <= ATOL, f"{name}: max abs difference {err:.3g}"


@pytest.mark.parametrize("name", [n for n in CASES if "grad" in META["cases"][n]["stored"]])
def test_gradients_match_official(name):
    """First and second (R1-like) input gradients, through our double-backward grid_sample."""
    case = META["cases"][name]
    x = TENSORS[f"in/{case['input']}"].clone().requires_grad_(True)
    y = _run(_pipe(case), x, case["seed"])
    (g,) = torch.autograd.grad(0.5 * y.square().sum(), x, create_graph=True)
    (r1,) = torch.autograd.grad(g.square().sum(), x)
    for ours, key in ((g, "grad"), (r1, "r1_grad")):
        theirs = TENSORS[f"{name}/{key}"]
        scale = max(1.0, theirs.abs().max().item())
        assert _max_diff(ours.detach(), theirs) <= ATOL * scale, key


def test_fixture_covers_every_transform_and_layout():
    used = set()
    for case in META["cases"].values():
        used |= {k for k, v in case["kwargs"].items() if k in AugmentConfig.__dataclass_fields__ and v > 0}
    multipliers = {"xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                   "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout"}
    assert multipliers <= used
    assert {c["input"] for c in META["cases"].values()} == {"clips", "images", "grey"}
    assert {c["p"] for c in META["cases"].values()} >= {1.0, 0.5}


# ------------------------------------------------------------------------------------ behaviour


def _clips(b=3, t=4, c=3, h=24, w=24, seed=0) -> torch.Tensor:
    return torch.rand([b, t, c, h, w], generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("preset", ["bgc", "bgcfnc", "filter"])
def test_p_zero_is_identity_and_differentiable(preset):
    pipe = AugmentPipe(preset)
    pipe.p.zero_()
    x = _clips().requires_grad_(True)
    y = pipe(x)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    assert AugmentPipe()(x) is x  # nothing enabled


@pytest.mark.parametrize("shape", [(2, 3, 3, 24, 32), (2, 1, 3, 24, 24), (5, 3, 24, 24), (2, 2, 1, 24, 28),
                                   (3, 1, 24, 24)])
def test_shapes(shape):
    x = torch.rand(shape) * 2 - 1
    y = _run(AugmentPipe("bgcfnc"), x, 0)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        AugmentPipe("bgc")(torch.zeros(3, 24, 24))
    with pytest.raises(ValueError, match="C=2"):
        AugmentPipe("color")(torch.zeros(2, 2, 2, 24, 24))
    with pytest.raises(ValueError, match="larger than 21 pixels"):
        AugmentPipe("filter")(torch.zeros(2, 3, 16, 16))


def test_identical_frames_stay_identical():
    """Every transform (noise aside, which is drawn per pixel) is the same for all frames of a clip."""
    frame = _clips(b=4, t=1)
    x = frame.expand(-1, 5, -1, -1, -1).contiguous()
    y = _run(AugmentPipe("bgcf", cutout=1), x, 3)
    assert _max_diff(y, x) > 0.1
    for t in range(1, 5):
        torch.testing.assert_close(y[:, t], y[:, 0], rtol=0, atol=1e-6)
    # Noise: frames differ only by noise whose strength is the clip's own.
    y = _run(AugmentPipe("noise"), x, 4)
    assert _max_diff(y[:, 1], y[:, 0]) > 0
    diff = (y - x).flatten(2).std(dim=2)  # [B, T]
    torch.testing.assert_close(diff, diff[:, :1].expand_as(diff), rtol=0.35, atol=1e-6)


def test_clip_frames_get_the_image_transform_of_the_clip():
    """pipe(clip)[:, t] equals pipe(clip[:, t]) under the same seed: parameters are per clip."""
    x = _clips(b=3, t=3)
    pipe = AugmentPipe("bgcf", cutout=1)
    y = _run(pipe, x, 7)
    for t in range(3):
        torch.testing.assert_close(y[:, t], _run(pipe, x[:, t], 7), rtol=0, atol=1e-5)


def test_different_clips_get_different_transforms():
    x = _clips(b=1).expand(6, -1, -1, -1, -1).contiguous()
    y = _run(AugmentPipe("bgc"), x, 5)
    for i, j in itertools.combinations(range(6), 2):
        assert _max_diff(y[i], y[j]) > 1e-3, (i, j)


def test_probability_is_multiplier_times_p():
    x = torch.zeros(4000, 1, 3, 4, 4)
    pipe = AugmentPipe(brightness=0.5)
    pipe.p.fill_(0.6)
    changed = (_run(pipe, x, 9) != 0).flatten(1).any(dim=1).float().mean().item()
    assert abs(changed - 0.3) < 0.03
    pipe.p.fill_(1.0)
    changed = (_run(pipe, x, 9) != 0).flatten(1).any(dim=1).float().mean().item()
    assert abs(changed - 0.5) < 0.03


def test_gradients_flow():
    x = _clips(b=2, t=2).requires_grad_(True)
    y = _run(AugmentPipe("bgcfnc"), x, 1)
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_r1_double_backward_through_the_pipe():
    """R1: grad of D(augment(real)) w.r.t. real with create_graph, then backward to D's weights."""
    torch.manual_seed(0)
    disc = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Softplus(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 22 * 22, 1))
    x = _clips(b=2, t=2).requires_grad_(True)
    aug = _run(AugmentPipe("bgcfnc"), x, 2)
    logits = disc(aug.flatten(0, 1))
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    penalty = g.square().sum()
    penalty.backward()
    grads = [disc[0].weight.grad, disc[0].bias.grad, disc[3].weight.grad]  # (the last bias has no say in R1)
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(gr.abs().sum() for gr in grads) > 0


def test_r1_double_backward_under_autocast():
    """Mixed precision: D runs in bfloat16, so the gradients reaching the float32 pipe are bfloat16
    (the trainer's --mixed-precision bf16; fp16 on a GPU is the same path)."""
    torch.manual_seed(0)
    disc = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Softplus(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 22 * 22, 1))
    x = _clips(b=2, t=2).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = disc(_run(AugmentPipe("bgc"), x, 2).flatten(0, 1))
    assert logits.dtype == torch.bfloat16
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    assert g.dtype == torch.float32 and torch.isfinite(g).all() and g.abs().sum() > 0
    g.square().sum().backward()
    assert torch.isfinite(disc[0].weight.grad).all() and disc[0].weight.grad.abs().sum() > 0


def test_r1_gradient_matches_finite_differences_float64():
    """The pipe is affine in x for fixed random parameters, so what double backward must get right
    is the composition with a non-linear D: check d/dx |d D(aug(x))/dx|^2 along a direction
    against central differences, in float64."""
    pipe = AugmentPipe("bgcfnc")
    w = torch.randn(2, 2, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def r1(inp: torch.Tensor, create_graph: bool) -> torch.Tensor:
        logits = (F.softplus(_run(pipe, inp, 11)) * w).sum()  # a non-linear "discriminator"
        (g,) = torch.autograd.grad(logits, inp, create_graph=create_graph)
        return g.square().sum()

    x = _clips(b=2, t=2).double().requires_grad_(True)
    (analytic,) = torch.autograd.grad(r1(x, True), x)
    v = torch.randn_like(x)
    eps = 1e-4
    plus = r1((x + eps * v).detach().requires_grad_(True), False)
    minus = r1((x - eps * v).detach().requires_grad_(True), False)
    numeric = ((plus - minus) / (2 * eps)).item()
    assert abs((analytic * v).sum().item() - numeric) <= 1e-6 * max(1.0, abs(numeric))
    assert abs(numeric) > 1e-3


# ------------------------------------------------------------------------------------ grid_sample


def _grid(n=2, h=4, w=3, dtype=torch.float64, seed=0):
    return torch.rand([n, h, w, 2], generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2.4 - 1.2


def test_grid_sample_matches_torch():
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    grid = _grid()
    ours = grid_sample(x, grid)
    theirs = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(ours, theirs)
    w = torch.randn_like(ours)
    (g1,) = torch.autograd.grad((ours * w).sum(), x)
    (g2,) = torch.autograd.grad((theirs * w).sum(), x)
    torch.testing.assert_close(g1, g2)


def test_grid_sample_gradgradcheck():
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    grid = _grid()
    assert torch.autograd.gradcheck(lambda inp: grid_sample(inp, grid), (x,))
    assert torch.autograd.gradgradcheck(lambda inp: grid_sample(inp, grid), (x,))
    # Third order too: the backward of the backward is grid_sample again.
    (g,) = torch.autograd.grad(grid_sample(x, grid).square().sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), x, create_graph=True)
    (ggg,) = torch.autograd.grad(gg.sum(), x)
    assert torch.isfinite(ggg).all()


def test_grid_sample_refuses_grid_gradients():
    x = torch.randn(1, 1, 4, 4, requires_grad=True)
    grid = _grid(n=1, dtype=torch.float32).requires_grad_(True)
    with pytest.raises(RuntimeError, match="grid gets no gradient"):
        grid_sample(x, grid).sum().backward()


# ------------------------------------------------------------------------------------ config


def test_presets_validate_and_match_official_specs():
    assert {"blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf", "bgcfn", "bgcfnc"} <= set(
        AugmentConfig.preset_names())
    for name in AugmentConfig.preset_names():
        cfg = AugmentConfig.from_preset(name)
        assert AugmentConfig.from_json(cfg.to_json()) == cfg
    bgc = AugmentConfig.from_preset("bgc")
    on = {k for k in AugmentPipe(bgc).extra_repr().split("transforms=")[1].strip("[]").replace("'", "").split(", ")}
    assert on == {"xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                  "lumaflip", "hue", "saturation"}
    assert AUGMENT_PRESETS["bgcfnc"] == {**AUGMENT_PRESETS["bgc"], "imgfilter": 1, "noise": 1, "cutout": 1}
    # Official defaults of the strengths.
    d = AugmentConfig()
    assert (d.xint_max, d.scale_std, d.rotate_max, d.aniso_std, d.xfrac_std) == (0.125, 0.2, 1.0, 0.2, 0.125)
    assert (d.brightness_std, d.contrast_std, d.hue_max, d.saturation_std) == (0.2, 0.5, 1.0, 1.0)
    assert (d.imgfilter_bands, d.imgfilter_std, d.noise_std, d.cutout_size) == ((1.0, 1.0, 1.0, 1.0), 1.0, 0.1, 0.5)


def test_bad_config_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"AugmentConfig\.scale_std: expected a value >= 0"):
        AugmentConfig(scale_std=-0.1)
    with pytest.raises(ConfigError, match="xflip"):
        AugmentPipe("bgc", xflip=-1)
    with pytest.raises(ConfigError, match="imgfilter_bands"):
        AugmentConfig(imgfilter_bands=(1, 1, 1))
    with pytest.raises(ConfigError, match="preset"):
        AugmentPipe("bgcx")
    with pytest.raises(ConfigError, match="cutout_sise"):
        AugmentPipe({"cutout_sise": 0.5})
    with pytest.raises(TypeError, match="AugmentConfig"):
        AugmentPipe(3)


def test_construction_and_state():
    a = AugmentPipe(AugmentConfig.from_preset("bgc"), xflip=0)
    b = AugmentPipe("bgc", xflip=0)
    c = AugmentPipe({**AUGMENT_PRESETS["bgc"], "xflip": 0})
    assert a.config == b.config == c.config and a.config.xflip == 0 and a.config.rotate90 == 1
    assert b.p.dtype == torch.float32 and b.p.shape == () and b.p.item() == 1.0
    assert set(b.state_dict()) == {"p"}  # the fixed filters are rebuilt, not saved
    b.p.fill_(0.25)
    b2 = AugmentPipe("bgc")
    b2.load_state_dict(b.state_dict())
    assert b2.p.item() == 0.25


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_double_backward():
    pipe = AugmentPipe("bgcfnc").cuda()
    pipe.p.fill_(0.8)
    x = _clips(b=4, t=3, h=32, w=32).cuda().requires_grad_(True)
    y = pipe(x)
    (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    g.square().sum().backward()
    assert y.shape == x.shape and torch.isfinite(x.grad).all()
    z = pipe.half()(x.detach().half())  # p stays a float buffer after .half(); the data is fp16
    assert z.dtype == torch.float16 and torch.isfinite(z).all()
