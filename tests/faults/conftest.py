"""Fixtures for the fault tests: a small real run on the digits (linear model, a few epochs)."""

import pytest

import workbench as wb


@pytest.fixture
def linear_session(digits, tmp_path):
    train, test = digits
    return wb.Session(wb.models.linear, train, test, seed=0, root=tmp_path / "runs")


@pytest.fixture
def finished_run(linear_session):
    """A completed 3-epoch run: 23 steps an epoch, 72 records in metrics.jsonl, 3 checkpoints."""
    return linear_session.fit(epochs=3)
