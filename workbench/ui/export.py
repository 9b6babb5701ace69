"""Export: the session's state (audit summary, checks, curves, diagnosis) as one self-contained HTML report.

The curves are Bokeh figures embedded with Bokeh's inline resources, so the file opens offline and
needs nothing next to it.
"""

from __future__ import annotations

import html
import io
from datetime import datetime
from pathlib import Path

import pandas as pd
import panel as pn
import param

from workbench.ui.common import COLOR, View, badge, fmt, guarded, notify_info


def _checks_table(session) -> str:
    results = list((getattr(session, "results", {}) or {}).values())
    if not results:
        return "<p>No checks run yet (recipe part II).</p>"
    rows = "".join(
        f"<tr><td>{badge(r.status)}</td><td>{html.escape(r.name)}</td><td>{html.escape(str(r.recipe))}</td>"
        f"<td>{html.escape(fmt(r.measured))}</td><td>{html.escape(fmt(r.expected))}</td>"
        f"<td>{html.escape(str(r.message))}</td></tr>" for r in results)
    return ("<table><tr><th>verdict</th><th>check</th><th>recipe</th><th>measured</th><th>expected</th>"
            f"<th>message</th></tr>{rows}</table>")


def _audit_section(session) -> str:
    rep = (getattr(session, "reports", {}) or {}).get("audit")
    if rep is None:
        return "<p>The data has not been audited yet (recipe I.2).</p>"
    summary = getattr(rep, "summary", None)
    if isinstance(summary, pd.DataFrame):
        return summary.to_html(index=False)
    if isinstance(summary, dict):
        return pd.DataFrame([summary]).T.rename(columns={0: "value"}).to_html()
    return f"<pre>{html.escape(str(summary if summary is not None else rep))}</pre>"


def _diagnosis_section(session) -> str:
    diag = (getattr(session, "reports", {}) or {}).get("diagnosis")
    if diag is None:
        return "<p>No diagnosis yet (recipe B.4).</p>"
    if hasattr(diag, "to_frame"):
        return diag.to_frame().to_html(index=False)
    return f"<pre>{html.escape(str(diag))}</pre>"


def _curves(session):
    """A Bokeh figure of the last run's loss and accuracy per epoch, or None when no run has epochs."""
    from bokeh.layouts import row
    from bokeh.plotting import figure

    run = session.last_run
    if run is None or not run.epoch_records:
        return None
    m = run.metrics
    loss = figure(height=260, width=420, title=f"loss per epoch · {run.id} (P.1)", y_axis_type="log",
                  x_axis_label="epoch")
    loss.line(m["epoch"], m["train_loss"], color="#1565c0", legend_label="train", line_width=2)
    loss.line(m["epoch"], m["val_loss"], color="#ef6c00", legend_label="val", line_width=2)
    acc = figure(height=260, width=420, title=f"{session.task.metric} per epoch (P.2)", x_axis_label="epoch")
    acc.line(m["epoch"], m["train_metric"], color="#1565c0", legend_label="train", line_width=2)
    acc.line(m["epoch"], m["val_metric"], color="#ef6c00", legend_label="val", line_width=2)
    if getattr(session, "human_baseline", None) is not None:
        from bokeh.models import Span

        acc.add_layout(Span(location=session.human_baseline, dimension="width", line_dash="dashed",
                            line_color="#2e7d32"))
    return row(loss, acc)


def _lr_find_section(session):
    """(html, Bokeh figure or None) for the LR range test (B.1) and the LR chosen from it."""
    reports = getattr(session, "reports", {}) or {}
    result = reports.get("lr_find")
    if result is None:
        return "<p>No LR range test yet (recipe B.1).</p>", None
    from workbench.ui.tune import lr_find_figure

    chosen = reports.get("chosen_lr")
    text = f"<p>{html.escape(result.message)}" + (f" · LR used: {fmt(chosen, 3)}" if chosen else "") + "</p>"
    return text + result.to_frame().to_html(index=False), lr_find_figure(result)


def report_html(session) -> str:
    """The whole report as one HTML string (scripts inline, no network needed to open it)."""
    from bokeh.embed import components
    from bokeh.resources import INLINE

    lr_text, lr_fig = _lr_find_section(session)
    figures = {k: v for k, v in (("curves", _curves(session)), ("lr", lr_fig)) if v is not None}
    script, divs = components(figures) if figures else ("", {})
    div = divs.get("curves", "")
    runs = session.runs()
    runs_html = runs.to_html(index=False) if len(runs) else "<p>No runs yet.</p>"
    hb = getattr(session, "human_baseline", None)
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>Recipe Workbench report · {html.escape(session.describe())}</title>
{INLINE.render()}
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse;font-size:0.9em}}
td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left}} h2{{border-bottom:2px solid #2f4f4f}}</style>
</head><body>
<h1>Recipe Workbench report</h1>
<p>{html.escape(session.describe())} · {datetime.now():%Y-%m-%d %H:%M}</p>
<h2>I · The data (I.1-I.3)</h2>{_audit_section(session)}
<p>Human baseline (II.6): {html.escape(fmt(hb)) if hb is not None else "not measured"}</p>
<h2>II · Sanity checks</h2>{_checks_table(session)}
<h2>III · Curves (P.1, P.2)</h2>{div or "<p>No training run yet.</p>"}
<h3>LR range test (B.1)</h3>{divs.get("lr", "")}{lr_text}
<h3>Diagnosis (B.4)</h3>{_diagnosis_section(session)}
<h3>Runs</h3>{runs_html}
{script}
</body></html>"""


def export_report(session, path) -> Path:
    """Write the report to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_html(session), encoding="utf-8")
    return path


class ExportView(View):
    """A download button for the self-contained HTML report, and a preview of its sections."""

    filename = param.String(default="workbench-report.html")

    def __init__(self, session, **params):
        super().__init__(**params)
        self.session = session
        self.download = pn.widgets.FileDownload(callback=self._bytes, filename=self.filename, label="Export report",
                                                **{COLOR: "primary"}, width=180, css_classes=["wb-export"])

    @guarded
    def _bytes(self):
        data = report_html(self.session).encode("utf-8")
        notify_info("report exported")
        return io.BytesIO(data)

    def __panel__(self):
        intro = pn.pane.Markdown("Everything the session holds — audit summary, check verdicts, curves, diagnosis — "
                                 "as one HTML file that opens offline.", css_classes=["wb-export-intro"])
        return pn.Column(intro, self.download, name="Export")
