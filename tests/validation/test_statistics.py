"""pdelang.lab.validation.statistics: the intervals put on validation similarities.

The checks are statements of mathematics (coverage of a known mean, exact zeros of a paired
difference, the t interval of known data), not snapshots of numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdelang.lab.validation.statistics import (
    Interval,
    across_seeds,
    bootstrap_mean,
    bootstrap_statistic,
    decide,
    paired_difference,
    rescaled,
)

floats = st.floats(min_value=-10, max_value=10, allow_nan=False)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    # n = 40 draws of N(mu, 1), 300 repetitions: the percentile interval of a mean covers mu
    # with probability close to 0.95 (slightly less for small n). A band of ±~4 binomial SDs.
    rng = np.random.default_rng(123)
    mu, repetitions = 0.7, 300
    covered = 0
    for r in range(repetitions):
        interval = bootstrap_mean(rng.normal(mu, 1.0, size=40), resamples=600, seed=r)
        covered += interval.low <= mu <= interval.high
    assert 0.88 <= covered / repetitions <= 0.99


def test_bootstrap_interval_narrows_like_one_over_root_n():
    rng = np.random.default_rng(5)
    small = bootstrap_mean(rng.normal(size=25), resamples=1000)
    large = bootstrap_mean(rng.normal(size=400), resamples=1000)
    ratio = (small.high - small.low) / (large.high - large.low)
    assert 2.5 < ratio < 6.0  # sqrt(400 / 25) = 4


def test_bootstrap_mean_fields():
    values = np.array([1.0, 2.0, 4.0, 7.0])
    interval = bootstrap_mean(values)
    assert interval.mean == pytest.approx(3.5)
    assert interval.sd == pytest.approx(np.std(values, ddof=1))
    assert 1.0 <= interval.low <= interval.mean <= interval.high <= 7.0
    assert interval.n == 4 and interval.level == 0.95 and interval.bias is None
    assert bootstrap_mean(values, seed=3) == bootstrap_mean(values, seed=3)  # deterministic


def test_one_value_and_constant_values_give_zero_width():
    one = bootstrap_mean([0.25])
    assert (one.mean, one.sd, one.low, one.high, one.n) == (0.25, 0.0, 0.25, 0.25, 1)
    constant = bootstrap_mean(np.full(9, 0.5))
    assert constant.low == constant.high == constant.mean == 0.5
    assert constant.sd == 0.0


def test_empty_and_nonfinite_values():
    with pytest.raises(ValueError):
        bootstrap_mean([])
    diverged = bootstrap_mean([0.9, math.nan, 0.8])
    assert math.isnan(diverged.mean) and math.isnan(diverged.low) and math.isnan(diverged.high)
    assert not diverged.excludes_zero
    assert decide(diverged) == "no difference"


@given(st.lists(floats, min_size=1, max_size=30))
def test_paired_difference_of_identical_arrays_is_exactly_zero(values):
    interval = paired_difference(values, list(values), resamples=200)
    assert interval.mean == interval.low == interval.high == interval.sd == 0.0
    assert decide(interval) == "no difference"


@given(st.lists(floats, min_size=2, max_size=30), st.floats(min_value=0.01, max_value=5))
def test_paired_difference_of_a_constant_shift_is_the_shift(values, shift):
    b = np.array(values)
    a = b + shift
    interval = paired_difference(a, b, resamples=200)
    assert interval.mean == pytest.approx(shift, rel=1e-9, abs=1e-9)
    assert interval.low == pytest.approx(shift, rel=1e-9, abs=1e-9)
    assert interval.high == pytest.approx(shift, rel=1e-9, abs=1e-9)
    assert decide(interval) == "higher"
    assert decide(paired_difference(b, a, resamples=200)) == "lower"


def test_pairing_removes_the_shared_variation():
    # a and b share a large per-input component; only the pairing sees the small difference.
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 5.0, size=60)
    a = shared + 0.1 + rng.normal(0, 0.05, size=60)
    b = shared
    paired = paired_difference(a, b)
    assert paired.excludes_zero and decide(paired) == "higher"
    assert paired.mean == pytest.approx(np.mean(a - b))
    separate_a, separate_b = bootstrap_mean(a), bootstrap_mean(b)
    assert separate_a.low < separate_b.high  # the unpaired intervals overlap
    assert (paired.high - paired.low) < 0.05 * (separate_a.high - separate_a.low)


def test_paired_difference_needs_equal_lengths():
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])


def test_bootstrap_statistic_of_the_mean_is_bootstrap_mean():
    values = np.random.default_rng(2).normal(size=17)
    direct = bootstrap_mean(values, resamples=500, seed=4)
    plain = bootstrap_statistic(lambda idx: values[idx].mean(), len(values), resamples=500,
                                seed=4)
    batched = bootstrap_statistic(lambda idx: values[idx].mean(axis=1), len(values),
                                  resamples=500, seed=4, batched=True)
    assert plain.mean == batched.mean == pytest.approx(direct.mean)
    assert (plain.low, plain.high) == pytest.approx((direct.low, direct.high))
    assert (batched.low, batched.high) == pytest.approx((direct.low, direct.high))
    assert plain.bias == pytest.approx(0.0, abs=4 * direct.sd / math.sqrt(17 * 500))
    basic = bootstrap_statistic(lambda idx: values[idx].mean(), len(values), resamples=500,
                                seed=4, method="basic")
    assert basic.low == pytest.approx(2 * plain.mean - plain.high)
    assert basic.high == pytest.approx(2 * plain.mean - plain.low)


def test_bootstrap_statistic_point_estimate_is_the_whole_sample():
    values = np.array([1.0, 2.0, 3.0, 10.0])
    interval = bootstrap_statistic(lambda idx: float(np.median(values[idx])), 4)
    assert interval.mean == 2.5
    single = bootstrap_statistic(lambda idx: 3.0, 1)
    assert (single.low, single.high, single.sd) == (3.0, 3.0, 0.0)
    with pytest.raises(ValueError):
        bootstrap_statistic(lambda idx: 0.0, 3, method="bca")


def test_bias_is_the_shift_of_the_replicates():
    # A statistic whose resamples read 0.3 higher than the whole sample: bias 0.3, and the
    # basic interval moves down by as much as the percentile one moves up.
    values = np.random.default_rng(3).normal(size=12)
    whole = tuple(range(12))

    def shifted(idx):
        return values[idx].mean() + (0.0 if tuple(idx) == whole else 0.3)

    reference = bootstrap_mean(values, resamples=400, seed=1)
    percentile = bootstrap_statistic(shifted, 12, resamples=400, seed=1)
    basic = bootstrap_statistic(shifted, 12, resamples=400, seed=1, method="basic")
    assert percentile.bias == pytest.approx(0.3, abs=0.05)
    assert percentile.low == pytest.approx(reference.low + 0.3)
    assert basic.high == pytest.approx(2 * reference.mean - reference.low - 0.3)


def test_across_seeds_t_interval():
    summary = across_seeds([1.0, 2.0, 3.0])
    t_975_2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom
    assert summary["mean"] == pytest.approx(2.0)
    assert summary["sd"] == pytest.approx(1.0)
    assert summary["n"] == 3
    assert summary["low"] == pytest.approx(2.0 - t_975_2 / math.sqrt(3))
    assert summary["high"] == pytest.approx(2.0 + t_975_2 / math.sqrt(3))
    one = across_seeds([0.4])
    assert one == {"mean": 0.4, "sd": 0.0, "n": 1, "low": None, "high": None, "level": 0.95}
    json.dumps(across_seeds([1.0, math.nan]), allow_nan=False)


def test_across_seeds_covers_the_mean_of_normal_seeds():
    # The t interval is exact for normal data: 95 % coverage even with three seeds.
    rng = np.random.default_rng(7)
    repetitions = 1500
    covered = 0
    for _ in range(repetitions):
        summary = across_seeds(rng.normal(0.3, 2.0, size=3))
        covered += summary["low"] <= 0.3 <= summary["high"]
    assert 0.93 <= covered / repetitions <= 0.97


@given(st.floats(min_value=-1.0, max_value=0.999))
def test_rescaled_maps_floor_to_zero_and_perfect_to_one(floor):
    assert rescaled(floor, floor) == 0.0
    assert rescaled(1.0, floor) == pytest.approx(1.0)
    halfway = (1.0 + floor) / 2
    assert rescaled(halfway, floor) == pytest.approx(0.5)


def test_rescaled_undefined_floors():
    assert math.isnan(rescaled(0.9, 1.0))
    assert math.isnan(rescaled(0.9, 1.2))
    assert math.isnan(rescaled(math.nan, 0.3))
    assert rescaled(0.1, 0.5) < 0  # below the floor


def test_decide_and_json():
    assert decide(Interval(0.2, 0.1, 0.05, 0.3, 10)) == "higher"
    assert decide(Interval(-0.2, 0.1, -0.3, -0.05, 10)) == "lower"
    assert decide(Interval(0.0, 0.1, -0.1, 0.1, 10)) == "no difference"
    assert decide(Interval(0.2, 0.1, 0.0, 0.3, 10)) == "no difference"  # 0 on the edge
    assert decide({"low": 0.1, "high": 0.2}) == "higher"
    assert decide({"low": None, "high": None}) == "no difference"
    payload = Interval(0.5, math.nan, -math.inf, 1.0, 3).to_json()
    assert payload == {"mean": 0.5, "sd": None, "low": None, "high": 1.0, "n": 3,
                       "level": 0.95, "excludes_zero": False}
    json.dumps(payload, allow_nan=False)
    assert Interval(1.0, 0.0, 0.5, 1.5, 2, bias=0.1).to_json()["bias"] == 0.1
