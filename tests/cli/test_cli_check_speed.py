"""`pdelang check` never imports torch, so a cold `check` pays none of its import time.

(A wall-clock race of a cold `check` against `import torch` used to be here too; it flaked on
a loaded machine and checked nothing that test_check_never_imports_torch does not.)"""

from __future__ import annotations

import os
import subprocess
import sys
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
