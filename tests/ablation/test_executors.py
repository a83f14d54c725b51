"""Tests of the sweep's executors (``pdelang ablate --executor local|ray``) and ``--resume``.

The Ray tests (marked ``ray``) start a local Ray instance with 2 CPUs in a subprocess; they
are skipped when Ray is not installed (``pip install -e ".[distributed]"``, which
scripts/setup.sh installs, so CI runs them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ablation_helpers import TINY_SPEC, without_timing

from pdelang.lab.ablation.ablate import ablate
from pdelang.lab.ablation.formatting import json_safe
from pdelang.cli.ablate import _failures
from pdelang.errors import PdelangError

ROOT = Path(__file__).resolve().parents[2]
# two swap keys with two values each: 4 variants, each a drift unit and one training seed
SWAPS = ["stabilizers.norm.kind=layernorm,none", "stabilizers.residual=true,false"]



def command(spec, out, *extra):
    return [sys.executable, "-m", "pdelang", "ablate", spec, *[f"--swap={s}" for s in SWAPS],
            "--reference", "none", "--quick", "--json", "--out", str(out), *extra]


def environment():
    """The subprocess imports this checkout's pdelang (and so do its Ray workers)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def variant_files(out: Path) -> list[Path]:
    return sorted((out / "variants").glob("*.json"))


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """(spec path, out folder, results, seconds) of the ``--quick`` sweep of SWAPS on the tiny
    spec under the local executor, run once (in this process: ``ablate`` is what the command
    runs) for the tests that compare another run with it."""
    root = tmp_path_factory.mktemp("local_sweep")
    spec = root / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    out = root / "local"
    started = time.perf_counter()
    data = ablate(str(spec), SWAPS, reference="none", quick=True, progress=False, out=str(out))
    return str(spec), out, data, time.perf_counter() - started


# --- without Ray ------------------------------------------------------------------------------

