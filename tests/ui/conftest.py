"""Fixtures for the view tests: a small digits session (few examples keeps training quick on 2 cores)."""

import pytest


@pytest.fixture
def small_session(digits, tmp_path):
    import workbench as wb

    train, test = digits
    tr = wb.datasets.TensorPairDataset(train.X[:256], train.Y[:256], preprocessing=train.preprocessing,
                                       classes=train.classes, name="digits-small")
    return wb.Session(wb.models.mlp, tr, test, seed=0, root=tmp_path / "runs", name="digits-small")


@pytest.fixture(autouse=True)
def _clear_errors():
    from workbench.ui.common import ERRORS

    ERRORS.messages = []
    yield

