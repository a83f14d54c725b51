"""Timing helpers shared by the benchmarks: interleaved rounds, medians, the machine.

Every comparison runs its variants in one process, one call of each per round, in an order
that rotates from round to round (so drift in the machine's load hits every variant alike),
after a warm-up; ratios are taken between the medians of the rounds.  Nothing here asserts
a time: benchmarks measure, tests never time.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


def sync(device: torch.device | str) -> None:
    """Wait for queued CUDA work (a no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timings:
    """Per-variant times (seconds) of ``rounds`` interleaved rounds."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def minimum(self, name: str) -> float:
        return min(self.times[name])

    def ratio(self, ours: str, theirs: str) -> float:
        return self.median(ours) / self.median(theirs)

    @property
    def rounds(self) -> int:
        return min((len(t) for t in self.times.values()), default=0)


def interleaved(variants: dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
                device: torch.device | str = "cpu") -> Timings:
    """Time each variant ``rounds`` times, one call of each per round, rotating the order.

    ``warmup`` untimed calls of every variant come first (compilation, allocator, caches).
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    sync(device)
    out = Timings({name: [] for name in names})
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]  # rotate the start
        for name in order:
            sync(device)
            start = time.perf_counter()
            variants[name]()
            sync(device)
            out.times[name].append(time.perf_counter() - start)
    return out


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what the platform says)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict:
    """What the numbers were measured on."""
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
