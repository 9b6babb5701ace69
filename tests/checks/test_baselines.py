"""input_independent (II.7) and generalization (L.3): labels shuffled apart from their inputs are caught."""

from __future__ import annotations

import math

import torch


def shuffled(digits):
    tr, te = digits
    g = torch.Generator().manual_seed(1)
    return (tr.X, tr.Y[torch.randperm(len(tr.Y), generator=g)])  # the bug: labels no longer match inputs


def test_real_inputs_beat_zeros(make_session):
    r = make_session().check("input_independent", steps=60)
    assert r.status == "pass" and r.recipe == "II.7"
    # stopped once the held-out loss was clearly (20 %) below the zero-input level
    assert r.measured["relative_gain"] > 0.2 and r.measured["steps"][1] < 60
    long = make_session().check("input_independent", steps=60, stop_early=False)
    assert long.status == "pass" and long.measured["steps"] == [60, 60]
    assert long.measured["loss_real"] < 0.5 * long.measured["loss_zeros"]
    assert long.measured["accuracy_real"] > 0.8 and long.measured["accuracy_zeros"] < 0.2


def test_shuffled_labels_fail_input_independent(make_session, digits):
    r = make_session(train=shuffled(digits)).check("input_independent", steps=60)
    assert r.status == "fail" and r.measured["relative_gain"] < 0.1
    assert "not extracting information" in r.message


def test_generalization_passes_on_digits(make_session):
    r = make_session().check("generalization", steps=80)
    assert r.status == "pass" and r.recipe == "L.3"  # stopped once held-out loss < 70 % of the constant's
    assert r.measured["val_accuracy"] > 0.6 and abs(r.measured["chance_accuracy"] - 0.1) < 0.02
    assert r.measured["val_loss"] < 0.75 * r.measured["constant_loss"] and r.measured["steps"] < 80
    long = make_session().check("generalization", steps=80, stop_early=False)
    assert long.status == "pass" and long.measured["val_accuracy"] > 0.8 and long.measured["steps"] == 80


def test_shuffled_labels_fail_generalization(make_session, digits):
    s = make_session(train=shuffled(digits))
    r = s.check("generalization", steps=80)
    assert r.status == "fail" and r.measured["val_accuracy"] < 0.2
    assert r.measured["val_loss"] > 0.9 * r.measured["constant_loss"]


def standardising_mlp(num_classes=10):
    """Standardises each image (no epsilon: real images are never constant), so an all-zero image gives NaN."""

    class Std(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, num_classes))

        def forward(self, x):
            x = x.flatten(1)
            return self.net((x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True))

    return Std()


def test_a_model_that_cannot_take_zeros_gets_the_mean_input(make_session):
    s = make_session(standardising_mlp)
    r = s.check("input_independent")
    assert r.status == "pass" and r.details["constant_input"] == "mean training input"
    assert math.isfinite(r.measured["loss_zeros"]) and "mean training input" in r.message
    g = s.check("generalization")
    assert g.status == "pass" and g.measured["val_accuracy"] > 0.6 and g.measured["input_independent_loss"] > 2
