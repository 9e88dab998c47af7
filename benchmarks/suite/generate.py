"""Generation parts: StyleGAN-V videos through the pipeline, at every precision, compiled, and the official code.

``generate``: the released StyleGAN-V at 256x256 (random weights: speed does not depend on them),
videos of 16 and 128 frames, 1 and 8 at a time, through :class:`~vgz.pipelines.StyleGANVPipeline`
(mapping, motion, synthesis, the finite-frames check and the [0, 1] conversion; latents drawn
beforehand), each whole video in one synthesis call (``chunk_size`` = its length). Variants:

* ``fp32``: every block in float32 (``pipe.synthesis.force_fp32 = True``), the reference;
* ``mixed``: the default, as released: float16 in the 4 highest resolutions on a GPU;
* ``bf16`` / ``fp16``: the pipeline cast (``pipe.to(dtype=...)``): every block in that dtype;
* ``channels-last``: ``mixed`` with channels-last activations (``pipe.synthesis.channels_last = True``).

Each gives frames/s, peak memory and the largest difference of its frames (in [0, 1]) from ``fp32``.
``compile``: ``mixed`` with ``pipe.synthesis.compile()``, shape by shape while its budget lasts.
``official``: universome/stylegan-v's generator on the same weights and inputs (``--official PATH``).
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Any

import torch

from suite.part import Part, free_memory, is_oom, max_diff, measure

# (frames per video, videos per call), the most informative first: a part stopped at its budget
# has the small shapes of every variant before the large ones.
SHAPES = [(16, 1), (16, 8), (128, 1), (128, 8)]
SMOKE_SHAPES = [(4, 1), (8, 2)]
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": dict(force_fp32=True),
    "mixed": dict(),
    "bf16": dict(dtype=torch.bfloat16),
    "fp16": dict(dtype=torch.float16),
    "channels-last": dict(channels_last=True),
}


def official_model_kwargs(smoke: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """``Generator(**init_kwargs, cfg=cfg)`` arguments of the released StyleGAN-V (or a tiny one)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench_styleganv_generate import CFG

    cfg = copy.deepcopy(CFG)
    if smoke:
        cfg.update(w_dim=32, z_dim=32)
        cfg["motion"].update(z_dim=16, v_dim=16, motion_z_distance=4, kernel_size=3)
        cfg["time_enc"].update(dim=8)
    init_kwargs = dict(c_dim=0, w_dim=cfg["w_dim"], img_resolution=32 if smoke else 256, img_channels=3,
                       mapping_kwargs=dict(num_layers=2),
                       synthesis_kwargs=dict(channel_base=512 if smoke else 16384, channel_max=32 if smoke else 512,
                                             num_fp16_res=2 if smoke else 4, conv_clamp=256))
    return init_kwargs, cfg


def build_pipeline(smoke: bool, state: dict[str, torch.Tensor] | None = None):
    """A StyleGAN-V pipeline of the released architecture (tiny when ``smoke``), random weights or
    those of an official generator's ``state``."""
    from vgz.conversion.styleganv import generator_configs, split_generator_state
    from vgz.generators.stylegan2 import MappingNetwork
    from vgz.generators.styleganv import MotionMappingNetwork, StyleGANVSynthesisNetwork
    from vgz.pipelines.styleganv import StyleGANVPipeline

    mapping_cfg, motion_cfg, synthesis_cfg = generator_configs(*official_model_kwargs(smoke))
    nets = MappingNetwork(mapping_cfg), MotionMappingNetwork(motion_cfg), StyleGANVSynthesisNetwork(synthesis_cfg)
    if state is not None:
        for net, sd in zip(nets, split_generator_state(state)):
            net.load_weights(sd, source="official generator")
    mapping, motion, synthesis = nets
    return StyleGANVPipeline(mapping=mapping, motion=motion, synthesis=synthesis).eval()


