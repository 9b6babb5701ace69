"""InterpretView (B.4, I.2): the confusion matrix and top losses against an independent computation; marks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import workbench as wb
from workbench.errors import WorkbenchError
from workbench.ui.common import ERRORS
from workbench.ui.interpret import InterpretView, predictions, top_losses
from workbench.ui.wizard import RecipeWizard


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
