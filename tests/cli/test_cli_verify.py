"""`pdelang verify SPEC [--set K=V] [--json]`: the report, the issue's acceptance numbers on
the bundled specs, and the exit codes (0 pass, 1 a property fails, 2 a bad spec)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run


REPO = Path(__file__).parent.parent.parent
HEAT = "specs/heat1d.yaml"
# the line of heat1d's diffusion term (the misspelt operator's line in ``bad_spec``)
BAD_LINE = 1 + next(i for i, line in enumerate((REPO / HEAT).read_text().splitlines())
                    if "D * laplace(u)" in line)
RD2D = "specs/reaction_diffusion2d.yaml"
RD2D_ACCURACY_4 = ("--set", "discretization.laplace.accuracy=4")


@pytest.fixture(scope="module")
def bad_spec(tmp_path_factory) -> Path:
    """heat1d with a misspelt operator at BAD_LINE, column 18."""
    text = (REPO / HEAT).read_text().replace("D * laplace(u)", "D * laplce(u)")
    path = tmp_path_factory.mktemp("verify") / "bad.yaml"
    path.write_text(text)
    return path


class Launched:
    """`python -m pdelang verify …` processes (real cold starts), started together when the
    module begins so that they run while the in-process tests below do; ``result(key)``
    waits for one."""

    def __init__(self, commands: dict[str, list[str]]) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.commands = commands
        self.procs = {key: subprocess.Popen([sys.executable, "-m", "pdelang", *args], cwd=REPO,
                                            env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)
                      for key, args in commands.items()}
        self.done: dict[str, subprocess.CompletedProcess] = {}

    def result(self, key: str) -> subprocess.CompletedProcess:
        if key not in self.done:
            out, err = self.procs[key].communicate(timeout=300)
            self.done[key] = subprocess.CompletedProcess(self.commands[key],
                                                         self.procs[key].returncode, out, err)
        return self.done[key]

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


@pytest.fixture(scope="module", autouse=True)
def cli(bad_spec):
    launched = Launched({
        "rd2d": ["verify", RD2D, *RD2D_ACCURACY_4, "--json"],
        "bad": ["verify", str(bad_spec)],
        "bad-override": ["verify", HEAT, "--set", "discretization.laplace.accuracy=3"],
    })
    yield launched
    launched.close()


def _check_report(proc: subprocess.CompletedProcess, claimed: int) -> dict:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    # the contract: operators, stability, properties
    assert data["operators"], data
    for op in data["operators"]:
        assert {"name", "claimed_order", "observed_order", "errors"} <= set(op)
        assert op["claimed_order"] == claimed
        assert abs(op["observed_order"] - op["claimed_order"]) <= 0.15, op
        assert len(op["errors"]) >= 3 and all(e > 0 for e in op["errors"])
    stability = data["stability"]
    predicted, empirical = stability["predicted_max_dt"], stability["empirical_max_dt"]
    assert predicted > 0 and empirical > 0
    assert abs(empirical / predicted - 1) <= 0.05, stability
    assert data["properties"] and all(v is True for v in data["properties"].values())
    assert data["properties"]["stability_threshold"] is True
    assert data["properties"]["stability_bound_sharp"] is True
    assert data["passed"] is True
    return data


# --------------------------------------------------------------------- in-process (while the
# processes launched by the ``cli`` fixture run)
def test_heat1d():
    code, out, err = run("verify", HEAT, "--json")
    data = _check_report(subprocess.CompletedProcess([], code, out, err), claimed=2)
    assert [op["name"] for op in data["operators"]] == ["laplace"]
    assert data["properties"]["time_order[euler]"] is True
    assert data["properties"]["generated_equals_reference"] is True


def test_bad_spec_json(bad_spec):
    code, out, err = run("verify", str(bad_spec), "--json")
    assert code == 2
    assert err.startswith(f"{bad_spec}:{BAD_LINE}:18: ")
    error = json.loads(out)["error"]
    assert (error["file"], error["line"], error["col"]) == (str(bad_spec), BAD_LINE, 18)


def test_failed_property_exit_1():
    """An honest failure: 5 substeps make Δt = 0.02, twice the derived bound 0.0096 — the
    spec's own time step is unstable, and verify says so with exit code 1."""
    code, out, err = run("verify", HEAT, "--set", "time.substeps=5", "--json",
                         "--no-equivalence", "--steps", "500")
    assert code == 1, err
    data = json.loads(out)
    assert data["passed"] is False
    assert data["properties"]["stable_at_spec_dt"] is False
    assert [k for k, v in data["properties"].items() if not v] == ["stable_at_spec_dt"]
    # the text form names the failure
    code, out, _ = run("verify", HEAT, "--set", "time.substeps=5", "--no-equivalence",
                       "--steps", "500")
    assert code == 1
    assert "FAIL  stable_at_spec_dt" in out
    assert out.rstrip().endswith("1 property failed: stable_at_spec_dt")


def test_text_report_and_options():
    code, out, err = run("verify", HEAT, "--no-equivalence", "--steps", "500", "--seed", "3")
    assert code == 0, err
    assert out.startswith(f"{HEAT}: heat1d  (boundary periodic, scheme euler)")
    assert "generated_equals_reference" not in out  # --no-equivalence
    assert "(500 steps)" in out  # --steps reaches the sharpness check
    assert out.rstrip().endswith("result: all properties hold")


# --------------------------------------------------------------------- real processes
def test_reaction_diffusion2d_at_accuracy_4(cli):
    data = _check_report(cli.result("rd2d"), claimed=4)
    (op,) = data["operators"]
    assert op["axes"] == ["x", "y"] and op["accuracy"] == 4
    assert data["scheme"] == "rk4" and data["boundary"] == "neumann"
    # the linear part is D Δu + u (Allen–Cahn's reaction linearized): it grows the mean, so
    # the diffusion properties are not claimed (the heat specs check them)
    assert "conserves_mean" not in data["properties"]
    assert data["properties"]["time_order[rk4]"] is True


def test_bad_spec_exit_2_located_message_no_traceback(cli, bad_spec):
    proc = cli.result("bad")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"{bad_spec}:{BAD_LINE}:18: "), proc.stderr
    assert "unknown operator 'laplce'" in proc.stderr
    assert any(line.lstrip().startswith("|") and "^~~~~~" in line
               for line in proc.stderr.splitlines()), proc.stderr
    assert "did you mean 'laplace'?" in proc.stderr


def test_bad_override_exit_2(cli):
    proc = cli.result("bad-override")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("<--set>:1:"), proc.stderr
    assert "must be even" in proc.stderr
