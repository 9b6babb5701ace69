"""gradient_flow (II.12): frozen, gradient-less and unregistered weights, found before any training."""

from __future__ import annotations

import torch
from torch import nn

import workbench as wb


def frozen(num_classes=10, width=16):
    model = wb.models.mlp(num_classes, width=width)
    for p in model.parameters():
        p.requires_grad = False
    return model


def frozen_body(num_classes=10):
    """Fine-tuning: the body frozen, a new trainable head."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, num_classes))
    for p in model[1].parameters():
        p.requires_grad = False
    return model


class NoGradBody(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body, self.head = nn.Linear(64, 32), nn.Linear(32, num_classes)

    def forward(self, x):
        with torch.no_grad():  # "to save memory": the body never learns
            h = self.body(x.flatten(1))
        return self.head(torch.relu(h))


class ClosureHead(nn.Module):
    """Calls its head through a lambda made in __init__: a copy of this module still calls the original head."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.head = nn.Linear(64, num_classes)
        self.predict = lambda x: self.head(x)

    def forward(self, x):
        return self.predict(x.flatten(1))


def test_a_correct_model_passes(make_session):
    r = make_session().check("gradient_flow")
    assert r.status == "pass" and r.recipe == "II.12"
    assert r.measured["trainable"] == r.measured["tensors"] == 11 and r.measured["without_gradient"] == 0


def test_a_frozen_body_is_reported_not_failed(make_session):
    r = make_session(frozen_body).check("gradient_flow")
    assert r.status == "pass" and r.measured["frozen"] == 2 and r.measured["trainable"] == 2
    assert "frozen" in r.message


def test_a_fully_frozen_model_fails_and_training_checks_skip(make_session):
    s = make_session(frozen)
    r = s.check("gradient_flow")
    assert r.status == "fail" and r.measured["trainable"] == 0 and "nothing can train" in r.message
    over = s.check("overfit_batch", steps=20)
    assert over.status == "skip" and "requires grad" in over.message


def test_weights_under_no_grad_receive_no_gradient(make_session):
    r = make_session(NoGradBody).check("gradient_flow")
    assert r.status == "fail" and r.details["no_grad"] == ["body.weight", "body.bias"]
    assert "torch.no_grad()" in r.message


def test_a_module_shared_through_a_closure_is_unregistered_in_the_copy(make_session):
    # the Session deep-copies a module for each run; the lambda still points at the original's head
    r = make_session(ClosureHead()).check("gradient_flow")
    assert r.status == "fail" and r.measured["unregistered_modules"] == 1
    assert r.details["no_grad"] == ["head.weight", "head.bias"] and "closure" in r.message
    ok = make_session(ClosureHead).check("gradient_flow")  # built fresh by a factory: the closure is its own
    assert ok.status == "pass"
