"""histograms (P.3): counts and statistics against activations and gradients captured independently."""

import numpy as np
import pytest
import torch
from torch import nn

import workbench as wb
from workbench.instruments import Histograms


def capture(session):
    """Record every training forward's outputs and their gradients, per layer, in call order."""
    seen = {"acts": {}, "grads": {}, "calls": {}}

    def on_start(ev):
        for name, m in ev.trainer.model.named_modules():
            if next(m.children(), None) is None and name:
                def hook(mod, args, out, name=name):
                    if mod.training and torch.is_grad_enabled():
                        k = seen["calls"].get(name, 0) + 1
                        seen["calls"][name] = k
                        seen["acts"][(name, k)] = out.detach().clone()
                        if out.requires_grad:
                            out.register_hook(lambda g, key=(name, k): seen["grads"].__setitem__(key, g.clone()))
                m.register_forward_hook(hook)

    session.on("run_start", on_start)
    return seen


def test_counts_and_stats_match_numpy(mlp_session):
    s = mlp_session
    inst = Histograms(every=5, max_values=1000).attach(s).instrument  # 64x64 = 4096 values: strided
    seen = capture(s)
    s.fit(epochs=1, lr=1e-3, checkpoint=False)
    recs = inst.since(0)
    assert [r["step"] for r in recs] == [1, 6, 11, 16, 21]
    assert list(recs[0]["layers"]) == ["1", "2", "3", "4", "5"]  # Linear, ReLU, Linear, ReLU, Linear
    for r in recs:
        for layer, entry in r["layers"].items():
            for kind, store in (("act", seen["acts"]), ("grad", seen["grads"])):
                x = store[(layer, r["step"])].double().cpu().numpy().ravel()
                st = entry[kind]
                lo, hi = inst.edges[(layer, kind)]
                sub = x[::-(-x.size // inst.max_values)]  # big layers: binned on an even stride
                assert st["n_hist"] == sub.size == min(x.size, sub.size)
                counts, _ = np.histogram(sub, bins=inst.bins, range=(lo, hi))
                assert np.abs(st["counts"] - counts).sum() <= 1, (layer, kind)  # float32 vs 64 at an edge
                assert st["under"] == int((sub < lo).sum()) and st["over"] == int((sub > hi).sum())
                assert st["counts"].sum() + st["under"] + st["over"] == sub.size
                assert st["mean"] == pytest.approx(sub.mean(), rel=1e-4, abs=1e-7)
                assert st["std"] == pytest.approx(sub.std(ddof=1), rel=1e-4, abs=1e-9)
                assert st["frac_zero"] == pytest.approx((np.abs(sub) <= inst.zero_eps).mean())
                assert st["mean"] == pytest.approx(x.mean(), abs=0.1 * x.std() + 1e-6)  # the subset represents x
                assert st["n"] == x.size
    # a ReLU's dead units: zero for every example of the batch
    relu = seen["acts"][("2", 6)].cpu().numpy()
    assert recs[1]["layers"]["2"]["act"]["dead_units"] == pytest.approx((relu.max(0) <= 0).mean())
    # bins stay fixed through the run: the heat map stacks
    hm = inst.heatmap("2")
    assert hm["counts"].shape == (5, inst.bins) and len(hm["edges"]) == inst.bins + 1
    assert inst.edges[("2", "act")][0] == 0.0  # ReLU outputs are non-negative
    assert inst.summary()["status"] == "pass"
    df = inst.frame()
    assert len(df) == 5 * 5 * 2 and {"mean", "std", "frac_zero", "frac_saturated"} <= set(df.columns)


def test_off_cadence_steps_leave_no_hooks(mlp_session):
    s = mlp_session
    inst = s.instrument("histograms", every=1000)[0].instrument
    s.fit(epochs=1, checkpoint=False)
    assert [r["step"] for r in inst.since(0)] == [1]
    assert all(not m._forward_hooks for m in s.model.modules())


def dead_relu(num_classes=10):
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, num_classes))
    nn.init.constant_(m[1].bias, -100.0)  # every pre-activation negative: the ReLU never fires
    return m


def saturated_tanh(num_classes=10):
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, num_classes))
    nn.init.normal_(m[1].weight, std=10.0)  # huge weights push tanh to ±1
    return m


@pytest.mark.parametrize("factory,flag,layer", [(dead_relu, "dead", "2"), (saturated_tanh, "saturated", "2")])
def test_flags_bad_initialisation(digits, tmp_path, factory, flag, layer):
    train, test = digits
    s = wb.Session(factory, train, test, seed=0, root=tmp_path / "runs")
    s.instrument("histograms", every=10)
    s.fit(epochs=1, lr=1e-3, checkpoint=False)
    summary = s.instruments[0].summary()
    assert summary["status"] == "fail" and "initialisation" in summary["verdict"]
    assert [(f["flag"], f["layer"]) for f in summary["flags"]] == [(flag, layer)]
    assert summary["flags"][0]["value"] > 0.9


def test_saturation_fraction_matches(digits, tmp_path):
    train, test = digits
    s = wb.Session(saturated_tanh, train, test, seed=0, root=tmp_path / "runs")
    inst = s.instrument("histograms", every=10)[0].instrument
    seen = capture(s)
    s.fit(epochs=1, checkpoint=False)
    x = seen["acts"][("2", 1)].cpu().numpy()
    st = inst.since(0)[0]["layers"]["2"]["act"]
    assert inst.edges[("2", "act")] == (-1.0, 1.0)
    assert st["frac_saturated"] == pytest.approx((np.abs(x) >= 0.99).mean())
