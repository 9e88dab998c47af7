"""Map rosinality-format StyleGAN2 generators (``stylegan2-pytorch``, pSp, MoCoGAN-HD) onto vgz.

rosinality's ``Generator(size, style_dim, n_mlp, channel_multiplier)`` computes what NVlabs'
does, with other names and shapes. Measured against rosinality's code (see
``tests/fixtures/make_rosinality_fixture.py``):

* mapping: ``style.{i+1}`` (``style.0`` is the PixelNorm) -> ``fc{i}``; the weights are stored
  divided by ``lr_mul`` and scaled at run time exactly as vgz's ``FullyConnectedLayer`` does.
* ``input.input [1, C, 4, 4]`` -> ``b4.const [C, 4, 4]``.
* styled convs: ``conv.weight [1, O, I, k, k]`` -> ``weight [O, I, k, k]`` as is: the upsampling
  convs need no flip (both run the same transposed convolution, then the same 4x4 blur);
  ``conv.modulation`` -> ``affine``; ``activate.bias`` -> ``bias``;
  ``noise.weight [1]`` -> ``noise_strength []``.
* ``convs.{2j}``/``convs.{2j+1}``/``to_rgbs.{j}`` -> ``b{2**(j+3)}.conv0``/``conv1``/``torgb``;
  ``conv1``/``to_rgb1`` -> ``b4.conv1``/``b4.torgb``; the ws are consumed in the same order.
* ``noises.noise_0`` -> ``b4.conv1.noise_const``, ``noise_{2j+1}``/``noise_{2j+2}`` -> the
  ``conv0``/``conv1`` of ``b{2**(j+3)}`` (``[1, 1, r, r]`` -> ``[r, r]``).
* toRGB: ``bias [1, 3, 1, 1]`` -> ``[3]``; its upsampled skip equals vgz's ``upsample2d``.
* the blur kernels (``*.blur.kernel``, ``*.upsample.kernel``) become ``resample_filter``.
  rosinality's ``Generator`` upsamples the toRGB skip with ``[1, 3, 3, 1]`` whatever its
  ``blur_kernel`` says, while vgz uses one filter for both, so only ``[1, 3, 3, 1]`` converts.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from vgz.conversion.stylegan2_ada import ConversionError
from vgz.generators.stylegan2 import MappingConfig, MappingNetwork, SynthesisConfig, SynthesisNetwork
from vgz.layers import setup_filter

__all__ = ["generator_configs", "infer_generator_kwargs", "convert_state", "load_generator", "read_checkpoint",
           "convert_rosinality", "rosinality_channels"]

_DEFAULT_BLUR = (1.0, 3.0, 3.0, 1.0)
W_AVG_SAMPLES = 10_000  # z samples whose mean w stands in for w_avg when a checkpoint has no latent_avg


def rosinality_channels(size: int, channel_multiplier: int = 2) -> dict[int, int]:
    """rosinality's channel table: 512 up to 32x32, then ``16384 * channel_multiplier // res``."""
    return {2 ** i: 512 if 2 ** i <= 32 else 16384 * channel_multiplier // 2 ** i
            for i in range(2, size.bit_length())}


