"""The recipe's sanity checks in your own test suite: a test fails with the verdict's sentence (recipe part II).

    from workbench.testing import assert_checks

    def test_my_model_passes_the_recipe(session):          # session: your wb.Session fixture
        assert_checks(session, ["init_loss", "overfit_batch", "batch_dependency"])

A check whose status is not allowed (by default ``fail`` and ``error``) fails the test; the
message names each such check, its recipe step, the verdict's sentence and the measured vs
expected numbers. ``warn`` passes unless ``strict=True``. In CI without pytest:
``workbench check SCRIPT --junit report.xml`` writes the same verdicts as a JUnit report.
To use the fixtures, add ``pytest_plugins = ["workbench.testing"]`` to your ``conftest.py``.
"""

from __future__ import annotations

import pytest

from workbench.checks import run_checks
from workbench.checks.base import CheckResult, fmt

FAILING = ("fail", "error")


def describe(r: CheckResult) -> str:
    """One verdict as the line a failing test shows."""
    return (f"{r.name} [recipe {r.recipe}] {r.status}: {r.message} (measured {r.summary() or '–'}; "
            f"expected {fmt(r.expected)})")


def assert_checks(session, names=None, *, strict: bool = False, **options) -> list[CheckResult]:
    """Run the checks (all that apply by default) and fail with the verdicts' sentences unless each passes.

    ``strict=True`` also fails on ``warn``; per-check options go as ``overfit_batch={"steps": 200}``.
    Returns the CheckResults.
    """
    __tracebackhide__ = True  # pytest shows the assertion, not this helper's frame
    results = run_checks(session, names=names, **options)
    bad_status = FAILING + (("warn",) if strict else ())
    bad = [r for r in results if r.status in bad_status]
    if bad:
        raise AssertionError(f"{len(bad)} of {len(results)} recipe check(s) did not pass:\n"
                             + "\n".join("  " + describe(r) for r in bad))
    return results


def assert_check(session, name: str, *, strict: bool = False, **options) -> CheckResult:
    """One check by name (its options as keywords); fails the test with the verdict's sentence."""
    __tracebackhide__ = True
    return assert_checks(session, [name], strict=strict, **({name: options} if options else {}))[0]


@pytest.fixture
def recipe_checks():
    """A fixture form: ``recipe_checks(session, ["init_loss", ...])`` is ``assert_checks``."""
    return assert_checks
