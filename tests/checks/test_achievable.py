"""The loss floor and accuracy ceiling a batch allows (II.8, L.3), against hand-computed values."""

from __future__ import annotations

import math

import torch

from workbench.checks.achievable import achievable


def test_shared_prefix_bounds_a_causal_model():
    # "ab" and "ac": after "a" the next token is 1 or 2 (ambiguous), after "ab"/"ac" it is 3 (certain)
    x = torch.tensor([[0, 1], [0, 2]])
    y = torch.tensor([[1, 3], [2, 3]])
    b = achievable(x, y, causal=True, real=False)
    assert math.isclose(b["loss_floor"], 2 * math.log(2) / 4) and b["max_accuracy"] == 0.75
    assert b["ambiguous"] == 2 and b["contexts"] == 3
    # a model that sees the whole input (not causal) can tell the two rows apart
    assert achievable(x, y, causal=False, real=False)["ambiguous"] == 0


def test_duplicated_inputs_with_different_labels_bound_a_classifier():
    x = torch.zeros(4, 3)
    x[3] = 1.0
    y = torch.tensor([0, 0, 1, 2])  # three identical inputs labelled 0, 0, 1
    b = achievable(x, y, causal=False, real=False)
    assert b["max_accuracy"] == 0.75
    expected = -(2 * math.log(2 / 3) + math.log(1 / 3)) / 4
    assert math.isclose(b["loss_floor"], expected, rel_tol=1e-12)


def test_real_targets_floor_is_the_spread_within_a_context():
    x = torch.tensor([[1.0], [1.0], [2.0]])
    y = torch.tensor([[0.0], [2.0], [5.0]])
    b = achievable(x, y, causal=False, real=True)
    assert math.isclose(b["loss_floor"], 2.0 / 3) and b["max_accuracy"] is None and b["ambiguous"] == 2
