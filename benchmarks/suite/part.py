"""What a suite part works with: its settings, its deadline, its record file, and timing helpers."""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch


@dataclass
class Part:
    """One part's run: where its records go, when it must stop, and the suite's options.

    Attributes:
        name: the part's name (``generate``, ``train``, ...).
        records: a JSON-lines file; :meth:`add` appends one record per measurement and flushes it,
            so a part killed at its budget keeps what it measured.
        budget_s: seconds the part may take (the suite kills it at ``budget_s`` plus a grace).
        smoke: tiny sizes on any device (the test suite runs the parts this way).
        device: ``"cuda"`` or ``"cpu"``.
        options: the suite's command-line options (``official``: a stylegan-v checkout, ...).
    """

    name: str
    records: str
    budget_s: float
    smoke: bool
    device: str
    options: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def time_left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)

    def add(self, **record: Any) -> None:
        """Append one record (a flat dict of JSON values) to the part's record file."""
        with open(self.records, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def skipped(self, what: str, why: str) -> None:
        """Record that a measurement was not made (e.g. no time left for it) and why."""
        self.add(what=what, skipped=why)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def free_memory(device: str) -> None:
    """Drop cached blocks between measurements, so that one's leftovers do not count in the next."""
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def max_diff(a: torch.Tensor | None, b: torch.Tensor | None) -> float | None:
    """Largest absolute difference of two outputs (None when either is missing)."""
    if a is None or b is None:
        return None
    return float((a.float() - b.float().to(a.device)).abs().max())


@dataclass
class Timing:
    """The result of :func:`measure`: the first call (warm-up, compilation) and the steady calls."""

    first_s: float
    seconds: list[float]
    peak_mib: float | None
    base_mib: float | None
    output: Any

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds) if self.seconds else self.first_s

    def fields(self) -> dict[str, Any]:
        return dict(first_call_s=round(self.first_s, 4), s_per_call=round(self.median_s, 5), iters=len(self.seconds),
                    peak_mib=None if self.peak_mib is None else round(self.peak_mib, 1),
                    base_mib=None if self.base_mib is None else round(self.base_mib, 1))


def measure(part: Part, fn: Callable[[], Any], *, max_iters: int = 5) -> Timing:
    """Time ``fn``: one warm-up call, then up to ``max_iters`` calls while the part has time for them
    (at least one); on CUDA also the peak memory over the timed calls (MiB, weights and inputs
    included) and what was allocated before them (``base``)."""
    device = part.device
    if part.smoke:  # the smoke run checks that everything runs, not how fast
        max_iters = 1
    sync(device)
    start = time.perf_counter()
    output = fn()
    sync(device)
    first = time.perf_counter() - start
    base = None
    if device == "cuda":
        base = torch.cuda.memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
    seconds: list[float] = []
    while len(seconds) < max_iters:
        if seconds and part.time_left() < 2 * statistics.median(seconds) + 1:
            break
        start = time.perf_counter()
        fn()
        sync(device)
        seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return Timing(first, seconds, peak, base, output)


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
