"""TuneView (B.1-B.3) and DiagnosisView (B.4, III.M3) without a browser: the plots hold the backend's numbers."""

import math

import pytest

import workbench as wb
from workbench.ui.common import ERRORS
from workbench.ui.export import report_html
from workbench.ui.tune import DiagnosisView, TuneView
from workbench.ui.wizard import RecipeWizard, step_status


@pytest.fixture
def linear_session(make_small_session):
    return make_small_session(wb.models.linear)


def test_lr_finder_draws_curve_suggestions_and_coarse_test(linear_session):
    wizard = RecipeWizard(linear_session)
    view = wizard.view("TuneView")
    assert view.wizard is wizard
    assert step_status(linear_session, "tune") == "not run"
    view.steps = 30
    view.run_lr_find()
    assert view.finding and view.lr_button.disabled  # the sweep runs off the page's thread
    view.wait(120)
    r = linear_session.reports["lr_find"]
    assert view.result is r and not view.finding and not view.lr_button.disabled
    assert len(r.curve) == 30
    assert view.curve_source.data["lr"] == r.curve["lr"].tolist()
    assert view.curve_source.data["smoothed"] == r.curve["smoothed"].tolist()
    assert view.curve_source.data["loss"] == r.curve["loss"].tolist()
    # one vertical line per suggestion, exactly the backend's LRs, the result's pick labelled ◀
    drawn = dict(zip(view.sugg_source.data["method"], view.sugg_source.data["lr"], strict=True))
    assert drawn == {k: v for k, v in r.suggestions.items() if v is not None}
    pick = view.sugg_source.data["label"][view.sugg_source.data["method"].index(r.method)]
    assert pick.endswith("◀") and f"{r.suggestions[r.method]:.2g}" in pick
    # the coarse test of B.1: one line and one row per LR 1e-1 .. 1e-4, with whether the loss fell
    assert sorted(view._coarse_table.value["lr"]) == [1e-4, 1e-3, 1e-2, 1e-1]
    assert list(view._coarse_table.value["falls"]) == list(r.coarse_summary["falls"])
    assert len(view.coarse_source.data["xs"]) == 4 and len(view.coarse_source.data["ys"][0]) == 100
    assert r.message in view._lr_message.object
    sm = r.curve["smoothed"]  # the y axis shows the descent: from below the lowest loss to above the first
    assert view.lr_fig.y_range.start <= min(sm.min(), r.curve["loss"].min()) and view.lr_fig.y_range.end > sm.iloc[0]
    assert all(f"| {k}" in view._lr_table.object for k, v in r.suggestions.items() if v is not None)
    assert step_status(linear_session, "tune") == "pass"

    # "Use this LR" sets the LR of the wizard's Live curves (and records it in the session)
    lr = view.use_lr()
    assert lr == pytest.approx(r.suggestion)
    assert wizard.view("LiveCurves").lr == pytest.approx(r.suggestion)
    assert linear_session.reports["chosen_lr"] == pytest.approx(r.suggestion)
    view.method = "valley"
    assert view.use_lr() == pytest.approx(r.suggestions["valley"])
    assert wizard.view("LiveCurves").lr == pytest.approx(r.suggestions["valley"])
    assert "0.00" in view.use_button.label or "e-" in view.use_button.label
    assert ERRORS.messages == []


def test_use_lr_without_wizard_stores_it_and_without_result_says_so(linear_session):
    view = TuneView(linear_session)
    assert view.use_button.disabled
    view.use_lr()
    assert any("run the LR finder first" in m for m in ERRORS.messages)
    view.run_lr_find(steps=20, coarse=None)
    view.wait(120)
    assert view._coarse_table.value.empty and view.coarse_source.data["xs"] == []
    assert view.use_lr() == linear_session.reports["chosen_lr"] == view.result.suggestion
    # the HTML report carries the range test: its curve (a Bokeh figure), the suggestions and the LR used
    report = report_html(linear_session)
    assert view.result.message in report and "LR range test (B.1)" in report
    assert f"LR used: {view.result.suggestion:.3g}" in report and "valley" in report


def test_search_runs_trials_and_shows_them_best_first(linear_session):
    view = TuneView(linear_session, trials=2, epochs=1)
    view.run_search()
    assert view.searching and view.search_button.disabled and view.progress.visible
    view.wait(120)
    table = linear_session.reports["search"]
    assert len(table) == 2 and not view.searching and not view.progress.visible
    shown = view._search_table.value
    assert list(shown["trial"]) == list(table["trial"]) and list(shown["run_id"]) == list(table["run_id"])
    values = [v for v in shown["value"] if v is not None and not math.isnan(v)]
    assert values == sorted(values, reverse=True)  # accuracy: best first
    done = table[table["state"].eq("COMPLETE")]
    assert view.search_source.data["lr"] == done["lr"].tolist()
    assert view.search_source.data["value"] == done["value"].tolist()
    assert len(set(view.search_source.data["color"])) == len(set(view.search_source.data["wd"]))
    assert sorted(view._trials_done) == sorted(table["run_id"])  # progress counted the study's trials
    assert view.progress.value == 100
    assert "best trial" in view._search_status.object and "B.2" in view._search_status.object
    # the refine stage asks for the recipe's 10-20 epochs
    view.stage = "refine"
    assert view.epochs == 10
    # a new view shows what the session already holds
    again = TuneView(linear_session)
    assert list(again._search_table.value["run_id"]) == list(table["run_id"])


