"""architecture (III.R7 and common slips): each slip found and located by module path."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

import workbench as wb


def slips(result):
    return {(s["slip"], tuple(s["where"])) for s in result.details["slips"]}


def test_tiny_cnn_and_mlp_are_clean(make_session):
    for model in (wb.models.tiny_cnn, wb.models.mlp, wb.models.linear):
        r = make_session(model).check("architecture")
        assert r.status == "pass" and r.measured["slips"] == 0, r.details


def test_dropout_feeding_batchnorm(make_session):
    mk = lambda num_classes=10: nn.Sequential(nn.Flatten(), nn.Linear(64, 32, bias=False), nn.ReLU(), nn.Dropout(0.5),
                                              nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, num_classes))
    r = make_session(mk).check("architecture")
    assert r.status == "warn" and slips(r) == {("dropout_before_batchnorm", ("3", "4"))}


def test_softmax_output_with_cross_entropy(make_session):
    mk = lambda num_classes=10: nn.Sequential(wb.models.mlp(num_classes), nn.Softmax(dim=1))
    r = make_session(mk).check("architecture")
    assert r.status == "fail" and slips(r) == {("softmax_output_with_cross_entropy", ("1",))}


class FunctionalLogSoftmax(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = wb.models.mlp(num_classes)

    def forward(self, x):
        return F.log_softmax(self.body(x), dim=1)


def test_functional_log_softmax_is_found_and_only_a_note_before_cross_entropy(make_session):
    # cross-entropy of log-softmax outputs equals cross-entropy of the logits (log-softmax is idempotent)
    r = make_session(FunctionalLogSoftmax).check("architecture")
    assert r.status == "pass" and not slips(r) and "Note: log softmax output with cross entropy" in r.message
    assert r.details["notes"][0]["where"] == ["(model): log_softmax()"]
    ok = make_session(FunctionalLogSoftmax, loss=F.nll_loss).check("architecture")
    assert ok.status == "pass" and "Note" not in ok.message


class FunctionalSoftmax(FunctionalLogSoftmax):
    def forward(self, x):
        return F.softmax(self.body(x), dim=1)


def test_softmax_before_nll_loss_fails(make_session):
    r = make_session(FunctionalSoftmax, loss=F.nll_loss).check("architecture")
    assert r.status == "fail" and ("softmax_output_with_nll_loss", ("(model): softmax()",)) in slips(r)
    assert "log-probabilities" in r.message


class TwoLinear(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.fc1, self.fc2 = nn.Linear(8 * 64, 32), nn.Linear(32, num_classes)

    def forward(self, x):
        h = self.enc(x).flatten(1)    # no ReLU after enc.2: conv then linear collapse
        return self.fc2(F.relu(self.fc1(h)))


def test_two_linear_layers_without_nonlinearity(make_session):
    r = make_session(TwoLinear).check("architecture")
    assert r.status == "warn" and slips(r) == {("linear_without_nonlinearity", ("enc.2", "fc1"))}


def test_bias_before_batchnorm(make_session):
    mk = lambda num_classes=10: nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                                              nn.Linear(8 * 36, num_classes))
    r = make_session(mk).check("architecture")
    assert r.status == "warn" and slips(r) == {("bias_before_batchnorm", ("0", "1"))}
    assert "bias=False" in r.message
