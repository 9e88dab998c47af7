"""Inversion part: the pSp encoders' images/s (fp32 and bf16 autocast) and pipeline encode + decode.

pSp's released architecture, random weights: the W+ encoder (IR-SE50, 18 codes) and the W encoder
on 256x256 images in batches of 16 (smoke: the tiny encoder), and ``PSPPipeline`` encode + decode
(a 1024x1024 generator) of the same batch; peak memory, and the largest difference of bf16's
codes from fp32's.
"""

from __future__ import annotations

import torch

from suite.part import Part, free_memory, max_diff, measure


def inversion(part: Part) -> None:
    import vgz

    batch = 2 if part.smoke else 16
    preset = "tiny" if part.smoke else "paper"
    torch.manual_seed(0)
    pipe = vgz.create("pipeline", "psp", preset=preset).to(part.device)
    size = pipe.encoder.config.input_size
    images = torch.rand([batch, 3, size, size], generator=torch.Generator().manual_seed(0)).to(part.device)
    w_encoder = vgz.create("encoder", "psp-w", preset="tiny" if part.smoke else "ir-se50").eval().to(part.device)
    for name, net in (("psp", pipe.encoder), ("psp-w", w_encoder)):
        reference = None
        for precision in ("fp32", "bf16"):
            if part.time_left() < 5:
                part.skipped(f"inversion {name} {precision}", "budget spent")
                continue
            dtype = torch.bfloat16 if precision == "bf16" else None

            def run() -> torch.Tensor:
                with torch.no_grad(), torch.autocast(part.device, dtype=torch.bfloat16, enabled=dtype is not None):
                    return net(images * 2 - 1).float()

            timing = measure(part, run)
            if reference is None:
                reference = timing.output
            part.add(what="encoder", encoder=name, precision=precision, batch=batch, **timing.fields(),
                     images_per_s=round(batch / timing.median_s, 2), max_diff_vs_fp32=max_diff(timing.output, reference))
            free_memory(part.device)
    if part.time_left() > 10:
        timing = measure(part, lambda: pipe.decode(pipe.encode(images)))
        part.add(what="pipeline", call="decode(encode(images))", batch=batch, **timing.fields(),
                 images_per_s=round(batch / timing.median_s, 2), resolution=pipe.synthesis.img_resolution)
