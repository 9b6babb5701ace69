"""wb.watch on a plain PyTorch loop: the run, every instrument against independent numbers, no sync per step."""

import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

import workbench as wb
from workbench.errors import WorkbenchError
from workbench.watch import LightOwner


def plain_loop(w, model, optimizer, loader, epochs=1, steps=None, val=None):
    """The loop as a user writes it, plus w.step / w.epoch; returns the gradients and weights seen at each step."""
    seen = {}
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            out = model(x)
            loss = nn.functional.cross_entropy(out, y)
            loss.backward()
            grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            optimizer.step()
            seen[w.trainer.step + 1] = (grads, before, {n: p.detach().clone() for n, p in model.named_parameters()})
            w.step(loss, output=out, y=y)
            if steps and w.trainer.step >= steps:
                break
        w.epoch(**(val or {}))
    return seen


@pytest.fixture
def loop_parts(digits):
    train, test = digits
    torch.manual_seed(0)
    model = wb.models.tiny_cnn(num_classes=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    return model, opt, loader, train, test


def test_watched_loop_records_run_and_instruments(loop_parts, tmp_path):
    model, opt, loader, train, test = loop_parts
    with wb.watch(model, opt, train=loader, test=test, root=tmp_path / "runs", every=5) as w:
        seen = plain_loop(w, model, opt, loader, epochs=2)
    run = w.run
    s = w.session
    assert isinstance(s, wb.Session) and s.last_run is run and s.model is model
    table = s.runs()
    assert table["id"].tolist() == [run.id] and table["status"].tolist() == ["completed"]
    assert run.config["source"] == "watch" and run.config["optimizer"] == "adam" and run.config["lr"] == 1e-3
    # every step on disk, in order, x in epochs; the epoch rows evaluated the whole test set (II.3)
    steps = run.steps
    assert steps["step"].tolist() == list(range(1, 2 * len(loader) + 1))
    assert steps["epoch"].iloc[len(loader) - 1] == pytest.approx(1.0) and steps["epoch"].iloc[-1] == pytest.approx(2.0)
    assert steps["loss"].iloc[0] == pytest.approx(math.log(10), abs=0.3)  # L.1: log C at init
    m = run.metrics
    assert m["epoch"].tolist() == [1, 2] and (m["n_eval"] == len(test)).all()
    assert m["train_loss"].iloc[0] == pytest.approx(steps["loss"].iloc[: len(loader)].mean())
    assert 0.5 < m["val_metric"].iloc[-1] <= 1.0 and 0.3 < m["train_metric"].iloc[-1] <= 1.0
    # grad norms are the norms of the gradients the loop computed, update ratios the step it took
    gn = wb.instruments.get(s, "grad_norms")
    rec = gn.since(0)[-1]
    grads, before, after = seen[rec["step"]]
    assert rec["total"] == pytest.approx(math.sqrt(sum(float(g.double().norm()) ** 2 for g in grads.values())),
                                         rel=1e-6)
    ur = wb.instruments.get(s, "update_ratio")
    rec = ur.since(0)[-1]
    grads, before, after = seen[rec["step"]]
    w_name = "features.0.weight" if "features.0.weight" in before else next(iter(before))
    expected = float((after[w_name] - before[w_name]).double().norm() / before[w_name].double().norm())
    assert rec["ratios"][w_name] == pytest.approx(expected, rel=1e-5)
    # each instrument measured something and left its verdict on the run
    verdicts = run.records("instrument").set_index("name")
    assert set(verdicts.index) == set(wb.instruments.DEFAULT)
    assert (verdicts["records"] > 0).all() and not (verdicts["status"] == "empty").any()
    assert len(wb.instruments.get(s, "first_layer").since(0)) == 3  # at the start and after each epoch
    curves = wb.instruments.get(s, "curves").frame()  # fed by the step log's batched reads, not per step
    assert curves["loss"].tolist() == steps["loss"].tolist()[4::5]  # every=5
    assert wb.instruments.get(s, "histograms").since(0)[0]["layers"]


def test_losses_stay_on_the_device_between_reads(loop_parts, tmp_path, monkeypatch):
    model, opt, loader, train, test = loop_parts
    w = wb.watch(model, opt, root=tmp_path / "runs", instruments=None, log_every=5)
    batches = [b for _, b in zip(range(20), loader, strict=False)]  # read before counting: the sampler syncs
    calls = {"item": 0, "tolist": 0}
    real_item, real_tolist = torch.Tensor.item, torch.Tensor.tolist

    def ours() -> bool:  # Adam reads its own step counter with .item(): count only the workbench's reads
        return "/workbench/" in sys._getframe(2).f_code.co_filename

    def item(t):
        calls["item"] += ours()
        return real_item(t)

    def tolist(t):
        calls["tolist"] += ours()
        return real_tolist(t)

    monkeypatch.setattr(torch.Tensor, "item", item)
    monkeypatch.setattr(torch.Tensor, "tolist", tolist)
    for x, y in batches:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        w.step(loss)
    assert calls == {"item": 0, "tolist": 4}  # one read per 5 steps, nothing per step
    monkeypatch.undo()
    w.close()
    assert len(w.run.step_records) == 20 and w.run.status == "completed"


def test_exception_in_loop_fails_the_run_with_the_error(loop_parts, tmp_path):
    model, opt, loader, *_ = loop_parts
    with pytest.raises(RuntimeError, match="data went missing"):
        with wb.watch(model, opt, root=tmp_path / "runs") as w:
            x, y = next(iter(loader))
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            w.step(loss)
            raise RuntimeError("data went missing")
    run = wb.Session(wb.models.tiny_cnn, *loop_parts[3:], root=tmp_path / "runs").run(w.run.id)
    assert run.status == "failed" and "data went missing" in run.info["error"]
    assert len(run.step_records) == 1  # the buffered step was read before the run closed


def test_divergence_ends_the_run_and_asks_the_loop_to_stop(loop_parts, tmp_path):
    model, opt, loader, *_ = loop_parts
    w = wb.watch(model, opt, root=tmp_path / "runs", instruments=["grad_norms"], every=1, log_every=4)
    answers = []
    for i, (x, y) in enumerate(loader):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y) * (float("nan") if i == 5 else 1.0)
        loss.backward()
        opt.step()
        answers.append(w.step(loss))
        if i == 9:
            break
    w.close()
    assert answers[:3] == [True] * 3 and answers[7] is False  # the read at step 8 saw step 6's NaN
    assert w.run.status == "diverged"
    assert w.run.records("diverged")["step"].tolist() == [6]
    assert [r["step"] for r in w.run.step_records] == list(range(1, 7))
    trap = wb.instruments.get(w.session, "grad_norms").trapped
    assert trap is not None and trap["step"] == 6 and trap["where"] == "gradient"


