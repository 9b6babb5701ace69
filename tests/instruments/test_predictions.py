"""predictions (II.11): probabilities on the fixed batch and the wiggle against numpy."""

import numpy as np
import pytest
import torch

from workbench.instruments import Predictions
from workbench.instruments.predictions import back_and_forth, wiggle


def test_probabilities_and_wiggle_match(session):
    inst = Predictions(every=5, k=8).attach(session).instrument
    mine = {}

    def recompute(ev):  # attached after the instrument: sees the same weights
        m = ev.model
        was = m.training
        m.eval()
        with torch.no_grad():
            x, y = session.batch("eval", 8)
            mine[ev.step] = torch.softmax(m(x.to(session.device)), 1).cpu().numpy()
        m.train(was)

    session.on("step_end", recompute, every=5)
    session.fit(epochs=1, lr=1e-3, checkpoint=False)
    recs = inst.since(0)
    assert [r["step"] for r in recs] == [0, 5, 10, 15, 20]
    y = session.batch("eval", 8)[1].numpy()
    for r in recs[1:]:
        np.testing.assert_allclose(r["probs"], mine[r["step"]], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(r["p_true"], mine[r["step"]][np.arange(8), y], rtol=1e-5, atol=1e-7)
    p = np.stack([r["p_true"] for r in recs]).astype(np.float64)
    assert inst.wiggle() == pytest.approx(np.mean(np.abs(p[1:] - p[:-1])), rel=1e-6)
    tv = np.abs(np.diff(p, axis=0)).sum(0)
    assert back_and_forth(p) == pytest.approx(np.mean((tv - np.abs(p[-1] - p[0])) / 4), rel=1e-6)
    df = inst.frame()
    assert len(df) == 5 * 8 and {"p_true", "p0", "p9", "label"} <= set(df.columns)


def test_wiggle_by_hand():
    p = np.array([[0.1, 0.5], [0.3, 0.4], [0.2, 0.6]])
    assert wiggle(p) == pytest.approx((0.2 + 0.1 + 0.1 + 0.2) / 4)
    assert back_and_forth(p) == pytest.approx(((0.3 - 0.1) + (0.3 - 0.1)) / 2 / 2)
    steady = np.linspace(0.1, 0.9, 9)[:, None]
    assert back_and_forth(steady) == pytest.approx(0.0, abs=1e-12) and wiggle(steady) == pytest.approx(0.1)


def test_stable_run_is_quiet_and_unstable_run_is_flagged(session):
    inst = session.instrument("predictions", every=2)[0].instrument
    session.fit(epochs=2, lr=1e-3, checkpoint=False)
    calm = inst.summary()
    session.fit(epochs=2, lr=0.5, optimizer="sgd", checkpoint=False)
    wild = inst.summary()
    assert calm["status"] == "pass" and calm["back_and_forth"] < Predictions().high
    assert wild["status"] == "warn" and "unstable" in wild["verdict"], wild
    assert wild["back_and_forth"] > 3 * calm["back_and_forth"]


def test_eval_mode_keeps_batchnorm_untouched(session):
    session.instrument("predictions", every=1)
    session.fit(epochs=1, checkpoint=False)
    assert session.model.training  # restored after each look
