"""Shared audits: the digits with injected issues (tests/data/dirty.py) and the clean digits, audited once."""

import pytest

from tests.data.dirty import dirty_digits, scores
from workbench.data import audit
from workbench.datasets import digits


@pytest.fixture(scope="session")
def dirty():
    data, truth, kinds = dirty_digits()
    report = audit(data)
    return {"data": data, "truth": truth, "kinds": kinds, "report": report, "scores": scores(report, truth)}


@pytest.fixture(scope="session")
def clean_report():
    train, test = digits()
    return audit({"train": train, "test": test})
