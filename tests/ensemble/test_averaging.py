"""Weight averaging (recipe IV.4): EMA and SWA checked against an independent average of the weights."""

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.ensemble import WeightAveraging, averaged_model, averaging_curves
from workbench.train import evaluate


def bn_dropout_mlp(num_classes=10, width=32):
    """BatchNorm (buffers to average) and dropout (draws from the global RNG): both traps for averaging."""
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(width, num_classes))


@pytest.fixture(scope="module")
def session(digits, tmp_path_factory):
    return wb.Session(bn_dropout_mlp, *digits, seed=0, root=tmp_path_factory.mktemp("runs"))


def _snapshots(session, event):
    """Copies of every float parameter and buffer after each step/epoch, recorded beside the run."""
    seen = []

    def grab(e):
        model = e.trainer.model
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()})

    return seen, session.on(event, grab)


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_equals_an_independent_moving_average(session, warmup):
    decay = 0.9
    steps, handle = _snapshots(session, "step_end")
    try:
        run = session.fit(epochs=2, lr=3e-3, seed=1, callbacks=[WeightAveraging(decay, warmup=warmup)])
    finally:
        handle.remove()
    expected = dict(steps[0])  # AveragedModel copies the weights at its first update, then lerps
    for n, snap in enumerate(steps[1:], start=1):
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay  # TensorFlow's num_updates warm-up
        expected = {k: d * expected[k] + (1 - d) * snap[k] for k in expected}
    saved = torch.load(run.dir / "ema.pt", weights_only=True)
    assert saved["step"] == len(steps) == run.trainer.step and saved["decay"] == decay
    for k, v in expected.items():  # weights AND BatchNorm running statistics (use_buffers=True)
        assert torch.allclose(saved["model"][k], v, atol=1e-5), k


def test_ema_metrics_on_the_whole_eval_set(session):
    run = session.fit(epochs=2, lr=3e-3, seed=1, ema=0.9)
    m = run.metrics
    assert {"ema_val_loss", "ema_val_metric", "ema_n_eval"} <= set(m.columns)
    assert (m["ema_n_eval"] == len(session.test)).all() and (m["n_eval"] == 360).all()
    ev = evaluate(session, averaged_model(session, run.id, "ema"), "eval")
    assert ev["n"] == 360
    assert m["ema_val_metric"].iloc[-1] == pytest.approx(ev["metric"])
    assert m["ema_val_loss"].iloc[-1] == pytest.approx(ev["loss"], rel=1e-5)
    # the columns are on disk too: a reloaded run shows them
    assert session.store.load(run.id).metrics["ema_val_metric"].tolist() == m["ema_val_metric"].tolist()
    curves = averaging_curves(run)
    assert curves["ema_gain"].tolist() == pytest.approx((m["ema_val_metric"] - m["val_metric"]).tolist())


def test_raw_training_is_identical_with_and_without_averaging(session):
    plain = session.fit(epochs=3, lr=3e-3, seed=2)
    averaged = session.fit(epochs=3, lr=3e-3, seed=2, ema=0.99, swa=True)
    # dropout draws from the global RNG: SWA's update_bn pass must not shift those draws
    assert plain.steps["data_loss"].tolist() == averaged.steps["data_loss"].tolist()
    assert plain.metrics["val_loss"].tolist() == averaged.metrics["val_loss"].tolist()


def test_swa_averages_epoch_ends_and_recomputes_batchnorm(session):
    ends, handle = _snapshots(session, "epoch_end")
    try:
        run = session.fit(epochs=4, lr=3e-3, seed=3, swa=True)
    finally:
        handle.remove()
    m = run.metrics
    assert m["swa_val_metric"].isna().tolist() == [True, True, False, False]  # swa_start = 4 // 2
    assert (m["swa_n_eval"].dropna() == 360).all()
    saved = torch.load(run.dir / "swa.pt", weights_only=True)
    assert saved["epoch"] == 4 and saved["swa_start"] == 2
    for k in ("1.weight", "1.bias", "5.weight"):  # parameters: the plain mean of epochs 3 and 4
        assert torch.allclose(saved["model"][k], (ends[2][k] + ends[3][k]) / 2, atol=1e-6), k
    # BatchNorm: recomputed for the averaged weights over the training set, not copied from the raw model
    model = averaged_model(session, run, "swa")
    with torch.no_grad():
        X = session.batch("train", len(session.train))[0].to(session.device)
        h = model[1](model[0](X))
    assert torch.allclose(saved["model"]["2.running_mean"], h.mean(0), atol=0.05)
    assert not torch.allclose(saved["model"]["2.running_mean"], ends[3]["2.running_mean"], atol=1e-3)


def test_resumed_run_continues_its_average(session):
    full = session.fit(epochs=3, lr=3e-3, seed=4, ema=0.9)
    part = session.fit(epochs=2, lr=3e-3, seed=4, ema=0.9)
    resumed = session.resume(part.id, epochs=3)
    assert resumed.steps["data_loss"].tolist() == full.steps["data_loss"].tolist()
    a_saved = torch.load(full.dir / "ema.pt", weights_only=True)
    b_saved = torch.load(resumed.dir / "ema.pt", weights_only=True)
    assert int(b_saved["averaged"]["n_averaged"]) == int(a_saved["averaged"]["n_averaged"]) == full.trainer.step
    a, b = a_saved["model"], b_saved["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a if a[k].is_floating_point())


def test_batchnorm_cnn_ema_scores_beside_raw(digits, tmp_path):
    s = wb.Session(wb.models.tiny_cnn, *digits, seed=0, root=tmp_path)
    run = s.fit(epochs=3, lr=3e-3, ema=0.99, batch_size=64)
    m = run.metrics
    assert (m["ema_n_eval"] == 360).all()
    # warmed-up EMA is already useful after 3 epochs (69 steps); measured 0.961 vs raw 0.942.
    # Plain EMA at 0.99 still carries the random init here: measured 0.17 (see the bad case below)
    assert m["ema_val_metric"].iloc[-1] > 0.9
    plain = s.fit(epochs=3, lr=3e-3, callbacks=[WeightAveraging(0.99, warmup=False)])
    assert plain.metrics["ema_val_metric"].iloc[-1] < 0.5
    # recomputing BatchNorm for the plain EMA weights recovers most of it (measured 0.88)
    rebn = s.fit(epochs=3, lr=3e-3, callbacks=[WeightAveraging(0.99, warmup=False, bn_update=True)])
    assert rebn.metrics["ema_val_metric"].iloc[-1] > plain.metrics["ema_val_metric"].iloc[-1] + 0.3
    if s.device.type == "cpu":  # cuDNN's conv backward is not deterministic: exact equality holds on CPU only
        assert rebn.steps["data_loss"].tolist() == plain.steps["data_loss"].tolist()


@pytest.mark.parametrize("kwargs", [{"decay": 1.5}, {"decay": 0.0}, {"decay": 1}, {"decay": "0.9"}, {},
                                    {"swa": True, "swa_start": -1}])
def test_bad_averaging_options_are_refused(kwargs):
    with pytest.raises(wb.WorkbenchError):
        WeightAveraging(**kwargs)


def test_bad_ema_through_fit_is_refused_before_training(session):
    before = len(session.store.ids())
    with pytest.raises(wb.WorkbenchError, match="between 0 and 1"):
        session.fit(epochs=1, ema=2.0)
    assert len(session.store.ids()) == before
    with pytest.raises(wb.RunError, match="no ema weights"):
        averaged_model(session, session.fit(epochs=1), "ema")
