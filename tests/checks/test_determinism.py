"""determinism (II.1): same seed, same losses; unseeded randomness is caught and located."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import workbench as wb


def test_seeded_tiny_cnn_with_dropout_is_deterministic(make_session):
    r = make_session(lambda num_classes=10: wb.models.mlp(num_classes, dropout=0.3)).check("determinism", steps=4)
    assert r.status == "pass" and r.recipe == "II.1"
    assert r.measured["max_loss_difference"] == 0 and r.measured["steps"] == 4


class NoisyForward(nn.Module):
    """Adds noise from numpy's unseeded default_rng in forward (the bug)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.lin = nn.Linear(64, num_classes)
        self.rng = np.random.default_rng()

    def forward(self, x):
        noise = torch.as_tensor(self.rng.normal(0, 0.1, x.shape), dtype=x.dtype)
        return self.lin((x + noise).flatten(1))


def test_unseeded_noise_in_forward_fails_at_step_1(make_session):
    r = make_session(NoisyForward).check("determinism", steps=3)
    assert r.status == "fail" and r.measured["first_difference_step"] == 1
    assert r.details["differs"] == "forward" and "forward pass" in r.message


class UnseededInit(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.lin = nn.Linear(64, num_classes)
        g = torch.Generator()
        g.seed()  # the bug: a generator seeded from the OS, not the session's seed
        with torch.no_grad():
            self.lin.weight.normal_(0, 0.01, generator=g)

    def forward(self, x):
        return self.lin(x.flatten(1))


def test_unseeded_initialisation_fails_at_step_0(make_session):
    r = make_session(UnseededInit).check("determinism", steps=2)
    assert r.status == "fail" and r.measured["first_difference_step"] == 0 and "lin.weight" in r.details["tensors"]
