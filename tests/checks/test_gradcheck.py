"""gradient_check (II.G): correct nets pass (dropout, BN, deep ReLU); a wrong custom backward is caught."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import workbench as wb
from workbench.checks.gradcheck import KinkRecorder, depth_of, thresholds


def test_tiny_cnn_passes_with_batchnorm_in_train_mode(make_session):
    r = make_session().check("gradient_check", coords=4)
    assert r.status == "pass" and r.recipe == "II.G"
    assert r.measured["max_rel_error"] < 1e-6 and r.measured["tensors"] == 11
    assert r.measured["coords"] == 44  # 4 from EVERY parameter tensor (G.4)
    assert set(r.details["per_tensor"]) == {f"data/{n}" for n, _ in wb.models.tiny_cnn().named_parameters()}
    assert "relu" in r.details["kink_ops"] and "train mode" in r.details["batch_norm"]


def test_mlp_with_dropout_passes_with_the_same_mask_each_time(make_session):
    r = make_session(lambda num_classes=10: wb.models.mlp(num_classes, dropout=0.5)).check("gradient_check", coords=6)
    assert r.status == "pass" and r.measured["max_rel_error"] < 1e-6


def deep_relu(num_classes=10):
    layers = [nn.Flatten(), nn.Linear(64, 24), nn.ReLU()]
    for _ in range(11):
        layers += [nn.Linear(24, 24), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(24, num_classes))


def test_deep_relu_net_passes(make_session):
    r = make_session(deep_relu).check("gradient_check", coords=3)
    assert r.measured["depth"] == 13 and "> 10" in r.expected["rule"]
    assert r.status == "pass" and r.measured["max_judged_error"] < 1e-4


class BadReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0) * 0.5  # the bug: half the true gradient


class WrongBackward(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.a, self.b = nn.Linear(64, 32), nn.Linear(32, num_classes)

    def forward(self, x):
        return self.b(BadReLU.apply(self.a(x.flatten(1))))


def test_wrong_custom_backward_fails_and_names_the_tensor(make_session):
    r = make_session(WrongBackward).check("gradient_check", coords=6)
    assert r.status == "fail" and r.measured["max_judged_error"] > 0.1
    assert "a." in r.message  # the first layer's tensors get the halved gradient
    assert r.details["per_tensor"]["data/b.weight"] < 1e-6


def test_regularizer_is_checked_in_a_second_phase(make_session):
    s = make_session(wb.models.mlp, reg_strength=1e-2)
    r = s.check("gradient_check", coords=3, warmup_steps=3)
    assert r.measured["phases"] == 3 and set(r.details["phases"]) == {"data", "data+reg", "after 3 warm-up steps"}
    assert r.status == "pass"


def test_tiny_gradients_are_rescaled_and_reported(make_session):
    s = make_session(wb.models.linear, loss=lambda out, y: F.cross_entropy(out, y) * 1e-11)
    r = s.check("gradient_check", coords=4)
    assert r.status == "warn" and "G.P1" in r.message
    assert r.details["phases"]["data"]["rescaled"]


def test_kink_recorder_sees_a_relu_switch_and_max_pool_indices():
    x = torch.tensor([[-1e-6, 2.0, -3.0, 1.0]])
    with KinkRecorder() as a:
        F.relu(x + 2e-6)
        F.max_pool1d(x.unsqueeze(0), 2)
    with KinkRecorder() as b:
        F.relu(x - 2e-6)
        F.max_pool1d(x.unsqueeze(0), 2)
    assert a.ops[0] == "relu" and not torch.equal(a.signatures[0], b.signatures[0])
    assert torch.equal(a.signatures[1], b.signatures[1])


def test_thresholds_follow_g5():
    assert thresholds(kinks=False, depth=3)[:2] == (1e-6, 1e-4)
    assert thresholds(kinks=True, depth=3)[:2] == (1e-4, 1e-2)
    assert thresholds(kinks=False, depth=12)[:2] == (1e-4, 1e-2)
    assert depth_of(deep_relu()) == 13


class AtAKink(nn.Module):
    """A pre-activation sits 1e-7 from ReLU's kink: perturbing its bias by h=1e-5 crosses it (G.P2)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.a, self.b = nn.Linear(64, 4), nn.Linear(4, num_classes)
        with torch.no_grad():
            self.a.weight.zero_()
            self.a.bias.copy_(torch.tensor([1e-7, 1.0, -1.0, 0.5]))

    def forward(self, x):
        return self.b(F.relu(self.a(x.flatten(1))))


def test_kinks_are_reported_apart_not_as_failures(make_session):
    r = make_session(AtAKink).check("gradient_check", coords=4)
    bias = next(t for t in r.details["phases"]["data"]["tensors"] if t["tensor"] == "a.bias")
    assert bias["kinks"] == 1 and bias["max_kink_error"] > 0.1  # one-sided slope vs the centered difference
    assert r.status == "pass" and r.measured["kinks"] >= 1 and "kink" in r.message


class WrongTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (1 - torch.tanh(x))  # the bug: tanh not squared


class ZeroHeadWrongBackward(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body, self.head = nn.Linear(64, 16), nn.Linear(16, num_classes)
        nn.init.zeros_(self.head.weight)

    def forward(self, x):
        return self.head(WrongTanh.apply(self.body(x.flatten(1))))


def test_a_zero_head_does_not_hide_a_wrong_backward(make_session):
    r = make_session(ZeroHeadWrongBackward).check("gradient_check")
    assert r.status == "fail" and r.details["perturbed"] == ["head.weight"]
    assert r.measured["max_judged_error"] > 1e-2 and "body" in r.message and "start at zero" in r.message


def test_depth_counts_layers_not_tensors():
    from torchvision.models import VisionTransformer

    from workbench.checks.gradcheck import depth_of, thresholds

    vit = VisionTransformer(image_size=16, patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)
    # conv_proj + 2 x (attention in-projection, out-projection, 2 MLP layers) + head; no pos_embedding/class_token
    assert depth_of(vit) == 10 and thresholds(False, depth_of(vit))[0] == 1e-6
    assert depth_of(nn.LSTM(4, 4, num_layers=3)) == 3 and depth_of(nn.Embedding(5, 3)) == 0


def test_the_coordinate_budget_caps_the_cost(make_session):
    r = make_session().check("gradient_check", coords=10, max_coords=44)
    assert r.details["coords_per_tensor"] == 4 and r.measured["coords"] <= 44 and r.status == "pass"
    assert make_session().check("gradient_check", coords=10, max_coords=5).details["coords_per_tensor"] == 1
