"""Where a sweep's units run: in this process (``local``) or as Ray tasks (``ray``).

Both executors take the same list of units (:mod:`pdelang.lab.ablation.units`) and yield
``(position, result)`` pairs as units finish, each result from the same pure function
:func:`~pdelang.lab.ablation.units.run_unit` — in process, one after the other, for ``local``;
one Ray task per unit, with declared resources (``num_cpus`` = the unit's torch threads,
one GPU per task with ``--device cuda``), for ``ray``.  A unit whose Ray task itself fails
(a worker killed, out of memory) yields ``{"error": …}`` like a unit that failed inside.

Ray is an optional extra (``pip install -e ".[distributed]"``).  Without ``address`` a
local Ray instance sized to the machine is started (and stopped afterwards); with it,
``ray.init(address=…)`` joins a running cluster (``auto``: the one this machine belongs
to).  A Ray session already initialized in this process is used as it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
import logging

from pdelang.lab.ablation.units import run_unit, unit_error
from pdelang.errors import PdelangError

__all__ = ["EXECUTORS", "Progress", "run_local", "run_ray"]

EXECUTORS = ("local", "ray")


class Progress:
    """A tqdm bar over a sweep's units: done / running / failed (or nothing)."""

    def __init__(self, total: int, enabled: bool, desc: str = "tasks") -> None:
        self.done = self.failed = self.running = 0
        self.bar = None
        if enabled and total:
            from tqdm import tqdm  # lazy: tqdm
            self.bar = tqdm(total=total, desc=desc, unit="task", position=0)

    def update(self, *, running: int | None = None, finished: dict | None = None,
               label: str | None = None) -> None:
        if running is not None:
            self.running = running
        if finished is not None:
            self.done += 1
            self.failed += bool(finished.get("error"))
        if self.bar is not None:
            postfix = f"running {self.running}, failed {self.failed}"
            self.bar.set_postfix_str(postfix + (f", {label}" if label else ""), refresh=False)
            self.bar.update(1 if finished is not None else 0)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_local(units: Sequence[dict], progress: Progress, step_bars: bool = False,
              labels: Callable[[dict], str] | None = None) -> Iterator[tuple[int, dict]]:
    """Run the units in this process, in order."""
    for position, unit in enumerate(units):
        progress.update(running=1, label=labels(unit) if labels else None)
        result = run_unit(unit, progress=step_bars)
        progress.update(running=0, finished=result)
        yield position, result


def import_ray():
    try:
        import ray  # lazy: ray
    except ImportError:
        raise PdelangError("--executor ray needs Ray, which is not installed",
                           suggestion='pip install -e ".[distributed]" (or pip install ray)') \
            from None
    return ray


def machine_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_ray(units: Sequence[dict], progress: Progress, *, address: str | None = None,
            cpus: int = 1, gpus: int = 0, labels: Callable[[dict], str] | None = None,
            num_cpus: int | None = None) -> Iterator[tuple[int, dict]]:
    """Run every unit as one Ray task (``cpus`` CPUs and ``gpus`` GPUs each) and yield the
    results as they arrive (``ray.wait``)."""
    ray = import_ray()
    started_here = False
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
            else:
                ray.init(num_cpus=num_cpus or machine_cpus(), include_dashboard=False,
                         logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise PdelangError(f"cannot start or join the Ray cluster"
                               f"{f' at {address}' if address else ''}: {unit_error(exc)}",
                               suggestion="start one with `ray start --head` and pass "
                                          "--address auto (or HOST:PORT); without --address "
                                          "a local instance is started") from None
        started_here = True
    try:
        resources = ray.cluster_resources()
        if gpus and resources.get("GPU", 0) < gpus:
            raise PdelangError("--device cuda: the Ray cluster has no GPU",
                               suggestion="join a cluster with GPUs (--address) or use "
                                          "--device cpu")
        if resources.get("CPU", 0) < cpus:
            raise PdelangError(f"each task needs {cpus} CPUs (--threads) but the Ray cluster "
                               f"has {resources.get('CPU', 0):g}",
                               suggestion="lower --threads")
        slots = int(resources.get("CPU", 1) // cpus)
        if gpus:
            slots = min(slots, int(resources.get("GPU", 0) // gpus))
        remote = ray.remote(run_unit).options(num_cpus=cpus, num_gpus=gpus, max_retries=1)
        pending = {remote.remote(unit): position for position, unit in enumerate(units)}
        # Ray does not say which queued task runs: at most one per free slot does
        progress.update(running=min(slots, len(pending)))
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                position = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the task, not the unit, failed
                    unit = units[position]
                    result = {"kind": unit["kind"], "variant": unit["variant"],
                              "seed": unit.get("seed"), "compiled": True,
                              "error": f"Ray task failed: {unit_error(exc)}"}
                progress.update(running=min(slots, len(pending)), finished=result,
                                label=labels(units[position]) if labels else None)
                yield position, result
    finally:
        if started_here:
            ray.shutdown()

