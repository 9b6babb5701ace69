"""Shared fixtures for the sanity-check tests: the digits data once, tiny sessions per test."""

from __future__ import annotations

import pytest
import torch

import workbench as wb


@pytest.fixture(scope="session")
def digits():
    return wb.datasets.digits()


@pytest.fixture
def make_session(digits, tmp_path):
    """make_session(model=tiny_cnn, train=None, test=None, **session kwargs) -> Session on digits."""

    def make(model=wb.models.tiny_cnn, train=None, test=None, **kw):
        tr, te = digits
        return wb.Session(model, train if train is not None else tr, test if test is not None else te,
                          seed=0, root=tmp_path / "runs", **kw)

    return make


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models on a shared CPU: intra-op threads only contend (the checks do the same)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