def test_light_owner_without_data(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 3, (32,))
    with wb.watch(model, opt, root=tmp_path / "runs", num_classes=3, every=2, epochs=3) as w:
        for _ in range(3):
            for i in range(0, 32, 8):
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x[i:i + 8]), y[i:i + 8])
                loss.backward()
                opt.step()
                w.step(loss)
            w.epoch(val_loss=0.5, val_metric=torch.tensor(0.75))
    owner = w.session
    assert isinstance(owner, LightOwner)
    names = {i.name for i in owner.instruments}
    assert names == set(wb.instruments.DEFAULT) - {"predictions"}  # no held-out data to predict on
    assert w.closed and w.run.status == "completed"  # epochs=3 closed it
    m = w.run.metrics
    assert m["val_loss"].tolist() == [0.5] * 3 and m["val_metric"].tolist() == [0.75] * 3
    assert w.trainer.steps_per_epoch == 4 and w.run.steps["epoch"].tolist()[-1] == pytest.approx(3.0)
    assert owner.runs()["status"].tolist() == ["completed"]


def test_without_optimizer_gradients_are_read_at_the_step(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    w = wb.watch(model, root=tmp_path / "runs", num_classes=2, every=1)
    assert {i.name for i in w.session.instruments} >= {"grad_norms"}
    assert "update_ratio" not in {i.name for i in w.session.instruments}
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    w.step(loss)
    rec = wb.instruments.get(w.session, "grad_norms").since(0)[-1]
    expected = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters()))
    assert rec["step"] == 1 and rec["total"] == pytest.approx(expected, rel=1e-6)
    w.close()


def test_bad_input_is_named():
    with pytest.raises(WorkbenchError, match="nn.Module"):
        wb.watch("my_model")
    with pytest.raises(WorkbenchError, match="torch.optim.Optimizer"):
        wb.watch(nn.Linear(2, 2), optimizer="adam")


def test_step_needs_the_loss_tensor(tmp_path):
    w = wb.watch(nn.Linear(2, 2), root=tmp_path / "runs", num_classes=2, instruments=None)
    with pytest.raises(WorkbenchError, match="without .item"):
        w.step(0.5)
    w.close()
    assert np.isfinite(0.0) and w.run.status == "completed"


def test_a_sessions_attached_instruments_are_kept(loop_parts, tmp_path):
    model, opt, loader, train, test = loop_parts
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path / "runs")
    (kept,) = s.instrument("grad_norms", every=3)
    w = wb.watch(model, opt, session=s)
    x, y = next(iter(loader))
    for _ in range(6):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        w.step(loss)
    w.close()
    inst = kept.instrument
    assert wb.instruments.get(s, "grad_norms") is inst and [r["step"] for r in inst.since(0)] == [3, 6]
    assert {i.name for i in s.instruments} == set(wb.instruments.DEFAULT)  # the others were attached
    assert s.last_run is w.run and s.runs()["id"].tolist() == [w.run.id]


def test_live_curves_view_streams_a_watched_run(loop_parts, tmp_path):
    from workbench.ui.curves import LiveCurves

    model, opt, loader, train, test = loop_parts
    w = wb.watch(model, opt, train=loader, test=test, root=tmp_path / "runs", instruments=["curves"], log_every=4)
    view = LiveCurves(w.session)
    assert view.run is w.run  # the view shows the session's newest run: the watched one
    for i, (x, y) in enumerate(loader):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        w.step(loss)
        if i == 9:
            view.flush()
            assert len(view.step_source.data["loss"]) == 8  # two reads of four steps each so far
    row = w.epoch()
    view.flush()
    assert view.epoch_source.data["val_loss"] == [pytest.approx(row["val_loss"])]
    assert f"run {w.run.id}" in view.status and "epoch 1/1" in view.status
    w.close()
