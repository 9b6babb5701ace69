"""The fit loop: seeding (II.1), whole-set evaluation (II.3), divergence, stop, callbacks, schedules."""

import math
import threading

import pytest
import torch
from torch import nn

import workbench as wb


def small(digits, n=256):
    train, test = digits
    return wb.datasets.TensorPairDataset(train.X[:n], train.Y[:n]), test


def test_same_seed_gives_bit_identical_losses(digits, tmp_path):
    train, test = small(digits)
    a = wb.Session(wb.models.tiny_cnn, train, test, seed=3, root=tmp_path).fit(epochs=2)
    b = wb.Session(wb.models.tiny_cnn, train, test, seed=3, root=tmp_path).fit(epochs=2)
    c = wb.Session(wb.models.tiny_cnn, train, test, seed=4, root=tmp_path).fit(epochs=2)
    la, lb, lc = a.steps.data_loss.tolist(), b.steps.data_loss.tolist(), c.steps.data_loss.tolist()
    assert len(la) == 2 * math.ceil(256 / 64)
    assert la == lb  # bit-identical, not approximately equal
    assert la != lc
    assert a.metrics.val_loss.tolist() == b.metrics.val_loss.tolist()


def test_dropout_model_is_reproducible_too(digits, tmp_path):
    train, test = small(digits, 128)
    f = lambda num_classes=10: wb.models.mlp(num_classes=num_classes, dropout=0.5)  # noqa: E731
    a = wb.Session(f, train, test, seed=1, root=tmp_path).fit(epochs=1)
    b = wb.Session(f, train, test, seed=1, root=tmp_path).fit(epochs=1)
    assert a.steps.data_loss.tolist() == b.steps.data_loss.tolist()


def test_every_epoch_evaluates_the_whole_test_set(digits, tmp_path):
    train, test = small(digits)
    run = wb.Session(wb.models.linear, train, test, root=tmp_path).fit(epochs=3)
    assert run.metrics.n_eval.tolist() == [len(test)] * 3 == [360] * 3
    assert run.metrics.eval_split.unique().tolist() == ["test"]


def test_val_split_is_evaluated_when_given(digits, tmp_path):
    train, test = digits
    val = wb.datasets.TensorPairDataset(train.X[1000:], train.Y[1000:])
    s = wb.Session(wb.models.linear, (train.X[:1000], train.Y[:1000]), test, val=val, root=tmp_path)
    run = s.fit(epochs=1)
    assert run.metrics.n_eval.tolist() == [len(val)]
    assert run.metrics.eval_split.tolist() == ["val"]


def test_training_learns_digits(session):
    run = session.fit(epochs=4, lr=3e-3)
    m = run.metrics
    assert run.status == "completed"
    assert m.val_metric.iloc[-1] > 0.85
    assert m.train_loss.iloc[-1] < m.train_loss.iloc[0]
    assert (run.steps.reg_loss == 0).all()


def test_reg_loss_is_logged_apart(digits, tmp_path):
    train, test = small(digits, 128)
    s = wb.Session(wb.models.mlp, train, test, reg_strength=1e-2, root=tmp_path)
    run = s.fit(epochs=1)
    steps = run.steps
    assert (steps.reg_loss > 0).all()
    assert steps.loss.tolist() == pytest.approx((steps.data_loss + steps.reg_loss).tolist())
    assert run.config["regularizer"] == "l2"


