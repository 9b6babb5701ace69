"""Shared fixtures: the embedded digits data and sessions rooted in a temporary folder."""

import pytest
import torch

torch.set_num_threads(1)  # tests share two cores; one thread each keeps timings calm and results stable


@pytest.fixture(scope="session")
def digits():
    import workbench as wb

    return wb.datasets.digits()


@pytest.fixture
def session(digits, tmp_path):
    import workbench as wb

    train, test = digits
    return wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path / "runs")


@pytest.fixture
def mlp_session(digits, tmp_path):
    import workbench as wb

    train, test = digits
    return wb.Session(wb.models.mlp, train, test, seed=0, root=tmp_path / "runs")
