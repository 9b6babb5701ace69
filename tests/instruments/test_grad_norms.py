"""grad_norms: per-layer and total norms against the saved gradients; the NaN/inf trap names its layer."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import workbench as wb
from workbench.instruments import GradNorms


def test_norms_match_saved_gradients(session, manual):
    inst = GradNorms(every=2).attach(session).instrument
    _, saved = manual(session, session.new_model(), steps=6)
    recs = [r for r in inst.since(0) if "total" in r]
    assert [r["step"] for r in recs] == [2, 4, 6]
    for r in recs:
        grads = saved[r["step"]].grads
        flat = np.concatenate([g.double().cpu().numpy().ravel() for g in grads.values()])
        assert r["total"] == pytest.approx(np.linalg.norm(flat), rel=1e-6)
        ref = torch.nn.utils.get_total_norm([g.double() for g in grads.values()])
        assert r["total"] == pytest.approx(float(ref), rel=1e-6)
        for layer, norm in r["layers"].items():
            mine = np.concatenate([g.double().cpu().numpy().ravel() for n, g in grads.items()
                                   if n.rsplit(".", 1)[0] == layer])
            assert norm == pytest.approx(np.linalg.norm(mine), rel=1e-6), layer
    assert inst.trapped is None and inst.summary()["status"] == "pass"
    assert list(inst.frame().columns[:2]) == ["step", "total"]


class NaNGrad(torch.autograd.Function):
    """Identity forward, NaN backward: a layer whose gradient is broken while the loss stays finite."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


class BrokenBackward(nn.Module):
    def __init__(self, after_step: int = 3):
        super().__init__()
        self.calls, self.after_step = 0, after_step

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.calls += 1
            if self.calls > self.after_step:
                return NaNGrad.apply(x)
        return x


def broken_mlp(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), BrokenBackward(),
                         nn.ReLU(), nn.Linear(32, num_classes))


def test_trap_every_step_names_the_layer_and_stops_the_run(digits, tmp_path):
    train, test = digits
    s = wb.Session(broken_mlp, train, test, seed=0, root=tmp_path / "runs")
    s.instrument("grad_norms", every=10, trap_every=1)
    with pytest.warns(RuntimeWarning, match="first appears in layer '3'"):
        run = s.fit(epochs=2, lr=1e-3, checkpoint=False)
    inst = s.instruments[0]
    # steps 1-3 fine; the 4th backward is the first with NaN: Linear '3' (and '1' before it), not the head '6'
    assert inst.trapped["step"] == 4 and inst.trapped["where"] == "gradient"
    assert inst.trapped["layer"] == "3" and inst.trapped["layers"] == ["1", "3"]
    assert run.status == "stopped" and len(run.step_records) == 4
    assert run.records("nan_trap")["layer"].tolist() == ["3"]
    summary = inst.summary()
    assert summary["status"] == "fail" and "'3'" in summary["verdict"]


def test_trap_at_cadence_names_the_same_layer_from_the_weights(digits, tmp_path):
    """Off the trap's steps the NaN gradient is written into the weights; the next loss diverges; same layer."""
    train, test = digits
    s = wb.Session(broken_mlp, train, test, seed=0, root=tmp_path / "runs")
    s.instrument("grad_norms", every=10)
    inst = s.instruments[0]
    assert inst.trap_every == 10
    with pytest.warns(RuntimeWarning, match="first appears in layer '3'"):
        run = s.fit(epochs=2, lr=1e-3, checkpoint=False)
    assert run.status == "diverged" and len(run.step_records) == 5
    assert math.isnan(run.step_records[-1]["loss"]) and math.isfinite(run.step_records[-2]["loss"])
    # the per-step marks on the device keep the first bad step: named when they are read at step 10
    assert inst.trapped["where"] == "gradient" and inst.trapped["step"] == 4
    assert inst.trapped["layer"] == "3" and inst.trapped["layers"] == ["1", "3"]
    assert inst.summary()["status"] == "fail"


class NaNForward(nn.Module):
    """Finite until the 4th training forward, then NaN outputs: the loss diverges, the weights stay finite."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.calls += 1
            if self.calls == 4:
                return x * float("nan")
        return x


def test_trap_on_a_nan_loss_with_finite_weights_blames_the_sample_or_lr(digits, tmp_path):
    train, test = digits
    s = wb.Session(lambda num_classes=10: nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes), NaNForward()),
                   train, test, seed=0, root=tmp_path / "runs")
    s.instrument("grad_norms")
    with pytest.warns(RuntimeWarning, match="finite weights"):
        run = s.fit(epochs=1, checkpoint=False)
    inst = s.instruments[0]
    assert run.status == "diverged" and len(run.step_records) == 4
    assert inst.trapped["layer"] is None and inst.trapped["step"] == 4 and inst.trapped["layers"] == []
    assert inst.trapped["where"] == "loss"


def test_trap_catches_a_nan_written_by_the_last_step_of_a_completed_run(digits, tmp_path):
    train, test = digits

    def breaks_on_the_last_step(num_classes=10):  # 1,437 examples / 64 = 23 steps: the 23rd backward is NaN
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32),
                             BrokenBackward(after_step=22), nn.ReLU(), nn.Linear(32, num_classes))

    s = wb.Session(breaks_on_the_last_step, train, test, seed=0, root=tmp_path / "runs")
    inst = s.instrument("grad_norms")[0].instrument  # every 25: no test inside this 23-step run
    with pytest.warns(RuntimeWarning, match="first appears in layer '3'"):
        run = s.fit(epochs=1, checkpoint=False)
    # NaN weights after the last step: the validation loss is NaN, so the run is diverged, not completed
    assert run.status == "diverged" and len(run.step_records) == 23
    assert math.isnan(run.epoch_records[-1]["val_loss"])
    assert inst.trapped["where"] == "gradient" and inst.trapped["step"] == 23 and inst.trapped["layer"] == "3"


def test_detach_leaves_no_hooks_on_the_model(mlp_session):
    from types import SimpleNamespace

    from workbench.instruments import Histograms

    model = mlp_session.new_model()
    insts = [GradNorms().attach(mlp_session).instrument, Histograms().attach(mlp_session).instrument]
    run = SimpleNamespace(id="r", model=model, log=lambda r: None, stop=lambda: None)
    mlp_session.emit("run_start", run=run, trainer=SimpleNamespace(model=model, step=0))
    hooks = lambda: sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())  # noqa: E731
    assert hooks() > 0
    for inst in insts:
        inst.detach()
    assert hooks() == 0 and not mlp_session.bus.has("step_end")


def test_trap_every_is_validated():
    with pytest.raises(wb.WorkbenchError, match="trap_every"):
        GradNorms(trap_every=0)
    assert GradNorms(every=25, trap_every=4).cadence("after_backward") == 1
    assert GradNorms(every=25, trap_every=5).cadence("after_backward") == 1  # marks every step, on the device
    assert GradNorms(every=25, trap=False, trap_every=4).cadence("after_backward") == 25


def test_no_trap_on_a_healthy_run(mlp_session):
    mlp_session.instrument("grad_norms")
    run = mlp_session.fit(epochs=1, checkpoint=False)
    inst = mlp_session.instruments[0]
    assert run.status == "completed" and inst.trapped is None
    assert all(math.isfinite(r["total"]) for r in inst.since(0))
