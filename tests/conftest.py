"""pytest configuration for the whole suite: Hypothesis profiles.

Two profiles, picked with the environment variable ``HYPOTHESIS_PROFILE`` (default ``ci``):

* ``ci`` — derandomized (the same examples on every run, so a failure reproduces exactly and
  CI is not flaky), no deadline (compiling a spec and importing its stepper takes a variable
  amount of time on a busy machine), and a modest number of examples so that
  ``tests/testing`` runs in well under 90 s on two cores;
* ``thorough`` — twenty times the examples, random seeds and no deadline, for a long
  property-testing run: ``HYPOTHESIS_PROFILE=thorough pytest tests/testing``.

Tests whose examples are expensive ask for a number of examples *relative to the profile*
with :func:`testing_helpers.examples`, so the ``thorough`` profile scales them too.
"""

from __future__ import annotations

import os

# One thread for torch's intra-op parallelism (OpenMP) and for numpy's and scipy's OpenBLAS,
# in the whole suite and in the CLI subprocesses it starts (set before torch, numpy or scipy
# is imported; an explicit setting in the environment wins). The suite's tensors and matrices
# are small, and on a 2-core machine every parallel op's barrier can wait a scheduler tick for
# the other thread while the spinning BLAS threads contend with OpenMP's (measured on a busy
# machine: test_validate_depth.py's two observed-order tests 48–72 s → 5 s; the probe fits of
# test_validate_information.py 142 s → 60 s for the file, one small LogisticRegression fit
# 60×). tests/codegen, tests/testing, tests/operators and tests/ablation also set torch's
# count to one per module, for any test that changed it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from hypothesis import HealthCheck, settings

CI_MAX_EXAMPLES = 10

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=CI_MAX_EXAMPLES,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=20 * CI_MAX_EXAMPLES,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Every compilation in the test suite runs the stage verifier (pdelang.compiler.invariants): an IR
# that breaks its stage's invariants fails the test that produced it.
os.environ.setdefault("PDELANG_DEBUG", "1")
