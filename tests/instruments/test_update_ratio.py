"""update_ratio (P.5) against weights saved around a hand-made optimizer step."""

import numpy as np
import pytest

from workbench.errors import WorkbenchError
from workbench.instruments import UpdateRatio


def test_ratio_matches_saved_weights(session, manual):
    inst = UpdateRatio(every=3).attach(session).instrument
    model = session.new_model()
    _, saved = manual(session, model, steps=9, lr=1e-2)
    recs = inst.since(0)
    assert [r["step"] for r in recs] == [3, 6, 9]
    for r in recs:
        s = saved[r["step"]]
        for name, ratio in r["ratios"].items():
            w0 = s.before[name].double().cpu().numpy().ravel()
            w1 = s.after[name].double().cpu().numpy().ravel()
            expected = np.linalg.norm(w1 - w0) / np.linalg.norm(w0)
            assert ratio == pytest.approx(expected, rel=1e-5), name
        weights = [r["ratios"][n] for n in inst.weight_names]
        assert r["median"] == pytest.approx(float(np.median(weights)))
    assert set(inst.weight_names) == {n for n, p in model.named_parameters() if p.dim() > 1}
    # the wide frame and since() agree
    df = inst.frame()
    assert list(df["step"]) == [3, 6, 9] and df["median"].tolist() == [r["median"] for r in recs]
    assert inst.since(recs[1]["version"]) == recs[2:]


def test_healthy_lr_in_band(session):
    session.instrument("update_ratio", every=5)
    session.fit(epochs=1, lr=1e-3, checkpoint=False)
    s = session.instruments[0].summary()
    assert s["recipe"] == "P.5" and s["status"] in ("pass", "warn") and "LR in band" in s["verdict"]
    assert 1e-4 < s["median"] < 1e-2


@pytest.mark.parametrize("lr,word", [(1.0, "LR too high"), (1e-6, "LR too low")])
def test_bad_lr_is_named(session, lr, word):
    session.instrument("update_ratio", every=5)
    session.fit(epochs=1, lr=lr, checkpoint=False)
    s = session.instruments[0].summary()
    assert s["status"] == "fail" and s["verdict"].startswith(word), s["verdict"]
    assert (s["median"] > 1e-2) if "high" in word else (s["median"] < 1e-4)


def test_bad_band_is_refused():
    with pytest.raises(WorkbenchError, match="low < high"):
        UpdateRatio(low=1e-2, high=1e-3)
