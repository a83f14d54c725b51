"""The user example ``examples/test_my_spec.py`` passes.

``examples/`` is not in ``testpaths`` (a plain ``pytest`` collects ``tests/`` only, so nothing
is collected twice); the example runs here the way a user runs it, in its own process."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from testing_helpers import REPO

EXAMPLE = REPO / "examples" / "test_my_spec.py"


def test_user_example_passes():
    assert EXAMPLE.is_file()
    tests = len(re.findall(r"^def test_", EXAMPLE.read_text(), re.MULTILINE))
    assert tests >= 5
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
         "examples/test_my_spec.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert re.search(rf"\b{tests} passed\b", proc.stdout), proc.stdout[-2000:]
    assert not re.search(r"\b\d+ (failed|errors?|xfailed|skipped)\b", proc.stdout), proc.stdout
