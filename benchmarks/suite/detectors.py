"""Detector part: I3D clips/s (FVD) and Inception frames/s (FID), float32 contiguous and channels-last.

Random weights (speed does not depend on them), uint8 input as the metrics feed it: FVD16 clips of
16 frames at 256x256 (resized to 224 inside), FID frames at 256x256 (resized to 299). vgz's
default is channels-last (``channels_last=True`` in ``I3DConfig`` / ``InceptionConfig``), chosen on
CPUs; this part says whether it pays on the GPU too. The difference column is the largest
difference of the channels-last features from the contiguous ones.
"""

from __future__ import annotations

from functools import partial

import torch

from suite.part import Part, free_memory, max_diff, measure


def detectors(part: Part) -> None:
    from vgz.metrics.detectors import randomize_
    from vgz.metrics.i3d import I3DDetector
    from vgz.metrics.inception import InceptionConfig, InceptionDetector

    gen = torch.Generator().manual_seed(0)
    size = 64 if part.smoke else 256
    clips, clip_len, images = (1, 9, 2) if part.smoke else (16, 16, 128)
    inputs = {
        "i3d": torch.randint(0, 256, (clips, clip_len, 3, size, size), dtype=torch.uint8, generator=gen),
        "inception": torch.randint(0, 256, (images, 3, size, size), dtype=torch.uint8, generator=gen),
    }
    for name, unit in (("i3d", "clips"), ("inception", "frames")):
        x = inputs[name].to(part.device)
        reference = None
        for channels_last in (False, True):
            if part.time_left() < 5:
                part.skipped(f"detectors {name} channels_last={channels_last}", "budget spent")
                continue
            torch.manual_seed(0)  # the same random weights in both layouts
            detector = (randomize_(I3DDetector(channels_last=channels_last)) if name == "i3d" else
                        randomize_(InceptionDetector(InceptionConfig(channels_last=channels_last))))
            detector = detector.to(part.device)
            with torch.no_grad():
                timing = measure(part, partial(detector, x))
            if not channels_last:
                reference = timing.output
            part.add(what="detector", detector=name, channels_last=channels_last, batch=len(x),
                     input=list(x.shape), **timing.fields(), per_s=round(len(x) / timing.median_s, 2), unit=unit,
                     max_diff_vs_contiguous=max_diff(timing.output, reference))
            del detector, timing
            free_memory(part.device)
