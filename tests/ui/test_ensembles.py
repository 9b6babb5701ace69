"""EnsembleView (IV): a checkpoint ensemble built off the page's thread; its numbers are the backend's."""

import pytest

from workbench.ui.common import ERRORS
from workbench.ui.ensembles import EnsembleView


def test_checkpoint_ensemble_is_built_and_drawn(small_session):
    view = EnsembleView(small_session, kind="checkpoints", n=3)
    view.start()
    assert any("train one first" in m for m in ERRORS.messages)  # no run yet: a message, not a crash
    small_session.fit(epochs=3, lr=1e-2)
    view.start()
    view.wait(120)
    r = small_session.reports["ensemble"]
    assert len(r.members) == 3
    assert view.source.data["metric"] == r.gains["metric"].tolist()
    assert "ensemble of 3" in view._summary.object


def test_the_view_shows_the_chosen_configuration_and_changes_it(small_session):
    s = small_session
    found = s.lr_find(steps=20, coarse=None)
    s.fit(epochs=2, lr=found.suggestion)
    view = EnsembleView(s, kind="seeds", n=2)
    assert view.lr == pytest.approx(found.suggestion) and view.epochs == 2
    assert "LR finder" in view._config.object and f"{found.suggestion:.3g}" in view._config.object
    view.lr, view.epochs = 2e-2, 1
    view.use_config()
    assert s.chosen_config()["lr"] == 2e-2 and "set by hand" in view._config.object
    view.lr = 1e-2  # edited and built without pressing "use": what the fields show is what trains
    view.start()
    view.wait(180)
    r = s.book.get("ensemble")
    assert r is view.result and len(r.members) == 2
    assert {s.store.load(rid).config["lr"] for rid in r.run_ids} == {1e-2}
    assert {s.store.load(rid).config["epochs"] for rid in r.run_ids} == {1}
