"""ChecksPanel (part II): checks run off the page's thread, verdict cards, the bias-init fix (II.5)."""

import torch

import workbench as wb
from workbench.ui.checks_panel import ChecksPanel


def test_quick_checks_run_in_a_thread_and_show_verdict_cards(small_session):
    panel = ChecksPanel(small_session)
    panel.start(["init_loss", "data_pipeline"])
    assert panel.running
    panel.wait(120)
    assert not panel.running and not panel.run_button.disabled
    r = small_session.results["init_loss"]
    assert r.status == "pass" and r.recipe == "II.4"
    html = "".join(c[0].object for c in panel._cards)
    assert "wb-check-init_loss" in html and "wb-check-data_pipeline" in html
    assert "✔ pass" in html and "II.4" in html and "log C" in html  # badge, step, the recipe's words


def test_bias_fix_button_appears_for_imbalanced_data_and_fixes_it(digits, tmp_path):
    train, test = digits
    keep = torch.cat([torch.nonzero(train.Y == 0).flatten(), torch.nonzero(train.Y != 0).flatten()[:60]])
    skewed = wb.datasets.TensorPairDataset(train.X[keep], train.Y[keep], classes=train.classes)
    s = wb.Session(wb.models.linear, skewed, test, seed=0, root=tmp_path)
    panel = ChecksPanel(s)
    panel.start(["bias_init"])
    panel.wait(60)
    first = s.results["bias_init"]
    assert first.status in ("warn", "fail")
    buttons = [w for card in panel._cards for w in card if hasattr(w, "css_classes") and "wb-fix-bias" in
               (w.css_classes or [])]
    assert buttons
    panel.fix_bias()
    assert s.results["bias_init"].status == "pass"


def test_a_failing_check_run_becomes_a_message_not_a_crash(small_session):
    from workbench.ui.common import ERRORS

    panel = ChecksPanel(small_session)
    panel.selected = []
    panel.start()
    assert any("select at least one check" in m for m in ERRORS.messages)
    panel.start(["init_loss"])
    panel.wait(60)
    assert "init_loss" in small_session.results