def test_ray_executor_without_ray_names_the_extra(tiny_spec, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(PdelangError, match="needs Ray") as caught:
        ablate(tiny_spec, SWAPS, reference=None, train="none", progress=False,
               executor="ray")
    assert '".[distributed]"' in caught.value.suggestion


def test_option_errors_before_anything_runs(tiny_spec):
    with pytest.raises(PdelangError, match="unknown executor"):
        ablate(tiny_spec, SWAPS, train="none", progress=False, executor="dask")
    with pytest.raises(PdelangError, match="needs --executor ray"):
        ablate(tiny_spec, SWAPS, train="none", progress=False, address="auto")
    with pytest.raises(PdelangError, match="--resume needs the --out"):
        ablate(tiny_spec, SWAPS, train="none", progress=False, resume=True)


def test_a_failing_unit_is_reported_in_its_row_and_the_sweep_goes_on(tiny_spec, monkeypatch,
                                                                     tmp_path):
    from pdelang.lab.ablation import units

    real = units._train_unit

    def flaky(module, seed, train_overrides, options, progress):
        if seed == 1:
            raise RuntimeError("injected failure\nsecond line")
        return real(module, seed, train_overrides, options, progress)

    monkeypatch.setattr(units, "_train_unit", flaky)
    data = ablate(tiny_spec, ["stabilizers.residual=true,false"], reference=None, steps=2,
                  seeds=2, batch_size=8, progress=False, out=str(tmp_path / "out"))
    for variant in data["variants"]:  # seed 1 fails in both; drift and seed 0 still ran
        assert variant["compiled"] and variant["drift"]
        assert variant["error"] == "training seed 1: RuntimeError: injected failure"
    assert _failures(data["variants"]) == 1
    report = (tmp_path / "out" / "report.md").read_text()
    assert "injected failure" in report
    assert len(variant_files(tmp_path / "out")) == 2


def test_a_killed_sweep_resumes_without_redoing_finished_variants(tiny_spec, tmp_path):
    """SIGKILL the command once the first variant's file appears; ``--resume`` finishes the
    sweep, keeps that file as it was, and gives the results of an uninterrupted run."""
    out = tmp_path / "killed"
    process = subprocess.Popen(command(tiny_spec, out), cwd=ROOT, env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not variant_files(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = variant_files(out)
    assert 1 <= len(done) < 4, f"killed with {len(done)} of 4 variants done"
    assert not (out / "results.json").exists()
    first = done[0]
    before = (first.stat().st_mtime_ns, first.read_bytes())

    resumed = ablate(tiny_spec, SWAPS, reference=None, quick=True, progress=False,
                     out=str(out), resume=True)
    assert resumed["resumed"] == len(done)
    assert (first.stat().st_mtime_ns, first.read_bytes()) == before  # not run again
    assert len(variant_files(out)) == 4

    fresh = ablate(tiny_spec, SWAPS, reference=None, quick=True, progress=False,
                   out=str(tmp_path / "fresh"))
    saved = json.loads((out / "results.json").read_text())
    assert without_timing(saved) == without_timing(
        json.loads((tmp_path / "fresh" / "results.json").read_text()))
    assert without_timing(resumed)["variants"][-1] == without_timing(fresh)["variants"][-1]


def test_resume_refuses_the_files_of_another_sweep(tiny_spec, tmp_path):
    out = str(tmp_path / "out")
    ablate(tiny_spec, ["stabilizers.residual=true"], reference=None, train="none",
           progress=False, out=out)
    with pytest.raises(PdelangError, match=r"different sweep.*the training options") as caught:
        ablate(tiny_spec, ["stabilizers.residual=true"], reference=None, train="none",
               drift_samples=3, progress=False, out=out, resume=True)
    assert "drop --resume" in caught.value.suggestion
    Path(tiny_spec).write_text(TINY_SPEC.replace("D: {value: 0.05", "D: {value: 0.07"))
    with pytest.raises(PdelangError, match="the spec text"):
        ablate(tiny_spec, ["stabilizers.residual=true"], reference=None, train="none",
               progress=False, out=out, resume=True)


# --- with Ray ---------------------------------------------------------------------------------

ray_installed = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason='Ray is not installed: pip install -e ".[distributed]"')


def run_timed(args) -> float:
    started = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, env=environment(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return time.perf_counter() - started


@pytest.mark.slow  # a second cold Ray start (≈ 20 s); by default the resume test below
@pytest.mark.ray   # runs two of the four variants under Ray and compares them file by file
@ray_installed
def test_local_and_ray_executors_give_identical_results(local_sweep, tmp_path):
    tiny_spec, local, _, local_s = local_sweep
    ray = tmp_path / "ray"
    ray_s = run_timed(command(tiny_spec, ray, "--executor", "ray", "--ray-cpus", "2"))
    print(f"\n--quick sweep of 4 variants: local {local_s:.1f} s (in-process), ray (2 CPUs, "
          f"a new interpreter and Ray's start-up included) {ray_s:.1f} s")
    a = json.loads((local / "results.json").read_text())
    b = json.loads((ray / "results.json").read_text())
    assert (a["executor"], b["executor"]) == ("local", "ray")
    assert len(a["variants"]) == 4 and all(v["compiled"] for v in a["variants"])
    assert without_timing(a) == without_timing(b)
    for x, y in zip(variant_files(local), variant_files(ray), strict=True):
        assert x.name == y.name
        assert without_timing(json.loads(x.read_text())) == without_timing(
            json.loads(y.read_text()))


@pytest.mark.ray
@ray_installed
def test_ray_resumes_a_local_sweep(local_sweep, tmp_path):
    """Two of four variants done (locally); ``--executor ray --resume`` runs the other two
    only, and the results are those of the uninterrupted local run: results.json and each
    variant's file that Ray wrote (the default suite's check that the executors agree; the
    whole sweep under Ray is test_local_and_ray_executors_give_identical_results, slow)."""
    tiny_spec, local, full, _ = local_sweep
    out = tmp_path / "out"
    shutil.copytree(local, out)
    files = variant_files(out)
    for path in files[2:]:
        path.unlink()
    (out / "results.json").unlink()
    kept = [(p.stat().st_mtime_ns, p.read_bytes()) for p in files[:2]]
    run_timed(command(tiny_spec, out, "--executor", "ray", "--ray-cpus", "2", "--resume"))
    assert [(p.stat().st_mtime_ns, p.read_bytes()) for p in files[:2]] == kept
    saved = json.loads((out / "results.json").read_text())
    assert saved["resumed"] == 2 and saved["executor"] == "ray"
    assert without_timing(saved) == without_timing(json_safe(full))
    ran = variant_files(out)
    assert [p.name for p in ran] == [p.name for p in variant_files(local)]
    for x, y in zip(variant_files(local)[2:], ran[2:], strict=True):  # the two Ray ran
        assert without_timing(json.loads(x.read_text())) == without_timing(
            json.loads(y.read_text()))
