"""Regression inputs from fuzzing that are not spec files (the spec-file ones are in
tests/frontend/bad_specs/120–145): ``--set`` strings, bytes, environment settings, and the
command line.  Each gives its located error — or compiles — as recorded here."""

from __future__ import annotations

import io
import time
from contextlib import redirect_stderr, redirect_stdout

import fuzz_strategies as F
import pytest

from pdelang.cli.main import main
from pdelang.compiler.driver import compile_spec
from pdelang.errors import OverrideError, PdelangError, SpecError, SpecSyntaxError
from pdelang.compiler.spec.load import load_spec, load_spec_text

HEAT = F.REPO / "specs" / "heat1d.yaml"
MASTER = F.REPO / "specs" / "master.yaml"

BOMB = ("[&a [lol, lol, lol, lol, lol, lol, lol, lol, lol], &b [*a, *a, *a, *a, *a, *a, *a, *a, "
        "*a], &c [*b, *b, *b, *b, *b, *b, *b, *b, *b], &d [*c, *c, *c, *c, *c, *c, *c, *c, *c], "
        "&e [*d, *d, *d, *d, *d, *d, *d, *d, *d], &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]]")

# (override, error class or None for "compiles", message fragment, column of the caret)
OVERRIDES = [
    (f"description={BOMB}", OverrideError, "too many values once its aliases are expanded",
     None),
    ("description=&r [1, *r]", OverrideError, "contains itself", 19),
    ("time.span=" + "[" * 60 + "]" * 60, OverrideError, "nests lists and mappings too deeply",
     None),
    ("time.layers=1.5", SpecError, "'time.layers' must be an integer", 19),
    ("time.layers=1e5", SpecError, "'time.layers' must be an integer", 19),
    ("time.substeps=" + "9" * 5000, OverrideError, "is not valid YAML", 21),
    ("grid.spacing=" + "1" + "0" * 400, SpecError, "must be a finite number", 20),
    ("grid.spacing=1e400", SpecError, "must be finite", 20),
    ("grid.spacing\n=2", None, "", None),  # whitespace around the key is stripped
    ("grid.spacing=2\n", None, "", None),
    ("name=heat\n", None, "", None),  # YAML: a plain scalar ends before the newline
    ('name="heat\\n"', SpecError, "'name' must be a name", 12),
    ("grid.sp acing=2", OverrideError, "is not a dotted name", 7),
    ("terms.diffusion=" + "tanh(" * 60 + "u" + ")" * 60, PdelangError, "nests", None),
    ("terms.diffusion=" + " + ".join(["u"] * 1200), PdelangError, "more than 1,000 operators",
     None),
    ("terms.diffusion=2^2^2^2^2^2 * laplace(u)", PdelangError, "too large a number", None),
    ("terms.diffusion=(0-1)^0.5 * laplace(u)", PdelangError, "not a real number", None),
    ("terms.diffusion=sigmoid(u)^D", PdelangError, "an exponent must be a number", None),
    ("terms.diffusion=1e-320 * laplace(u)", None, "", None),
    ("terms.diffusion=exp(-1000) * laplace(u)", None, "", None),
    ("fields.u.channels=1048576|terms.diffusion=attention(u)", SpecError, "weights", None),
    (".".join(["grid"] * 40) + "=1", OverrideError, "is not a dotted name", 7),
    # an init: too long for a file name (the file probe raised OSError: File name too long)
    ("init=" + "tanh(" * 80 + "u" + ")" * 80, SpecError, "not an initial condition", 12),
]


@pytest.mark.parametrize("override, cls, fragment, col", OVERRIDES,
                         ids=[f"{i:02d}" for i in range(len(OVERRIDES))])
def test_override_regressions(override, cls, fragment, col):
    started = time.perf_counter()
    overrides = override.split("|") if "|" in override and "[" not in override else [override]
    if cls is None:
        F.outcome("regressions", lambda: compile_spec(HEAT, overrides))
        return
    with F.time_limit(), pytest.raises(cls) as info:
        compile_spec(HEAT, overrides)
    error = info.value
    F.COUNTS["regressions"] += 1
    F.OUTCOMES[f"regressions:{type(error).__name__}"] += 1
    F.check_error(error)
    assert fragment in error.message, error.message
    if col is not None:
        assert error.location.file == "<--set>", str(error)
        assert error.location.col == col, str(error)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("raw, line, col", [
    (b"pdelang: 1\nname: \xff\xfe\n", 2, 7),
    (b"pdelang: 1\nname: caf\xc3\n", 2, 10),
    (b"\xef\xbb\xbfpdelang: 1\nname: a\x00b\n", 2, 8),
    (b"pdelang: 1\nname: a\xed\xa0\x80\n", 2, 8),
])
def test_bytes_are_located_at_the_bad_byte(tmp_path, raw, line, col):
    path = tmp_path / "bytes.yaml"
    path.write_bytes(raw)
    with pytest.raises((SpecError, SpecSyntaxError)) as info:
        load_spec(path)
    F.check_error(info.value)
    assert (info.value.location.line, info.value.location.col) == (line, col), str(info.value)


def test_an_invalid_limit_setting_is_a_located_error(monkeypatch):
    monkeypatch.setenv("PDELANG_MAX_NESTING", "lots")
    with pytest.raises(PdelangError) as info:
        compile_spec(HEAT)
    F.check_error(info.value)
    assert info.value.location.file == "<environment>"
    assert "PDELANG_MAX_NESTING" in info.value.message


def test_limits_can_be_raised(monkeypatch):
    deep = "tanh(" * 55 + "u" + ")" * 55
    with pytest.raises(PdelangError, match="nests more than 50"):
        compile_spec(HEAT, [f"terms.diffusion={deep}"], until="symbolic")
    monkeypatch.setenv("PDELANG_MAX_NESTING", "60")
    compile_spec(HEAT, [f"terms.diffusion={deep}"], until="symbolic")


@pytest.mark.parametrize("argv", [
    ["check", str(HEAT), "--set", f"description={BOMB}"],
    ["check", str(HEAT), "--set", "terms.diffusion=" + "tanh(" * 300 + "u" + ")" * 300],
    ["compile", str(HEAT), "--set", "terms.diffusion=2^2^2^2^2^2"],
    ["check", str(HEAT), "--json", "--set", "grid.spacing=" + "9" * 400],
    ["check", str(HEAT), "--set", "name=a\nimport os"],
])
def test_the_command_line_exits_2_with_a_located_message(argv):
    out, err = io.StringIO(), io.StringIO()
    with F.time_limit(), redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    F.COUNTS["regressions"] += 1
    F.OUTCOMES["regressions:exit 2"] += 1
    assert code == 2, (out.getvalue(), err.getvalue())
    assert err.getvalue().startswith("<--set>:1:"), err.getvalue()
    assert "Traceback" not in err.getvalue()


def test_a_payload_name_never_reaches_the_class_name():
    text = F.SPEC_TEXTS["heat1d"].replace("name: heat1d", 'name: "heat1d\\nimport os"')
    with pytest.raises(SpecError, match="'name' must be a name"):
        load_spec_text(text, "payload.yaml")
