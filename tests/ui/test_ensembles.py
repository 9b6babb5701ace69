"""EnsembleView (IV): a checkpoint ensemble built off the page's thread; its numbers are the backend's."""

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
