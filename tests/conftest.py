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

# Every compilation in the test suite runs the stage verifier (pdelang.invariants): an IR
# that breaks its stage's invariants fails the test that produced it.
os.environ.setdefault("PDELANG_DEBUG", "1")