def test_backend_error_is_a_notification_and_the_view_keeps_working(linear_session, monkeypatch):
    view = TuneView(linear_session)

    def broken(**options):
        raise RuntimeError("the sweep exploded")

    monkeypatch.setattr(linear_session, "lr_find", broken)
    view.run_lr_find()
    view.wait(30)
    assert any("LR finder failed" in m and "the sweep exploded" in m for m in ERRORS.messages)
    assert not view.finding and not view.lr_button.disabled and view.result is None
    assert "failed" in view._lr_message.object
    monkeypatch.undo()
    view.run_lr_find(steps=15, coarse=None)
    view.wait(60)
    assert view.result is linear_session.reports["lr_find"] and len(view.curve_source.data["lr"]) == 15
    view.run_lr_find(steps=3)  # bad option: the backend's WorkbenchError reaches the page
    view.wait(30)
    assert any("at least 10 steps" in m for m in ERRORS.messages)


def test_diagnosis_finds_a_too_high_lr_and_nothing_on_a_healthy_run(digits, tmp_path):
    train, test = digits
    session = wb.Session(wb.models.linear, train, test, seed=0, root=tmp_path / "runs")
    view = DiagnosisView(session)
    view.diagnose()
    assert any("no run to diagnose" in m for m in ERRORS.messages)
    bad = session.fit(epochs=2, lr=5.0, optimizer="sgd")
    good = session.fit(epochs=3, lr=2e-2)
    view.flush()
    assert view.run_id == good.id and set(view.param.run_id.objects.values()) == {bad.id, good.id}

    d = view.diagnose(bad.id)
    assert not d.healthy and d.findings
    cards = [c.object for c in view._cards[1:]]
    assert len(cards) == len(d.findings)
    for f, card in zip(d.findings, cards, strict=True):
        assert f.name in card and f.recipe in card and f.advice.split(":")[0] in card
        for k in f.evidence:
            assert f"{k}=" in card
    assert step_status(session, "diagnose") == d.findings[0].status == "warn"  # the worst finding shows
    assert view.epoch_source.data["val_loss"] == bad.metrics["val_loss"].tolist()

    d = view.diagnose(good.id)
    assert d.healthy and not d.findings and "no problem found" in view._cards[0].object
    assert "healthy" in view._cards[0].object and "wb-diagnosis-healthy" in view._cards[1].object
    assert view.epoch_source.data["train_metric"] == good.metrics["train_metric"].tolist()
    assert len(view.step_source.data["loss"]) == len(good.steps)
    assert step_status(session, "diagnose") == "pass"  # a healthy run: done, nothing to fix

    # III.M3: the config diff and the metric deltas of the two runs
    c = view.compare(bad.id, good.id)
    assert set(c.changed) == {"lr", "optimizer", "epochs"}
    cfg = view._config_table.value.set_index("key")
    assert set(cfg.index) == {"lr", "optimizer", "epochs"} and cfg.loc["lr", "b"] == "0.02"
    m = view._metrics_table.value.set_index("name")
    delta = good.metrics["val_metric"].iloc[-1] - bad.metrics["val_metric"].iloc[-1]
    assert float(m.loc["val_metric", "delta"]) == pytest.approx(delta, rel=1e-3)
    assert "3 things changed" in view._compare_message.object


def test_two_browser_sessions_on_one_runs_folder_keep_their_own_search(make_small_session):
    """Each page builds its own session and view on the same runs folder: their studies stay apart."""
    tabs = [make_small_session(wb.models.linear) for _ in range(2)]
    views = [TuneView(s, trials=2, epochs=1) for s in tabs]
    assert views[0].study_prefix != views[1].study_prefix
    for v in views:
        v.run_search()
        v.wait(120)
    tables = [s.reports["search"] for s in tabs]
    assert [len(t) for t in tables] == [2, 2]  # not 4: the second tab does not see the first tab's trials
    assert tables[0].attrs["study"] != tables[1].attrs["study"]
    assert not set(tables[0]["run_id"]) & set(tables[1]["run_id"])
    assert "2 of 2 trials complete" in views[1]._search_status.object
