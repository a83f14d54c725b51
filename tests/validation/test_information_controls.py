"""The controls of pdelang/lab/validation/information_controls.py on synthetic data with known
answers (small n and d so the file runs in seconds on one thread)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pdelang.lab.information import sample_propagation_mi
from pdelang.lab.validation.information_controls import (
    anisotropy_control,
    compression,
    participation_ratio,
    probe_information,
    sigma_sweep,
    stretch_top_component,
    to_json,
    whitened_pca,
)
from pdelang.lab.validation.information_flow import spread

N, D = 120, 8


def gaussian(seed: int, n: int = N, d: int = D, anisotropic: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x * np.linspace(1.5, 0.5, d) if anisotropic else x


def rotation(seed: int, d: int = D) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


# ------------------------------------------------------------------ participation ratio
def test_participation_ratio_of_isotropic_gaussian_is_about_d():
    # the sample covariance of n isotropic samples has PR ≈ d·n/(n+d) (Marchenko–Pastur),
    # here 10·1000/1010 ≈ 9.90; PR ≤ d always (Cauchy–Schwarz). Band: [0.95 d, d].
    x = np.random.default_rng(0).standard_normal((1000, 10))
    pr = participation_ratio(x)
    assert 9.5 <= pr <= 10.0 + 1e-12
    assert participation_ratio(x @ rotation(1, 10) * 7.0) == pytest.approx(pr, rel=1e-10)


def test_participation_ratio_of_rank_one_data_is_one():
    rng = np.random.default_rng(0)
    x = np.outer(rng.standard_normal(100), rng.standard_normal(7)) + 3.0  # rank 1 after centring
    assert abs(participation_ratio(x) - 1.0) < 1e-8


# ------------------------------------------------------------------------- σ sweep
def test_sigma_sweep_scales_and_standard_errors():
    x = gaussian(0)
    layers = [x, 3.0 * x]  # layer 1 = layer 0 scaled: same relative, not absolute, geometry
    sweep = sigma_sweep(layers, sigmas=(0.3, 1.0), seed=0)
    assert len(sweep.rows) == 2 * 2 * 2
    assert sweep.reference_spread == pytest.approx(spread(x))
    for m in (0.3, 1.0):
        rel = sweep.table("relative", m)
        ab = sweep.table("absolute", m)
        # relative: a global scale changes nothing (the estimator is scale-covariant)
        assert rel[1]["bits"] == pytest.approx(rel[0]["bits"], abs=1e-9)
        # absolute: one σ in feature units = m × spread of layer 0 for every layer
        assert ab[0]["sigma_units"] == ab[1]["sigma_units"] == pytest.approx(m * spread(x))
        assert ab[0]["bits"] == pytest.approx(rel[0]["bits"], abs=1e-9)  # coincide on layer 0
        assert ab[1]["bits"] > ab[0]["bits"] + 0.2  # the 3× larger layer sees less noise
        for row in rel + ab:
            assert row["standard_error_bits"] > 0 and 0 <= row["bits"] <= row["max_bits"] + 1e-9
    assert json.loads(json.dumps(sweep.to_json()))["rows"][0]["scale"] == "relative"


def test_estimator_is_rotation_invariant_up_to_monte_carlo_error():
    # Pairwise distances are rotation invariant exactly, but sample_propagation_mi draws its
    # noise z in the standard basis: for T R the draws are z, for T they would have to be
    # z Rᵀ to give the identical value. Since N(0, σ²I) is isotropic, z Rᵀ ~ z, so the
    # estimate is invariant in distribution: equal up to the Monte-Carlo error (not bitwise).
    x = gaussian(1)
    rotated = x @ rotation(2)
    for sigma in (0.3, 0.6, 1.0):  # absolute σ, spread ≈ 2.9: away from saturation
        a = sample_propagation_mi(x, sigma * spread(x), noise_samples=16, seed=0)
        b = sample_propagation_mi(rotated, sigma * spread(x), noise_samples=16, seed=0)
        tolerance = 4 * math.hypot(a["standard_error_bits"], b["standard_error_bits"])
        assert abs(a["bits"] - b["bits"]) <= max(tolerance, 1e-9)
        assert abs(a["bits"] - b["bits"]) < 0.1


# --------------------------------------------------------------- anisotropy control
def test_whitened_pca_removes_the_stretch_while_the_raw_estimate_does_not():
    x = gaussian(3)
    stretched = stretch_top_component(x, 2.0)
    # invertible: only the top PC's variance changes (×4), the spread grows
    assert participation_ratio(stretched) < participation_ratio(x)
    assert np.linalg.matrix_rank(stretched - stretched.mean(0)) == D
    np.testing.assert_allclose(whitened_pca(stretched, 8), whitened_pca(x, 8), atol=1e-10)
    white = whitened_pca(x, 8)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(8), atol=1e-10)

    control = anisotropy_control([x, stretched], sigmas=(0.3,), k=8, seed=0)
    raw = [r["raw"] for r in control.rows]
    whitened = [r["whitened"] for r in control.rows]
    # the control's ΔI between the stretch and the original is ~0 (identical inputs) ...
    assert abs(whitened[1]["bits"] - whitened[0]["bits"]) < 1e-9
    # ... while the raw estimator's is not (the geometry effect the review found: > 4 SE)
    raw_delta = raw[1]["bits"] - raw[0]["bits"]
    assert raw_delta < -4 * math.hypot(raw[0]["standard_error_bits"],
                                       raw[1]["standard_error_bits"])
    assert raw_delta < -0.2
    assert control.rows[0]["geometry_effect_bits"] == pytest.approx(raw_delta, abs=1e-9)
    assert whitened[0]["participation_ratio"] == pytest.approx(8.0, rel=1e-9)
    assert control.summary[0]["whitened_range_bits"] < 1e-9


def test_whitened_pca_refuses_more_than_n_over_10_components():
    with pytest.raises(ValueError, match="n/10"):
        whitened_pca(gaussian(0), 13)  # n = 120: k ≤ 12
    with pytest.raises(ValueError, match="non-zero"):
        whitened_pca(np.outer(np.arange(120.0), np.ones(8)), 2)  # rank 1


# ----------------------------------------------------------------------- compression
def test_invertible_linear_maps_of_each_other_are_not_compression():
    x = gaussian(4)
    mapped = x @ (rotation(5) @ np.diag(np.linspace(3.0, 0.5, D)))  # invertible, anisotropic
    result = compression([x, mapped], 0, 1, sigmas=(0.2, 0.5, 1.0), k=D, resamples=30, seed=0)
    assert result.verdict == "no compression", result.reason
    # full whitening (k = d) makes the two layers rotations of each other: no decrease
    assert not any(row["decrease"] for row in result.control_rows)
    assert len(result.rows) == 6 and len(result.control_rows) == 3
    for row in result.rows + result.control_rows:
        assert row["ci_low"] < row["delta_bits"] < row["ci_high"]
    assert "bootstrap" in result.ci_method
    document = json.loads(json.dumps(result.to_json()))
    assert document["verdict"] == "no compression"


def test_the_stretch_looks_like_compression_raw_but_not_under_the_control():
    x = gaussian(3)
    result = compression([x, stretch_top_component(x)], 0, 1, sigmas=(0.2, 0.5), k=D,
                         resamples=30, seed=0)
    relative = [r for r in result.rows if r["scale"] == "relative"]
    assert all(r["decrease"] for r in relative)  # what the review saw
    assert result.verdict == "no compression"
    assert "geometry" in result.reason


def test_a_many_to_one_layer_is_compression():
    # layer 1 keeps one bit of an 8-d Gaussian (sign of a coordinate): I(X;T+Z) ≤ 1 bit, and
    # the whitened control (k = 1, layer 1 has rank 1) still shows the decrease at these σ
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, D))
    one_bit = np.outer(np.sign(x[:, 0]), rng.standard_normal(D))
    result = compression([x, one_bit], 0, 1, sigmas=(0.3, 0.5), k=1, resamples=30, seed=0)
    assert result.verdict == "compression", result.reason
    mc = compression([x, one_bit], 0, 1, sigmas=(0.3,), k=1, resamples=0, seed=0)
    assert mc.ci_method.startswith("Monte-Carlo") and mc.verdict == "compression"


# ----------------------------------------------------------------------------- probe
def labelled(rng, n: int, d: int = 10):
    y = rng.integers(0, 2, n)
    features = rng.standard_normal((n, d))
    features[:, 0] += 2 * y - 1.0
    return features, y


def test_probe_chooses_c_from_the_grid_and_its_se_shrinks_as_one_over_root_n():
    rng = np.random.default_rng(0)
    train, y_train = labelled(rng, 120)
    test, y_test = labelled(rng, 100)
    test4, y_test4 = labelled(rng, 400)
    Cs = (0.01, 0.1, 1, 10)
    small = probe_information(train, y_train, test, y_test, Cs=Cs, resamples=200)
    large = probe_information(train, y_train, test4, y_test4, Cs=Cs, resamples=200)
    assert small.C in Cs and small.C == large.C  # chosen on the same train set
    assert set(small.cv_cross_entropy_bits) == set(float(c) for c in Cs)
    assert small.standard_error_bits > 0 and large.standard_error_bits > 0
    # SE ∝ 1/√n_test: 4× the test rows → about half the SE (loose band 1.4–2.9)
    ratio = small.standard_error_bits / large.standard_error_bits
    assert 1.4 < ratio < 2.9
    assert not small.failed and small.reason is None and small.bits > 0
    assert 0.5 < small.accuracy <= 1
    assert json.loads(json.dumps(to_json(small)))["C"] == small.C


def test_an_overfitting_probe_on_pure_noise_is_flagged_failed():
    rng = np.random.default_rng(1)
    train, test = rng.standard_normal((30, 200)), rng.standard_normal((60, 200))
    y_train, y_test = np.arange(30) % 2, np.arange(60) % 2
    forced = probe_information(train, y_train, test, y_test, Cs=(10.0,), resamples=100)
    assert forced.bits < -2 * forced.standard_error_bits
    assert forced.failed and "not a finding" in forced.reason
    # the cross-validated grid guards against it: the strongest regularisation is chosen
    chosen = probe_information(train, y_train, test, y_test, resamples=100)
    assert chosen.C == 0.01
    assert chosen.failed == (chosen.bits < -2 * chosen.standard_error_bits
                             or not chosen.converged)
