"""Shared fixtures for part IV: digits sessions with tiny models, and one seed ensemble trained once."""

import pytest

import workbench as wb


@pytest.fixture(scope="module")
def digits():
    return wb.datasets.digits()


@pytest.fixture(scope="module")
def mlp_session(digits, tmp_path_factory):
    train, test = digits
    return wb.Session(wb.models.mlp, train, test, seed=0, root=tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def seed_ensemble(mlp_session):
    """Five seeds of a 2-layer MLP, 3 epochs each (IV.1): trained once per test module."""
    return mlp_session.ensemble("seeds", n=5, epochs=3, lr=3e-3)
