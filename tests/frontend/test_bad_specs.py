"""The corpus of bad specs: every user error is reported with its class, a precise message,
the exact line and column in the YAML file, a caret line and (where one exists) a hint.

Each file in ``bad_specs/`` starts with

    # expect: <error class> | <message fragment> | <line>:<col> [| <hint fragment>]

The line and column are those of the offending text in the file itself (for an error inside
a term or the equation: inside the expression string, quotes and block scalars included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import pdelang.errors as errors
from pdelang.compiler.driver import compile_spec
from pdelang.errors import PdelangError
from pdelang.compiler.spec.load import load_spec

HERE = Path(__file__).parent
BAD = HERE / "bad_specs"
REPO = HERE.parent.parent
FILES = sorted(BAD.glob("*.yaml"))


@dataclass(frozen=True)
class Expectation:
    cls: str
    message: str
    line: int
    col: int
    hint: str | None


def expectation(path: Path) -> Expectation:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: no '# expect:' header"
    parts = [p.strip() for p in first[len("# expect: "):].split(" | ")]
    assert len(parts) in (3, 4), f"{path.name}: malformed header {first!r}"
    line, col = (int(x) for x in parts[2].split(":"))
    return Expectation(parts[0], parts[1], line, col, parts[3] if len(parts) == 4 else None)


def raised(path: Path) -> PdelangError:
    with pytest.raises(PdelangError) as info:
        compile_spec(load_spec(path))
    return info.value


def test_corpus_is_large_and_well_formed():
    assert len(FILES) >= 45
    numbers = [p.name.split("_", 1)[0] for p in FILES]
    assert len(set(numbers)) == len(numbers), "two bad specs share a number"
    for path in FILES:
        exp = expectation(path)
        assert issubclass(getattr(errors, exp.cls), PdelangError), exp.cls


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_bad_spec(path: Path):
    exp = expectation(path)
    err = raised(path)
    assert type(err).__name__ == exp.cls, str(err)
    assert exp.message in err.message, str(err)
    loc = err.location
    assert loc is not None
    assert Path(loc.file) == path
    assert (loc.line, loc.col) == (exp.line, exp.col), str(err)
    text = str(err)
    # file:line:col prefix, then the source line and a caret line under the column
    assert text.startswith(f"{path}:{exp.line}:{exp.col}: "), text
    source_lines = path.read_text(encoding="utf-8").splitlines() or [""]
    shown = source_lines[exp.line - 1]
    rendered = text.splitlines()
    assert any(r.endswith(f"| {shown}") for r in rendered), text
    caret_lines = [r for r in rendered if r.lstrip().startswith("|") and "^" in r]
    assert len(caret_lines) == 1, text
    caret = caret_lines[0].split("| ", 1)[1]
    assert caret.index("^") == exp.col - 1, text
    if exp.hint is not None:
        assert err.suggestion and exp.hint in err.suggestion, text
        assert f"hint: {err.suggestion}" in text


def test_error_at_col_points_at_the_named_text():
    """A spot check that the caret really sits under the offending token."""
    path = BAD / "46_unknown_operator.yaml"
    err = raised(path)
    line = path.read_text().splitlines()[err.location.line - 1]
    assert line[err.location.col - 1:].startswith("laplase")
    assert err.location.length == len("laplase")
    assert "^~~~~~~" in str(err)


def test_json_form_of_an_error():
    err = raised(BAD / "09_unknown_grid_key.yaml")
    data = err.to_json()
    assert data["kind"] == "spec error"
    assert (data["line"], data["col"]) == (7, 3)
    assert data["suggestion"] == "did you mean 'spacing'?"


CLI_CASES = [
    "01_yaml_tab_indent.yaml",
    "56_option_given_twice.yaml",  # raised inside the Lark transformer
]
CLI_JSON_CASE = "47_unknown_option.yaml"


@pytest.fixture(scope="module")
def cli_runs() -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """`python -m pdelang check …` on a few bad specs, run side by side (each is a cold start)."""
    env = dict(os.environ)
    commands = [("check", str((BAD / n).relative_to(REPO))) for n in CLI_CASES]
    commands.append(("check", "--json", str((BAD / CLI_JSON_CASE).relative_to(REPO))))
    procs = {args: subprocess.Popen([sys.executable, "-m", "pdelang", *args], cwd=REPO, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in commands}
    results = {}
    for args, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        results[args] = subprocess.CompletedProcess(args, proc.returncode, out, err)
    return results


@pytest.mark.parametrize("name", CLI_CASES)
def test_bad_spec_through_the_cli(name, cli_runs):
    """`python -m pdelang check FILE`: exit 2, `file:line:col` first, a caret, no traceback."""
    path = BAD / name
    exp = expectation(path)
    rel = path.relative_to(REPO)
    proc = cli_runs[("check", str(rel))]
    assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"{rel}:{exp.line}:{exp.col}: "), proc.stderr
    assert exp.message in proc.stderr
    assert any(line.lstrip().startswith("|") and "^" in line
               for line in proc.stderr.splitlines()), proc.stderr
    if exp.hint:
        assert "hint: " in proc.stderr and exp.hint in proc.stderr


def test_bad_spec_through_the_cli_json(cli_runs):
    path = BAD / CLI_JSON_CASE
    rel = path.relative_to(REPO)
    proc = cli_runs[("check", "--json", str(rel))]
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)["error"]
    exp = expectation(path)
    assert (data["line"], data["col"]) == (exp.line, exp.col)
    assert data["file"] == str(rel)
    assert data["kind"] == "operator error"
    assert data["suggestion"] == "did you mean 'heads'?"
    assert proc.stderr.startswith(f"{rel}:{exp.line}:{exp.col}: ")
