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


def test_tensorboard_missing_is_a_clear_error(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "tensorboard_available", lambda: False)
    with pytest.raises(WorkbenchError, match="pip install tensorboard"):
        export.to_tensorboard(trained[1], tmp_path / "tb")
    assert "tensorboard" not in export.export_run(trained[1], tmp_path / "out")


@pytest.mark.skipif(not export.tensorboard_available(), reason="tensorboard is not installed")
def test_tensorboard_event_files_hold_the_run_and_the_instruments(trained, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    session, run = trained
    logdir = export.to_tensorboard(run, tmp_path / "tb", instruments=session)
    assert list(logdir.glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    losses = acc.Scalars("loss/step")
    assert [e.step for e in losses] == run.steps["step"].tolist()
    assert [e.value for e in losses] == pytest.approx(run.steps["loss"].tolist(), rel=1e-6)
    assert [e.value for e in acc.Scalars("epoch/val_metric")] == pytest.approx(run.metrics["val_metric"].tolist())
    grads = [i for i in session.instruments if i.name == "grad_norms"][0]
    totals = [r for r in grads.since(0) if "total" in r]
    assert [e.value for e in acc.Scalars("grad_norm/total")] == pytest.approx([r["total"] for r in totals], rel=1e-6)
    hists = [i for i in session.instruments if i.name == "histograms"][0]
    layer = next(iter(hists.since(0)[0]["layers"]))
    h = acc.Histograms(f"act/{layer}")[0]
    assert h.histogram_value.num == hists.since(0)[0]["layers"][layer]["act"]["n"]
    assert sum(h.histogram_value.bucket) == pytest.approx(hists.since(0)[0]["layers"][layer]["act"]["counts"].sum())
    grids = [i for i in session.instruments if i.name == "first_layer"][0].since(0)
    assert len(acc.Images("first_layer")) == len(grids)
    assert "first_layer" in tags["images"]


def test_html_plots(trained, tmp_path):
    path = export.to_html(trained[0], tmp_path / "plots.html")
    html = path.read_text()
    assert "<html" in html.lower() and "Bokeh" in html
    for title in ("Update / weight ratio (P.5)", "First-layer filters (P.4)", "Loss and metric curves (P.1)"):
        assert title in html


def test_png_needs_matplotlib(trained, tmp_path, monkeypatch):
    from PIL import Image

    inst = trained[0].instruments[0]
    if export.matplotlib_available():
        path = export.to_png(inst, tmp_path / "c.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as im:
            assert im.width >= 300 and im.height >= 150
    monkeypatch.setattr(export, "matplotlib_available", lambda: False)
    with pytest.raises(WorkbenchError, match="matplotlib.*to_html"):
        export.to_png(inst, tmp_path / "d.png")


def test_not_an_instrument(tmp_path):
    with pytest.raises(WorkbenchError, match="not instruments"):
        export.to_csv([1], tmp_path)


def test_an_instrument_with_nothing_measured_says_so_in_its_plot():
    from workbench.instruments import GradNorms

    p = export.figure(GradNorms(every=25))
    assert len(p.renderers) == 1 and "every 25 steps" in p.renderers[0].data_source.data["text"][0]
