"""export: CSV always, HTML via Bokeh, TensorBoard and PNG when their packages are installed."""

import pandas as pd
import pytest

from workbench.errors import WorkbenchError
from workbench.instruments import export


@pytest.fixture
def trained(session):
    session.instrument(every=5)
    run = session.fit(epochs=1, checkpoint=False)
    return session, run


def test_csv_of_every_instrument(trained, tmp_path):
    session, run = trained
    paths = export.to_csv(session, tmp_path / "csv")
    names = sorted(p.stem for p in paths)
    assert names == ["curves_epochs", "curves_steps", "first_layer", "grad_norms", "histograms", "predictions",
                     "update_ratio"]
    steps = pd.read_csv(tmp_path / "csv" / "curves_steps.csv")
    assert steps["loss"].tolist() == pytest.approx(run.steps["loss"].tolist()[4::5])  # every=5
    ratio = pd.read_csv(tmp_path / "csv" / "update_ratio.csv")
    assert ratio["step"].tolist() == [5, 10, 15, 20]


def test_export_run_writes_csv_and_tensorboard_when_available(trained, tmp_path):
    session, run = trained
    out = export.export_run(run, tmp_path / "out", instruments=session)
    assert pd.read_csv(out["steps"])["loss"].tolist() == pytest.approx(run.steps["loss"].tolist())
    assert len(pd.read_csv(out["epochs"])) == 1
    assert ("tensorboard" in out) == export.tensorboard_available()


@pytest.mark.skipif(export.tensorboard_available(), reason="tensorboard is installed")
def test_tensorboard_missing_is_a_clear_error(trained, tmp_path):
    with pytest.raises(WorkbenchError, match="pip install tensorboard"):
        export.to_tensorboard(trained[1], tmp_path / "tb")


@pytest.mark.skipif(not export.tensorboard_available(), reason="tensorboard is not installed")
def test_tensorboard_event_files(trained, tmp_path):
    session, run = trained
    logdir = export.to_tensorboard(run, tmp_path / "tb", instruments=session)
    assert list(logdir.glob("events.out.tfevents.*"))


def test_html_plots(trained, tmp_path):
    path = export.to_html(trained[0], tmp_path / "plots.html")
    html = path.read_text()
    assert "<html" in html.lower() and "Bokeh" in html
    for title in ("Update / weight ratio (P.5)", "First-layer filters (P.4)", "Loss and metric curves (P.1)"):
        assert title in html


def test_png_needs_matplotlib(trained, tmp_path):
    inst = trained[0].instruments[0]
    if export.matplotlib_available():
        assert export.to_png(inst, tmp_path / "c.png").stat().st_size > 0
    else:
        with pytest.raises(WorkbenchError, match="matplotlib.*to_html"):
            export.to_png(inst, tmp_path / "c.png")


def test_not_an_instrument(tmp_path):
    with pytest.raises(WorkbenchError, match="not instruments"):
        export.to_csv([1], tmp_path)
