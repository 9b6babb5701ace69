"""Export: one self-contained HTML report of the session's state."""

from workbench.ui.export import ExportView, export_report, report_html


class CheckResult:
    """A CheckResult-shaped record (the views read only these attributes); the checks backend has its own."""

    def __init__(self, name, status, measured, expected, message, recipe):
        self.name, self.status, self.measured, self.expected = name, status, measured, expected
        self.message, self.recipe = message, recipe


def test_report_holds_checks_curves_and_runs_and_needs_no_network(small_session, tmp_path):
    s = small_session
    run = s.fit(epochs=2)
    s.results["init_loss"] = CheckResult("init_loss", "pass", {"loss": 2.31}, 2.3026, "loss at init is log C", "II.4")
    s.human_baseline = 0.95
    text = report_html(s)
    assert "init_loss" in text and "II.4" in text and "loss=2.31" in text
    assert run.id in text
    assert "Bokeh" in text and "<script" in text
    assert "<script type=\"text/javascript\" src=" not in text  # resources inline: opens offline
    assert "0.95" in text
    path = export_report(s, tmp_path / "r" / "report.html")
    assert path.read_text().startswith("<!DOCTYPE html>")


def test_export_view_download_gives_the_report(small_session):
    view = ExportView(small_session)
    data = view._bytes().getvalue().decode()
    assert "No checks run yet" in data and "No training run yet" in data
