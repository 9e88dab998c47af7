"""Timing helpers shared by the benchmark scripts (run them as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import platform
import time
from typing import Callable

import torch

import vgz


def time_fn(fn: Callable[[], object], iters: int, warmup: int, device: str) -> list[float]:
    """Seconds per call, ``iters`` samples after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def peak_memory(fn: Callable[[], object], device: str) -> float | None:
    """Peak GPU memory of one call in MiB (None on CPU)."""
    if device != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def describe(device: str) -> str:
    """One line naming the software and the machine."""
    where = torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())
    return (f"vgz {vgz.__version__}, torch {torch.__version__}, device {device} ({where}), "
            f"threads {torch.get_num_threads()}")