class Exploding(nn.Module):
    """A linear model whose output becomes NaN from the third call on."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 10)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.lin(x.flatten(1))
        return out * float("nan") if self.calls > 3 else out


def test_nan_loss_ends_run_as_diverged_without_exception(digits, tmp_path):
    train, test = small(digits)
    s = wb.Session(Exploding(), train, test, root=tmp_path)
    run = s.fit(epochs=3)
    assert run.status == "diverged"
    steps = run.steps
    assert len(steps) == 3  # probe call + 2 good steps, then the NaN step is logged and ends the run
    assert math.isnan(steps.data_loss.iloc[-1]) and math.isfinite(steps.data_loss.iloc[0])
    assert s.store.load(run.id).status == "diverged"
    assert s.runs().set_index("id").loc[run.id, "status"] == "diverged"


def test_raising_callback_is_detached_and_training_goes_on(session):
    calls = []

    def bad(ev):
        calls.append(ev.step)
        raise RuntimeError("boom")

    good_steps = []
    session.on("step_end", bad)
    session.on("step_end", lambda ev: good_steps.append(ev.step))
    with pytest.warns(RuntimeWarning, match="boom"):
        run = session.fit(epochs=1)
    assert run.status == "completed"
    assert calls == [1]
    assert good_steps == list(range(1, len(run.steps) + 1))
    assert session.bus.errors[0]["error"] == "RuntimeError: boom"


def test_event_cadence_and_removal(session):
    seen = []
    h = session.on("step_end", lambda ev: seen.append(ev.step), every=5)
    epochs = []
    session.on("epoch_end", lambda ev: epochs.append((ev.epoch, ev.row["n_eval"])))
    session.fit(epochs=1)
    assert seen == [5, 10, 15, 20]
    assert epochs == [(1, 360)]
    h.remove()
    assert not h.attached


def test_background_run_stops_cooperatively(session):
    started = threading.Event()
    session.on("step_end", lambda ev: started.set())
    run = session.fit(epochs=200, background=True)
    assert started.wait(30)
    run.stop()
    run.wait(30)
    assert not run.running
    assert run.status == "stopped"
    assert len(run.steps) < 200 * 23
    assert session.store.load(run.id).status == "stopped"


def test_early_stopping_restores_best_weights(digits, tmp_path):
    train, test = small(digits, 64)
    s = wb.Session(wb.models.mlp, train, test, root=tmp_path)
    run = s.fit(epochs=40, lr=1e-2, early_stopping={"patience": 2, "monitor": "val_loss"})
    m = run.metrics
    stop = run.records("early_stop").iloc[0]
    assert len(m) < 40
    best = m.val_loss.min()
    assert stop.best == pytest.approx(best)
    from workbench.train import evaluate

    assert evaluate(s, run.model)["loss"] == pytest.approx(best, rel=1e-5)
    assert bool(stop.restored) and stop.best_epoch < len(m)
    # read back from disk (a new session, e.g. after a restart): no weights loaded until asked for, then the
    # best epoch's, the weights the live run ended with, not the last checkpoint's
    again = wb.Session(wb.models.mlp, train, test, root=tmp_path).run(run.id)
    assert again.model_loader is not None and again._model is None
    assert evaluate(s, again.model)["loss"] == pytest.approx(best, rel=1e-5)
    assert again.model is again.model  # loaded once, kept by that Run
    last = s.load_run(run.id, checkpoint=again.checkpoints()[-1]).model
    assert evaluate(s, last)["loss"] == pytest.approx(m.val_loss.iloc[-1], rel=1e-5)


def test_a_run_read_from_disk_loads_its_weights_when_first_asked(digits, tmp_path):
    train, test = small(digits, 64)
    s = wb.Session(wb.models.mlp, train, test, root=tmp_path)
    run = s.fit(epochs=2, lr=1e-2)
    bare = s.fit(epochs=1, lr=1e-2, checkpoint=False)
    x = test.X[:16]
    back = s.run(run.id)  # finished: read from disk, the run's live module is not kept by the session
    assert back is not run and back._model is None
    with torch.no_grad():
        assert torch.equal(back.model.eval()(x), run.model.eval()(x))
    assert s.run(bare.id).model is None  # no checkpoint: nothing to load, and no error
    for path in run.checkpoints():
        path.write_bytes(b"not a checkpoint")
    damaged = s.run(run.id)
    for _ in range(2):  # every time it is asked, not once and then a silent None
        with pytest.raises(wb.WorkbenchError, match="every checkpoint of run .* is damaged"):
            _ = damaged.model


def test_schedules_and_optimizers(digits, tmp_path):
    train, test = small(digits, 128)
    s = wb.Session(wb.models.linear, train, test, root=tmp_path)
    run = s.fit(epochs=4, lr=0.1, optimizer="sgd", lr_schedule="step")
    assert run.metrics.lr.tolist() == pytest.approx([0.1, 0.1, 0.01, 0.001])  # the LR each epoch used
    with pytest.raises(ValueError, match="optimizer"):
        s.fit(epochs=1, optimizer="lbfgs-please")


def test_augmentation_is_off_by_default_and_changes_batches_when_on(digits, tmp_path):
    train, test = small(digits, 128)
    s = wb.Session(wb.models.linear, train, test, root=tmp_path)
    plain = s.fit(epochs=1)
    aug = s.fit(epochs=1, augment=True)
    assert plain.config["augment"] is False
    assert plain.steps.data_loss.tolist() != aug.steps.data_loss.tolist()


def test_regression_task(tmp_path):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 5, generator=g)
    w = torch.randn(5, generator=g)
    y = X @ w + 50.0
    model = nn.Sequential(nn.Linear(5, 1))
    s = wb.Session(model, (X[:200], y[:200]), (X[200:], y[200:]), task="regression", root=tmp_path)
    run = s.fit(epochs=30, lr=0.5)
    assert s.task.metric == "mse"
    assert run.metrics.val_metric.iloc[-1] < 0.05 * run.metrics.val_metric.iloc[0]


def test_sequence_task_trains(tmp_path):
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 7, (128, 12), generator=g)
    Y = torch.roll(X, -1, dims=1)

    class Bigram(nn.Module):
        def __init__(self, num_classes=7):
            super().__init__()
            self.emb = nn.Embedding(num_classes, num_classes)

        def forward(self, x):
            return self.emb(x)

    s = wb.Session(Bigram, (X, Y), (X[:32], Y[:32]), task="sequence", root=tmp_path)
    assert s.num_classes == 7
    run = s.fit(epochs=2, lr=0.1)
    assert run.status == "completed"
    assert run.metrics.n_eval.tolist() == [32, 32]


def test_loader_workers_are_seeded(digits, tmp_path):
    train, test = small(digits, 128)
    a = wb.Session(wb.models.linear, train, test, seed=2, num_workers=2, root=tmp_path).fit(epochs=1)
    b = wb.Session(wb.models.linear, train, test, seed=2, num_workers=0, root=tmp_path).fit(epochs=1)
    assert a.steps.data_loss.tolist() == b.steps.data_loss.tolist()  # same order with or without workers
