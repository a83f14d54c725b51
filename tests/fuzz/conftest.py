"""The fuzz tests report how many cases they ran (the issue asks for the fuzz count in the
test output): one line per test and the total, in pytest's terminal summary."""

from __future__ import annotations

import time

import fuzz_strategies as F

_STARTED: dict[str, float] = {}
_SECONDS: dict[str, float] = {}


def pytest_runtest_setup(item):
    _STARTED[item.nodeid] = time.perf_counter()


def pytest_runtest_teardown(item):
    if item.nodeid in _STARTED and "tests/fuzz/" in item.nodeid.replace("\\", "/"):
        _SECONDS[item.nodeid] = time.perf_counter() - _STARTED.pop(item.nodeid)


def pytest_terminal_summary(terminalreporter):
    if not F.COUNTS:
        return
    total = sum(F.COUNTS.values())
    seconds = sum(_SECONDS.values())
    terminalreporter.write_sep(
        "=", f"pdelang fuzz: {total:,} cases in {seconds:.1f} s ({F.PROFILE} profile)")
    for test, count in sorted(F.COUNTS.items()):
        errors = sum(n for key, n in F.OUTCOMES.items()
                     if key.startswith(test + ":") and not key.endswith(":ok"))
        terminalreporter.write_line(
            f"  {test}: {count:,} cases ({F.OUTCOMES.get(test + ':ok', 0):,} accepted, "
            f"{errors:,} located errors)")
    if F.SLOWEST[0]:
        terminalreporter.write_line(f"  slowest case: {F.SLOWEST[1]:.2f} s ({F.SLOWEST[0]})")
