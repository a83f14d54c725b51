"""`pdelang check` never imports torch, and a cold `check` is faster than `import torch`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).parent.parent.parent
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=300)


def test_check_never_imports_torch():
    code = ("import sys; from pdelang.cli.main import main; "
            "rc = main(['check', 'specs/master.yaml']); "
            "assert rc == 0, rc; "
            "assert 'torch' not in sys.modules, 'pdelang check imported torch'; "
            "rc = main(['check', '--json', 'specs/vit2d.yaml']); "
            "assert rc == 0, rc; "
            "assert 'torch' not in sys.modules, 'pdelang check imported torch'")
    proc = _python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    return elapsed


def test_cold_check_is_faster_than_importing_torch():
    """Best of 3 each, interleaved so that a change in machine load hits both alike."""
    checks, torches = [], []
    for _ in range(3):
        checks.append(_wall([sys.executable, "-m", "pdelang", "check", "specs/master.yaml"]))
        torches.append(_wall([sys.executable, "-c", "import torch"]))
    check, torch = min(checks), min(torches)
    print(f"cold `pdelang check specs/master.yaml`: {check:.2f} s; `import torch`: {torch:.2f} s")
    assert check < torch, (
        f"cold check {check:.2f} s is not faster than import torch {torch:.2f} s; "
        "profile with `python -X importtime -m pdelang check specs/master.yaml`")