def _channel_schedule(channels: Mapping[int, int]) -> tuple[int, int]:
    """``(channel_base, channel_max)`` with ``min(channel_base // res, channel_max) == channels[res]``."""
    channel_max = max(channels.values())
    channel_base = max(c * res for res, c in channels.items())  # the smallest base that reaches every width
    found = {res: min(channel_base // res, channel_max) for res in channels}
    if found != dict(channels):
        raise ConversionError(f"channel widths {dict(channels)} do not follow vgz's schedule "
                              "min(channel_base // resolution, channel_max)")
    return channel_base, channel_max


def generator_configs(size: int, style_dim: int, n_mlp: int, channel_multiplier: int = 2, lr_mlp: float = 0.01,
                      blur_kernel: Sequence[float] = _DEFAULT_BLUR, *,
                      channels: Mapping[int, int] | None = None) -> tuple[MappingConfig, SynthesisConfig]:
    """rosinality ``Generator(size, style_dim, n_mlp, channel_multiplier, blur_kernel, lr_mlp)`` ->
    vgz mapping and synthesis configs (``z [N, style_dim]`` -> ``ws [N, 2*log2(size) - 2, style_dim]``
    -> images ``[N, 3, size, size]``).

    ``channels`` (``{resolution: width}``) replaces rosinality's fixed table, for generators built
    with other widths (:func:`infer_generator_kwargs` reports them).
    """
    if size < 4 or size & (size - 1):
        raise ConversionError(f"size {size} is not a power of two >= 4")
    taps = tuple(float(t) for t in blur_kernel)
    k = torch.tensor(taps)
    if len(taps) != 4 or not torch.allclose(k / k.sum(), torch.tensor(_DEFAULT_BLUR) / 8):
        raise ConversionError(f"blur_kernel {list(blur_kernel)}: rosinality's Generator upsamples the toRGB skip "
                              "with [1, 3, 3, 1] whatever blur_kernel is, and vgz uses one filter for both; "
                              "only [1, 3, 3, 1] converts")
    widths = dict(channels) if channels is not None else rosinality_channels(size, channel_multiplier)
    channel_base, channel_max = _channel_schedule(widths)
    synthesis = SynthesisConfig(w_dim=style_dim, img_resolution=size, img_channels=3, channel_base=channel_base,
                                channel_max=channel_max, num_fp16_res=0, architecture="skip", conv_clamp=None,
                                use_noise=True, resample_filter=taps, activation="lrelu")
    mapping = MappingConfig(z_dim=style_dim, c_dim=0, w_dim=style_dim, num_ws=synthesis.num_ws, num_layers=n_mlp,
                            activation="lrelu", lr_multiplier=lr_mlp)
    return mapping, synthesis


def _get(state: Mapping[str, Any], key: str, shape: Sequence[int | None] | None = None) -> torch.Tensor:
    if key not in state:
        raise ConversionError(f"not a rosinality StyleGAN2 generator state dict: no {key}")
    t = state[key]
    if not isinstance(t, torch.Tensor):
        raise ConversionError(f"{key} is a {type(t).__name__}, not a tensor")
    if shape is not None and (t.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, t.shape))):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ConversionError(f"{key} has shape {list(t.shape)}, expected {want}")
    return t


def _kernel_taps(kernel: torch.Tensor, key: str) -> tuple[float, ...]:
    """The 1-D taps of a separable ``[k, k]`` blur kernel (rosinality stores ``outer(t, t) / sum * 4``)."""
    taps = kernel.double().sum(dim=0)
    if not taps.abs().sum() > 0:
        raise ConversionError(f"{key} is not a blur kernel (it sums to zero)")
    taps = taps / taps.abs()[taps != 0].min()
    if not torch.allclose(setup_filter(taps.float()).double() * kernel.sum(), kernel.double(), atol=1e-6):
        raise ConversionError(f"{key} is not a separable blur kernel")
    rounded = taps.round()
    return tuple(float(t) for t in (rounded if torch.allclose(rounded, taps, atol=1e-4) else taps))


