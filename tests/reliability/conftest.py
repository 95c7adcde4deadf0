"""Reliability suites: hypothesis profiles, and the fault matrix printed at the end of the run.

`HYPOTHESIS_PROFILE=full` turns every fuzz test of this folder into a 10,000-case run; the
default `reliability-ci` profile runs 200 per test. The profiles are applied per test (see
`FUZZ`), never loaded globally, so the rest of the suite keeps its own hypothesis settings.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import pytest
from hypothesis import HealthCheck, settings

# On a failure hypothesis imports libcst (to suggest a patch), which trips a DeprecationWarning
# from mypy_extensions; with warnings as errors that turns the failure report into an
# INTERNALERROR. Importing it here once, quietly, keeps failures readable.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401

settings.register_profile(
    "reliability-ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "full",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "reliability-ci")
FUZZ = settings(settings.get_profile(PROFILE))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fault matrix when test_fault_matrix ran (shown with or without -s)."""
    import sys

    matrix = sys.modules.get("tests.reliability.test_fault_matrix")
    if matrix is None or not matrix.SEEN:
        return
    terminalreporter.section("fault matrix: fault x stage -> outcome")
    for line in matrix.report():
        terminalreporter.write_line(line)