def latents(pipe: Any, frames: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    from vgz.pipelines.base import as_generators

    return pipe.sample_latents(as_generators(list(range(batch)), batch), pipe.last_frame_time(frames))


def video_call(model: Any, frames: int, z: torch.Tensor, motion_z: torch.Tensor):
    """The timed call: ``frames`` frames of ``len(z)`` videos, each video in one synthesis call."""
    return lambda: model(len(z), frames, z=z, motion_z=motion_z, chunk_size=frames).frames


def variant_model(pipe: Any, spec: dict[str, Any]) -> Any:
    """The pipeline set up as a variant (a cast copy for a dtype; run-time settings otherwise)."""
    model = copy.deepcopy(pipe).to(dtype=spec["dtype"]) if "dtype" in spec else pipe
    model.synthesis.force_fp32 = spec.get("force_fp32", False)
    model.synthesis.channels_last = spec.get("channels_last")
    return model


def shapes_of(part: Part) -> list[tuple[int, int]]:
    return SMOKE_SHAPES if part.smoke else SHAPES


def generate(part: Part) -> None:
    torch.manual_seed(0)
    pipe = build_pipeline(part.smoke).to(part.device)
    part.add(what="model", parameters=sum(p.numel() for m in pipe.components.values() for p in m.parameters()),
             resolution=pipe.synthesis.img_resolution, num_fp16_res=pipe.synthesis.config.num_fp16_res)
    for frames, batch in shapes_of(part):
        z, motion_z = latents(pipe, frames, batch)
        reference = None
        for name, spec in VARIANTS.items():
            if part.time_left() < 5:
                part.skipped(f"generate {name} {frames}x{batch}", "budget spent")
                continue
            model = variant_model(pipe, spec)
            try:
                timing = measure(part, video_call(model, frames, z, motion_z))
            except RuntimeError as exc:
                if not is_oom(exc):
                    raise
                part.add(what="generate", variant=name, frames=frames, batch=batch, error="out of memory")
                continue
            finally:
                del model
                pipe.synthesis.force_fp32, pipe.synthesis.channels_last = False, None
            if name == "fp32":
                reference = timing.output
            part.add(what="generate", variant=name, frames=frames, batch=batch, **timing.fields(),
                     frames_per_s=round(frames * batch / timing.median_s, 2),
                     max_diff_vs_fp32=max_diff(timing.output, reference))
            timing.output = None
            free_memory(part.device)


def compile_backend(part: Part) -> str:
    """Inductor on a GPU; on a CPU (the smoke run) ``eager``, which traces the model through Dynamo
    as inductor would (graph breaks, guards) but needs no C++ compiler and compiles in seconds."""
    return part.options.get("compile_backend") or ("inductor" if part.device == "cuda" else "eager")


def compiled(part: Part) -> None:
    torch.manual_seed(0)
    pipe = build_pipeline(part.smoke).to(part.device)
    backend = compile_backend(part)
    eager = copy.deepcopy(pipe)
    eager.synthesis.force_fp32 = True
    pipe.synthesis.compile(backend=backend)
    # Each new shape compiles anew; the shapes used most (8 videos) come first. The smoke run
    # compiles one (a second costs a recompilation of the same code).
    shapes = sorted(shapes_of(part), key=lambda s: -s[1])
    compile_s = 0.0  # a new shape compiles again, for about as long as the last one did
    for frames, batch in shapes[:1] if part.smoke else shapes:
        if part.time_left() < compile_s + 10:
            part.skipped(f"compile {frames}x{batch}", f"budget spent (the last shape compiled in {compile_s:.0f} s)")
            continue
        z, motion_z = latents(pipe, frames, batch)
        with torch.no_grad():
            reference = video_call(eager, frames, z, motion_z)()
        timing = measure(part, video_call(pipe, frames, z, motion_z))
        compile_s = timing.first_s
        part.add(what="generate", variant="compile", backend=backend, frames=frames, batch=batch, **timing.fields(),
                 frames_per_s=round(frames * batch / timing.median_s, 2),
                 max_diff_vs_fp32=max_diff(timing.output, reference))
        del reference, timing
        free_memory(part.device)


def official(part: Part) -> None:
    """The official generator and vgz's pipeline on the same weights and inputs (``mixed`` precision
    on both: the official code runs its ``num_fp16_res`` blocks in fp16 too)."""
    path = part.options.get("official")
    if not path:
        part.skipped("official", "no --official PATH (a universome/stylegan-v checkout) given")
        return
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench_styleganv_generate import import_official

    networks, OmegaConf = import_official(path)
    init_kwargs, cfg = official_model_kwargs(part.smoke)
    cfg = OmegaConf.create(cfg)
    init_kwargs["mapping_kwargs"]["cfg"] = cfg
    torch.manual_seed(0)
    theirs = networks.Generator(**init_kwargs, cfg=cfg).eval().requires_grad_(False)
    ours = build_pipeline(part.smoke, {k: v.clone() for k, v in theirs.state_dict().items()}).to(part.device)
    theirs.to(part.device)
    from vgz.pipelines.base import to_unit_range

    for frames, batch in shapes_of(part):
        if part.time_left() < 10:
            part.skipped(f"official {frames}x{batch}", "budget spent")
            continue
        z, motion_z = latents(ours, frames, batch)
        t = torch.arange(frames, dtype=torch.float32, device=part.device).repeat(batch, 1)
        c = torch.zeros([batch, 0], device=part.device)

        def call_official() -> torch.Tensor:
            with torch.no_grad():
                out = theirs(z, c, t, motion_z=motion_z, noise_mode="const")
            return to_unit_range(out).reshape(batch, frames, *out.shape[1:])

        results = {}
        for side, fn in (("official", call_official), ("vgz", video_call(ours, frames, z, motion_z))):
            try:
                results[side] = measure(part, fn)
            except RuntimeError as exc:
                if not is_oom(exc):
                    raise
                part.add(what="official", side=side, frames=frames, batch=batch, error="out of memory")
            free_memory(part.device)
        if len(results) < 2:
            continue
        off, vgz_ = results["official"], results["vgz"]
        part.add(what="official", frames=frames, batch=batch, official_frames_per_s=round(frames * batch / off.median_s, 2),
                 vgz_frames_per_s=round(frames * batch / vgz_.median_s, 2), speedup=round(off.median_s / vgz_.median_s, 3),
                 official_peak_mib=off.fields()["peak_mib"], vgz_peak_mib=vgz_.fields()["peak_mib"],
                 max_diff=max_diff(vgz_.output, off.output), custom_ops=official_custom_ops())
        del results, off, vgz_
        free_memory(part.device)


def build_official_ops(path: str) -> dict[str, bool]:
    """Build the official code's CUDA plugins (nvcc, minutes on a fresh machine) into
    ``TORCH_EXTENSIONS_DIR``; the suite runs this beside the GPU parts, so the ``official`` part
    (last) finds them built. Returns which built (the others fall back to PyTorch code)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench_styleganv_generate import import_official

    import_official(path)
    from src.torch_utils import custom_ops
    from src.torch_utils.ops import bias_act, upfirdn2d

    custom_ops.verbosity = "full"  # the compiler's messages in the build log, where a build fails
    return {"bias_act": bool(bias_act._init()), "upfirdn2d": bool(upfirdn2d._init())}


def official_custom_ops() -> dict[str, bool] | None:
    """Whether the official code runs its CUDA plugins (True) or their PyTorch fallbacks (False)."""
    found = {}
    for name in ("bias_act", "upfirdn2d"):
        module = sys.modules.get(f"src.torch_utils.ops.{name}") or sys.modules.get(f"torch_utils.ops.{name}")
        if module is not None:
            found[name] = getattr(module, "_plugin", None) is not None
    return found or None
