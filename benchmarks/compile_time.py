"""Compile times: ``pdelang compile`` cold vs ``python -c "import torch"`` cold, and per spec.

*Cold* is a fresh interpreter: ``python -m pdelang compile SPEC -o FILE`` in a subprocess
(with this checkout on ``PYTHONPATH``), wall time including the interpreter's start, timed
interleaved with ``python -c "import torch"``.  *Warm* is in-process: ``compile_spec`` of a
freshly loaded spec, the second call (the imports and first-call caches already paid).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import Figure
from benchmarks.timing import interleaved

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _runner(argv: list[str], env: dict):
    def run():
        done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                               f"{done.stderr.strip()[-500:]}")
    return run


def compile_command(spec: Path, output: Path) -> list[str]:
    return [sys.executable, "-m", "pdelang", "compile", str(spec), "-o", str(output)]


def versus_import_torch(cfg) -> list[Figure]:
    env = _env()
    with tempfile.TemporaryDirectory() as tmp:
        spec = REPO / "specs" / "master.yaml"
        variants = {
            "compile": _runner(compile_command(spec, Path(tmp) / "master.py"), env),
            "import torch": _runner([sys.executable, "-c", "import torch"], env),
        }
        t = interleaved(variants, cfg.rounds_compile, 1 if cfg.warmup else 0)
    return [Figure("compile", "`pdelang compile specs/master.yaml` cold vs "
                   "`python -c \"import torch\"` cold (fresh subprocesses)", "master",
                   t.ratio("compile", "import torch"), 1.0, strict=True,
                   ours_ms=t.median("compile") * 1e3, peer_ms=t.median("import torch") * 1e3,
                   rounds=t.rounds, check="")]


def per_spec(cfg, specs: list[Path]) -> tuple[list[Figure], str]:
    """Cold (subprocess) and warm (in-process second call) compile time of every spec."""
    from pdelang.compiler.driver import compile_spec
    from pdelang.compiler.spec.load import load_spec

    env = _env()
    rows = ["| spec | cold ms (fresh `python -m pdelang compile`) | warm ms (in-process, "
            "second call) | first in-process call ms |", "|---|---|---|---|"]
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            cold = interleaved({"cold": _runner(compile_command(spec, Path(tmp) / "out.py"),
                                                env)}, cfg.rounds_compile, 0)
            calls = []
            for _ in range(1 + cfg.rounds_compile):
                start = time.perf_counter()
                compile_spec(load_spec(spec))
                calls.append(time.perf_counter() - start)
            warm = sorted(calls[1:])[len(calls[1:]) // 2]
            cold_ms = cold.median("cold") * 1e3
            name = spec.relative_to(REPO).as_posix()
            rows.append(f"| {name} | {cold_ms:.0f} | {warm * 1e3:.0f} | {calls[0] * 1e3:.0f} |")
            figures.append(Figure("compile_specs", f"compile {name}: warm / cold",
                                  spec.stem, warm * 1e3 / cold_ms, None, ours_ms=warm * 1e3,
                                  peer_ms=cold_ms, rounds=cfg.rounds_compile,
                                  check=f"first in-process call {calls[0] * 1e3:.0f} ms"))
    return figures, "\n".join(rows)