def infer_generator_kwargs(state: Mapping[str, Any]) -> dict[str, Any]:
    """``size``, ``style_dim``, ``n_mlp``, ``channel_multiplier`` and ``blur_kernel`` of the
    ``Generator`` that saved ``state``, read from its keys and shapes; plus ``channels`` when its
    widths are not rosinality's table for any ``channel_multiplier`` (2 when the size hides it)."""
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in state:
        n_mlp += 1
    if n_mlp == 0:
        raise ConversionError("not a rosinality StyleGAN2 generator state dict: no mapping layer style.1.weight")
    style_dim = int(_get(state, "style.1.weight", [None, None]).shape[1])
    num_blocks = 0
    while f"to_rgbs.{num_blocks}.conv.weight" in state:
        num_blocks += 1
    size = 2 ** (num_blocks + 2)
    widths = {4: int(_get(state, "input.input", [1, None, 4, 4]).shape[1])}
    for j in range(num_blocks):
        widths[2 ** (j + 3)] = int(_get(state, f"convs.{2 * j}.conv.weight", [1, None, None, 3, 3]).shape[1])
    kwargs: dict[str, Any] = {"size": size, "style_dim": style_dim, "n_mlp": n_mlp, "channel_multiplier": 2}
    if size >= 64 and widths[64] % 256 == 0:
        kwargs["channel_multiplier"] = widths[64] // 256
    if widths != rosinality_channels(size, kwargs["channel_multiplier"]):
        kwargs["channels"] = widths
    kernels = sorted(k for k in state if k.endswith(".blur.kernel") or k.endswith(".upsample.kernel"))
    taps = {_kernel_taps(_get(state, k, [None, None]), k) for k in kernels}
    if len(taps) > 1:
        raise ConversionError(f"the blur kernels differ ({sorted(taps)}); vgz uses one resample filter")
    kwargs["blur_kernel"] = taps.pop() if taps else _DEFAULT_BLUR
    return kwargs


def _latent_avg(latent_avg: torch.Tensor, style_dim: int) -> torch.Tensor:
    """``[style_dim]``, ``[1, style_dim]`` or ``[n, style_dim]`` with equal rows (pSp repeats it) -> ``[style_dim]``."""
    if latent_avg.ndim == 0 or latent_avg.shape[-1] != style_dim:
        raise ConversionError(f"latent_avg has shape {list(latent_avg.shape)}, expected [{style_dim}]")
    avg = latent_avg.detach().float().reshape(-1, style_dim)
    if not torch.equal(avg, avg[:1].expand_as(avg)):
        raise ConversionError("latent_avg holds a different average w per layer; vgz's w_avg is one w")
    return avg[0].clone()


