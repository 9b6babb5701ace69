"""Fixtures for the view tests: a small digits session (few examples keeps training quick on 2 cores)."""

import pytest


@pytest.fixture
def make_small_session(digits, tmp_path):
    """A session on the first 256 training digits with the given model factory."""
    import workbench as wb

    def make(model):
        train, test = digits
        tr = wb.datasets.TensorPairDataset(train.X[:256], train.Y[:256], preprocessing=train.preprocessing,
                                           classes=train.classes, name="digits-small")
        return wb.Session(model, tr, test, seed=0, root=tmp_path / "runs", name="digits-small")

    return make


@pytest.fixture
def small_session(make_small_session):
    import workbench as wb

    return make_small_session(wb.models.mlp)


@pytest.fixture(autouse=True)
def _clear_errors():
    from workbench.ui.common import ERRORS

    ERRORS.messages = []
    yield

