"""Real-valued sequence targets (forecasting): task "sequence" with float targets is scored by MSE, and
the checks that apply run on it — causality above all (II.12)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.errors import DataError


def waves(n=128, T=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T + 1).float()
    w = torch.sin(0.3 * t + 6.28 * torch.rand(n, 1, generator=g))
    return w[:, :-1].unsqueeze(-1), w[:, 1:]


class CausalConv(nn.Module):
    """Left-padded Conv1d: (B, T, 1) -> (B, T); ``same=True`` pads both sides (sees the future)."""

    def __init__(self, width=8, same=False):
        super().__init__()
        self.same = same
        self.conv = nn.Conv1d(1, width, 3, padding=1 if same else 2)
        self.out = nn.Conv1d(width, 1, 1)

    def forward(self, x):
        h = torch.tanh(self.conv(x.transpose(1, 2)))
        h = h if self.same else h[:, :, :-2]
        return self.out(h).squeeze(1)


@pytest.fixture
def forecast(tmp_path):
    def make(model=CausalConv):
        return wb.Session(model, waves(), waves(seed=1), task="sequence", root=tmp_path)
    return make


def test_float_targets_make_a_real_valued_sequence_task(forecast):
    s = forecast()
    assert s.task.real and s.task.real_valued and s.num_classes is None and s.task.metric == "mse"
    out = s.model(s.batch("train", 4)[0])
    y = s.batch("train", 4)[1]
    assert torch.isclose(s.data_loss(out, y), ((out - y) ** 2).mean())
    r = s.check("init_loss")  # measured against var(y), the MSE of predicting the mean
    assert abs(r.expected - float(s.labels("train").float().var(unbiased=False))) < 1e-6 and r.status != "error"
    assert s.check("causality").status == "pass"


def test_a_forecaster_that_sees_the_future_fails_causality(forecast):
    r = forecast(lambda: CausalConv(same=True)).check("causality")
    assert r.status == "fail" and r.measured["leaking_positions"] == 19 and "1 step(s) ahead" in r.message


def test_overfit_and_generalization_judge_mse(forecast):
    s = forecast()
    r = s.check("overfit_batch", steps=400)
    assert r.status == "pass" and r.measured["mse"] < 0.02 * r.details["achievable"]["loss_floor"] + 0.02
    g = s.check("generalization", steps=150)
    assert g.status == "pass" and g.measured["val_mse"] < 0.9 * g.measured["constant_loss"]


def test_integer_and_real_splits_do_not_mix(tmp_path):
    x, y = waves()
    with pytest.raises(DataError, match="one dtype"):
        wb.Session(CausalConv, (x, y), (x, (y * 10).long().clamp(min=0)), task="sequence", root=tmp_path)