def _estimate_w_avg(mapping: MappingNetwork, samples: int = W_AVG_SAMPLES, seed: int = 0) -> torch.Tensor:
    """Mean w of ``samples`` seeded z (rosinality's ``mean_latent``; its checkpoints keep no w_avg)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn([samples, mapping.z_dim], generator=gen)
        return torch.cat([mapping(c, skip_w_avg_update=True)[:, 0] for c in z.split(2048)]).mean(dim=0)


def convert_state(state: Mapping[str, Any], *, latent_avg: torch.Tensor | None = None,
                  lr_mlp: float = 0.01) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A rosinality ``Generator`` state dict -> ``(mapping_state, synthesis_state)`` in vgz names,
    for the networks of :func:`generator_configs` with :func:`infer_generator_kwargs`'s kwargs.

    ``latent_avg`` (``[style_dim]``, pSp keeps one) becomes the mapping's ``w_avg``; without it,
    ``w_avg`` is the mean w of 10,000 seeded z. A state dict without ``noises.*`` (older
    stylegan2-pytorch) gets seeded ``randn`` constant noise. Every key must be understood.
    """
    kw = infer_generator_kwargs(state)
    used: set[str] = set()

    def take(key: str, shape: Sequence[int | None] | None = None) -> torch.Tensor:
        used.add(key)
        return _get(state, key, shape).detach().to(torch.float32)

    mapping: dict[str, torch.Tensor] = {}
    for i in range(kw["n_mlp"]):
        mapping[f"fc{i}.weight"] = take(f"style.{i + 1}.weight", [None, None])
        mapping[f"fc{i}.bias"] = take(f"style.{i + 1}.bias", [None])

    synthesis: dict[str, torch.Tensor] = {"b4.const": take("input.input", [1, None, 4, 4])[0]}
    blocks = [("conv1", "b4.conv1", "to_rgb1", "b4.torgb")]
    for j in range(kw["size"].bit_length() - 3):
        res = 2 ** (j + 3)
        blocks += [(f"convs.{2 * j}", f"b{res}.conv0", None, None),
                   (f"convs.{2 * j + 1}", f"b{res}.conv1", f"to_rgbs.{j}", f"b{res}.torgb")]
    has_noise = any(k.startswith("noises.") for k in state)
    gen = torch.Generator().manual_seed(0)
    for layer, (src, dst, rgb_src, rgb_dst) in enumerate(blocks):
        synthesis[f"{dst}.weight"] = take(f"{src}.conv.weight", [1, None, None, 3, 3])[0]
        synthesis[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight", [None, None])
        synthesis[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias", [None])
        synthesis[f"{dst}.noise_strength"] = take(f"{src}.noise.weight", [1]).reshape([])
        synthesis[f"{dst}.bias"] = take(f"{src}.activate.bias", [None])
        res = 2 ** (2 + (layer + 1) // 2)
        synthesis[f"{dst}.noise_const"] = (take(f"noises.noise_{layer}", [1, 1, res, res])[0, 0] if has_noise
                                           else torch.randn([res, res], generator=gen))
        if rgb_src is not None:
            synthesis[f"{rgb_dst}.weight"] = take(f"{rgb_src}.conv.weight", [1, 3, None, 1, 1])[0]
            synthesis[f"{rgb_dst}.affine.weight"] = take(f"{rgb_src}.conv.modulation.weight", [None, None])
            synthesis[f"{rgb_dst}.affine.bias"] = take(f"{rgb_src}.conv.modulation.bias", [None])
            synthesis[f"{rgb_dst}.bias"] = take(f"{rgb_src}.bias", [1, 3, 1, 1]).reshape(3)
    used.update(k for k in state if k.endswith(".blur.kernel") or k.endswith(".upsample.kernel"))  # checked above
    unknown = sorted(k for k in state if k not in used)
    if unknown:
        more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
        raise ConversionError(f"unsupported key(s) {', '.join(unknown[:8])}{more}: vgz converts rosinality's "
                              "Generator (style.*, input.input, conv1, to_rgb1, convs.*, to_rgbs.*, noises.*)")

    # The resample filters are buffers vgz derives from the config (all the same filter).
    mapping_cfg, synthesis_cfg = generator_configs(lr_mlp=lr_mlp, **kw)
    f = setup_filter(list(synthesis_cfg.resample_filter))
    synthesis.update((f"{dst}.resample_filter", f.clone()) for _, dst, _, _ in blocks)
    synthesis.update((f"b{2 ** i}.resample_filter", f.clone()) for i in range(2, kw["size"].bit_length()))
    if latent_avg is not None:
        mapping["w_avg"] = _latent_avg(latent_avg, kw["style_dim"])
    else:
        net = MappingNetwork(mapping_cfg).eval()
        net.load_weights({**mapping, "w_avg": torch.zeros([kw["style_dim"]])}, source="rosinality mapping")
        mapping["w_avg"] = _estimate_w_avg(net)
    return mapping, synthesis


def load_generator(state: Mapping[str, Any], *, latent_avg: torch.Tensor | None = None, lr_mlp: float = 0.01,
                   source: str = "rosinality state dict") -> tuple[MappingNetwork, SynthesisNetwork]:
    """A rosinality ``Generator`` state dict -> vgz ``(MappingNetwork, SynthesisNetwork)`` in eval mode.

    ``rosinality_G([z], truncation=psi, truncation_latent=latent_avg, randomize_noise=False)`` is
    ``synthesis(mapping(z, truncation_psi=psi), noise_mode="const")``.
    """
    mapping_cfg, synthesis_cfg = generator_configs(lr_mlp=lr_mlp, **infer_generator_kwargs(state))
    mapping_state, synthesis_state = convert_state(state, latent_avg=latent_avg, lr_mlp=lr_mlp)
    mapping, synthesis = MappingNetwork(mapping_cfg), SynthesisNetwork(synthesis_cfg)
    mapping.load_weights(mapping_state, source=f"{source} (mapping)")
    synthesis.load_weights(synthesis_state, source=f"{source} (synthesis)")
    return mapping.eval(), synthesis.eval()


def read_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load`` as data only: tensors, containers and ``argparse.Namespace`` (training args)."""
    from vgz.conversion.pickles import UnsafePickleError

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch wraps every weights_only failure in one long UnpicklingError: pick out its reason.
        found = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", str(exc), re.IGNORECASE)
        if found:
            raise UnsafePickleError(f"{path}: refusing to load global {found.group(1)}: vgz reads only tensors and "
                                    "plain data from checkpoints and never runs code stored in them") from None
        reason = str(exc).partition("WeightsUnpickler error:")[2].strip() or str(exc)
        raise ConversionError(f"{path} is not a readable PyTorch checkpoint: {reason.splitlines()[0]}") from None
    except (RuntimeError, EOFError, ValueError, AttributeError, KeyError) as exc:
        raise ConversionError(f"{path} is not a readable PyTorch checkpoint (truncated, or another format): "
                              f"{str(exc).split('. ')[0] if str(exc) else type(exc).__name__}") from None


def _pick(ckpt: Any, path: Any, key: str | None) -> tuple[dict, torch.Tensor | None]:
    """``(generator state dict, latent_avg or None)`` out of a loaded checkpoint."""
    if not isinstance(ckpt, dict):
        raise ConversionError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict or a state dict")
    latent_avg = ckpt.get("latent_avg")
    keys = ", ".join(sorted(map(str, ckpt))[:12])
    if key is not None:
        top, _, prefix = key.partition(".")
        if key in ckpt:
            state = ckpt[key]
        elif prefix and isinstance(ckpt.get(top), dict):  # "state_dict.decoder": pSp's generator
            state = {k[len(prefix) + 1:]: v for k, v in ckpt[top].items() if k.startswith(prefix + ".")}
            if not state:
                raise ConversionError(f"{path}: {top} holds no keys under {prefix}.")
        else:
            raise ConversionError(f"{path} holds no {key!r} (it has {keys})")
    elif "g_ema" in ckpt or "g" in ckpt:
        key = "g_ema" if "g_ema" in ckpt else "g"
        state = ckpt[key]
    elif "input.input" in ckpt:
        state = {k: v for k, v in ckpt.items() if k != "latent_avg"}
    else:
        hint = " (a pSp checkpoint: use --key state_dict.decoder)" if "state_dict" in ckpt else ""
        raise ConversionError(f"{path} holds no rosinality generator: expected 'g_ema', 'g' or a Generator state "
                              f"dict (input.input, style.*, convs.*...), found {keys}{hint}")
    if not isinstance(state, dict):
        raise ConversionError(f"{path}: {key} is a {type(state).__name__}, not a state dict")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise ConversionError(f"{path}: latent_avg is a {type(latent_avg).__name__}, not a tensor")
    return state, latent_avg


def convert_rosinality(path: str | os.PathLike, out_dir: str | os.PathLike, *, key: str | None = None,
                       overwrite: bool = False) -> Path:
    """Convert a rosinality-format checkpoint into component folders ``mapping/`` and ``synthesis/``
    (load each with :func:`vgz.load_component`).

    Args:
        path: a ``.pt`` from ``torch.save``: a training checkpoint (``{'g_ema', 'g', 'd', 'args'...}``),
            optionally with ``latent_avg``, or a bare ``Generator`` state dict.
        key: the generator's entry (default ``g_ema``, else ``g``, else the file itself);
            ``NAME.PREFIX`` takes the keys under ``PREFIX.`` of ``NAME`` (pSp: ``state_dict.decoder``).
        overwrite: replace an existing ``out_dir`` that vgz wrote.
    """
    from vgz.utils import atomic_dir

    state, latent_avg = _pick(read_checkpoint(path), path, key)
    try:
        mapping, synthesis = load_generator(state, latent_avg=latent_avg, source=str(path))
    except ConversionError as exc:
        raise ConversionError(f"{path}: {exc}") from None
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        mapping.save_pretrained(tmp / "mapping")
        synthesis.save_pretrained(tmp / "synthesis")
    return Path(out_dir)
