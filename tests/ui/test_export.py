"""Export: one self-contained HTML report of the session's state."""

import re
from datetime import datetime
from html.parser import HTMLParser

from workbench.ui.export import ExportView, export_report, report_html
from workbench.ui.wizard import step_status


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


class Fetches(HTMLParser):
    """What would make a browser fetch from another host: a tag's src/href, a CSS url() or @import in a style."""

    def __init__(self):
        super().__init__()
        self.found, self._in_style = [], False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for k, v in attrs:
            if k in ("src", "href") and v and re.match(r"\s*(https?:)?//", v) and not (tag == "a" and k == "href"):
                self.found.append(f"<{tag} {k}={v}>")

    def handle_data(self, data):
        if self._in_style:
            self.found += re.findall(r"(?:url\(|@import)\s*['\"]?\s*(?:https?:)?//[^)'\"]*", data)


def outside_fetches(text: str) -> list[str]:
    parser = Fetches()
    parser.feed(text)
    return parser.found


def test_a_notebook_audit_is_done_in_the_wizard_and_in_the_report(small_session):
    s = small_session
    assert step_status(s, "audit") == "not run"
    report = s.audit(label_model="embedding")  # from Python, not from the app
    assert step_status(s, "audit") in ("pass", "warn")
    text = report_html(s)
    assert "not been audited" not in text
    flagged = report.summary[report.summary["count"] > 0]
    for issue in report.summary.index:  # every audit row names its issue
        assert f"<td>{issue}</td>" in text
    assert len(flagged) == 0 or f"<td>{int(flagged['count'].iloc[0])}</td>" in text


def test_the_report_is_readable_and_renders_offline(small_session, tmp_path):
    s = small_session
    user = s.fit(epochs=2, lr=1e-2)
    s.fit(epochs=1, lr=1e-3, tags={"study": "coarse", "trial": 0})  # an internal run after the user's
    s.diagnose(user)
    text = export_report(s, tmp_path / "report.html").read_text()
    assert f"{user.id} (P.1)" in text  # the curves' title names the person's run, not the trial after it
    assert "no findings" in text or "wb-fail" in text or "wb-warn" in text
    assert outside_fetches(text) == []  # no script, stylesheet, font or image from another host
    assert "<script" in text and 'rel="stylesheet"' not in text
    cells = re.findall(r"<td>([^<]*)</td>", text)
    assert len(cells) > 20 and not [c for c in cells if c.strip().lower() in ("nan", "none", "nat", "<na>")]
    started = datetime.fromtimestamp(user.info["started"]).isoformat(sep=" ", timespec="seconds")
    assert started in text and "e+09" not in text


def test_a_healthy_diagnosis_says_so_instead_of_an_empty_table(small_session):
    s = small_session
    run = s.fit(epochs=3, lr=1e-2)
    d = s.diagnose(run)
    text = report_html(s)
    if d.findings:  # the digits MLP at 1e-2 is healthy; should that change, the table must show the findings
        assert all(f.name in text for f in d.findings)
    else:
        assert "no findings" in text and "<th>finding</th>" not in text


def test_the_offline_detector_catches_outside_hosts():
    page = ('<html><head><script src="https://cdn.bokeh.org/bokeh.js"></script><link rel="stylesheet" '
            'href="//fonts.googleapis.com/css?family=Roboto"><style>@import url(https://x.org/a.css);'
            'body{background:url("http://x.org/b.png")}</style></head><body><a href="https://bokeh.org">ok</a>'
            '<img src="data:image/png;base64,AAAA"><script>var u="https://only.a.string";</script></body></html>')
    assert len(outside_fetches(page)) == 4  # script, font stylesheet, @import, url(); not a link, a data URI


def test_the_human_baseline_line_is_labelled_with_its_accuracy_and_count(small_session):
    s = small_session
    s.fit(epochs=1)
    s.book.record("human_baseline", {"accuracy": 0.9, "n": 20, "total": 20, "complete": True})
    text = report_html(s)
    assert "human 90% (n=20)" in text
    s.book.record("human_baseline", {"accuracy": 0.4, "n": 5, "total": 20, "complete": False})
    assert "human 40%" not in report_html(s)  # five clicks are no baseline
