"""Fixtures for the tuning tests: a model that turns NaN on cue and a small training subset to overfit."""

import pytest
from torch import nn


class NaNAfter(nn.Module):
    """A linear classifier whose output becomes NaN from its ``after``-th training forward pass on."""

    def __init__(self, num_classes=10, after=20):
        super().__init__()
        self.lin = nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))
        self.after, self.calls = after, 0

    def forward(self, x):
        out = self.lin(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.after:
                return out * float("nan")
        return out


@pytest.fixture
def nan_session(digits, tmp_path):
    import workbench as wb

    train, test = digits
    return wb.Session(lambda num_classes=10: NaNAfter(num_classes), train, test, seed=0, root=tmp_path / "runs")


@pytest.fixture
def small_session(digits, tmp_path):
    """64 training examples and the full test set: a wide MLP overfits this in a few dozen steps."""
    import workbench as wb
    from workbench.datasets import TensorPairDataset

    train, test = digits
    small = TensorPairDataset(train.X[:64], train.Y[:64], preprocessing=train.preprocessing, name="digits-64")
    return wb.Session(wb.models.mlp, small, test, seed=0, root=tmp_path / "runs")
