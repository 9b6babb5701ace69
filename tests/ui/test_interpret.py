"""InterpretView (B.4, I.2): the confusion matrix and top losses against an independent computation; marks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import workbench as wb
from workbench.errors import WorkbenchError
from workbench.ui.common import ERRORS
from workbench.ui.interpret import InterpretView, predictions, top_losses
from workbench.ui.wizard import RecipeWizard, next_action, step_status


@pytest.fixture
def trained(small_session):
    run = small_session.fit(epochs=2, lr=1e-2)
    return small_session, run


def test_predictions_match_the_model_on_the_whole_test_set(trained):
    session, run = trained
    table = predictions(session, run.model)
    x, y = session.test.X, session.test.Y
    with torch.no_grad():
        run.model.eval()
        out = run.model(x)
    assert len(table) == len(y) == 360
    assert (table["pred"].to_numpy() == out.argmax(1).numpy()).all()
    assert np.allclose(table["loss"], F.cross_entropy(out, y, reduction="none").numpy(), atol=1e-5)
    assert np.allclose(table["p_label"], out.softmax(1)[torch.arange(len(y)), y].numpy(), atol=1e-6)
    top = top_losses(table, 5)
    assert top["loss"].tolist() == sorted(table["loss"], reverse=True)[:5]


def test_view_draws_the_matrix_and_the_top_losses_of_a_clicked_cell(trained):
    session, run = trained
    view = InterpretView(session)
    assert view.run_id == run.id
    view.start()
    view.wait(60)
    t = view.table
    counts = dict(zip(zip(view.cm_source.data["label"], view.cm_source.data["pred"], strict=True),
                      view.cm_source.data["count"], strict=True))
    assert sum(counts.values()) == 360
    for (lab, pred), n in counts.items():
        assert n == int(((t["label"] == int(lab)) & (t["pred"] == int(pred))).sum())
    assert f"accuracy <b>{(t['label'] == t['pred']).mean():.4f}</b>" in view._summary.object
    assert len(view.shown) == 16 and view.shown["loss"].is_monotonic_decreasing
    wrong = [(lab, p) for (lab, p), n in counts.items() if lab != p and n]
    cell = next(i for i, (lab, p) in enumerate(zip(view.cm_source.data["label"], view.cm_source.data["pred"],
                                                   strict=True)) if (lab, p) == wrong[0])
    view._on_cell("indices", [], [cell])
    assert set(view.shown["label"]) == {int(wrong[0][0])} and set(view.shown["pred"]) == {int(wrong[0][1])}
    assert len(view.shown) == counts[wrong[0]] or len(view.shown) == 16


def test_top_losses_are_marked_in_the_wizards_data_browser(trained):
    session, _ = trained
    wizard = RecipeWizard(session)
    view = wizard.view("InterpretView")
    assert view.wizard is wizard
    view.start()
    view.wait(60)
    view.mark("relabel")
    marks = wizard.view("DataBrowser").export_marks()
    assert len(marks) == 16 and set(marks["action"]) == {"relabel"}
    expected = {(r.split, int(r.index)): str(int(r.pred)) for r in view.shown.itertuples()}
    assert {(r.split, int(r.index)): r.new_label for r in marks.itertuples()} == expected


def test_no_run_and_a_regression_task_are_clear_errors(make_small_session, digits, tmp_path):
    session = make_small_session(wb.models.mlp)
    view = InterpretView(session)
    view.start()
    assert any("no finished run" in m for m in ERRORS.messages)
    x = torch.randn(64, 4)
    reg = wb.Session(wb.models.mlp, (x, x.sum(1, keepdim=True)), None, task="regression", seed=0, root=tmp_path / "r")
    with pytest.raises(WorkbenchError, match="classification"):
        predictions(reg, torch.nn.Linear(4, 1))


def test_interpretation_is_recorded_in_the_book_and_survives_a_reload(trained, make_small_session):
    session, run = trained
    assert step_status(session, "interpret") == "not run"
    only = [st for st in RecipeWizard(session).steps if st.key == "interpret"]
    assert next_action(session, only)[0] == "interpret" and "confusion matrix" in next_action(session, only)[1]
    it = session.interpret()  # the last completed run by default
    assert it.run_id == run.id and it.n == 360 and session.book.get("interpretation") is it
    cm = it.matrix
    assert cm.sum() == 360 and int(np.trace(cm)) == 360 - it.wrong
    assert it.accuracy == pytest.approx((it.table["label"] == it.table["pred"]).mean())
    assert step_status(session, "interpret") == "pass" and next_action(session, only)[0] == "export"
    # a new session on the same root and data (a reloaded page) reads it back and the view shows it at once
    again = make_small_session(wb.models.mlp)
    back = again.book.get("interpretation")
    assert back.run_id == run.id and back.table[["label", "pred"]].equals(it.table[["label", "pred"]])
    assert np.allclose(back.table["loss"], it.table["loss"])
    view = InterpretView(again)
    assert view.run_id == run.id and sum(view.cm_source.data["count"]) == 360 and len(view.shown) == 16
    assert step_status(again, "interpret") == "pass"
    from workbench.ui.export import report_html

    page = report_html(again)
    assert "Confusion matrix and top losses" in page and f"{360 - it.wrong} of 360" not in page
    assert f"{it.wrong} of 360 wrong" in page


def test_the_runs_step_is_done_with_two_finished_runs(small_session):
    assert step_status(small_session, "runs") == "not run"
    small_session.fit(epochs=1, lr=1e-2)
    assert step_status(small_session, "runs") == "partial"
    assert next_action(small_session, [s for s in RecipeWizard(small_session).steps if s.key == "runs"])[0] == "runs"
    small_session.fit(epochs=1, lr=3e-3)
    assert step_status(small_session, "runs") == "pass"
    assert set(small_session.store.statuses().values()) == {"completed"}
