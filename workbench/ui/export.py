"""Export: the session's result book (audit, checks, curves, LR finder, search, diagnosis, ensembles) as one
self-contained HTML report.

Everything comes from the session's book (workbench/book.py), so a result obtained in a notebook is
in the report as well as one obtained in the app. The curves are Bokeh figures embedded with Bokeh's
inline resources and the page names no web font, so the file renders complete offline.
"""

from __future__ import annotations

import html
import io
from datetime import datetime
from pathlib import Path

import pandas as pd
import panel as pn
import param

from workbench.chosen import last_user_run
from workbench.readable import runs_table
from workbench.ui.common import (
    COLOR,
    STATUS_COLORS,
    View,
    badge,
    fmt,
    guarded,
    human_baseline_label,
    human_baseline_of,
    notify_info,
)


def _table(df: pd.DataFrame) -> str:
    """A DataFrame as an HTML table of readable cells: no NaN, times as ISO local time, text escaped."""
    return runs_table(df).to_html(index=False, escape=True, border=0)


def _checks_table(session) -> str:
    results = list(session.book.checks().values())
    if not results:
        return "<p>No checks run yet (recipe part II).</p>"
    rows = "".join(
        f"<tr><td>{badge(r.status)}</td><td>{html.escape(r.name)}</td><td>{html.escape(str(r.recipe))}</td>"
        f"<td>{html.escape(fmt(r.measured))}</td><td>{html.escape(fmt(r.expected))}</td>"
        f"<td>{html.escape(str(r.message))}</td></tr>" for r in results)
    return ("<table><tr><th>verdict</th><th>check</th><th>recipe</th><th>measured</th><th>expected</th>"
            f"<th>message</th></tr>{rows}</table>")


def _audit_section(session) -> str:
    rep = session.book.get("audit")
    if rep is None:
        return "<p>The data has not been audited yet (recipe I.2).</p>"
    summary = getattr(rep, "summary", None)
    if isinstance(summary, pd.DataFrame):  # the issue names are the summary's index: keep them as a column
        flagged = int((rep.issues["index"] >= 0).sum()) if "index" in getattr(rep, "issues", {}) else None
        head = f"<p>{flagged} flagged rows (recipe I.2).</p>" if flagged is not None else ""
        return head + _table(summary.reset_index())
    return f"<pre>{html.escape(str(summary if summary is not None else rep))}</pre>"


def _diagnosis_section(session) -> str:
    diag = session.book.get("diagnosis")
    if diag is None:
        return "<p>No diagnosis yet (recipe B.4).</p>"
    if not diag.findings:
        return f"<p>{badge('pass', 'no findings')} {html.escape(diag.message)}</p>"
    rows = "".join(
        f"<tr><td>{badge(f.status)}</td><td>{html.escape(f.name)}</td><td>{html.escape(str(f.recipe))}</td>"
        f"<td>{html.escape(f.message)}</td><td>{html.escape(f.advice)}</td>"
        f"<td>{html.escape(fmt(f.measured))}</td></tr>" for f in diag.findings)
    return (f"<p>{html.escape(diag.message)}</p><table><tr><th>verdict</th><th>finding</th><th>recipe</th>"
            f"<th>what the curves show</th><th>advice</th><th>evidence</th></tr>{rows}</table>")


def _interpretation_section(session) -> str:
    it = session.book.get("interpretation")
    if it is None:
        return "<p>No run interpreted yet (recipe B.4).</p>"
    names = it.classes
    top = it.top_losses(10)
    top = pd.DataFrame({"example": [f"{s} #{int(i)}" for s, i in zip(top["split"], top["index"], strict=True)],
                        "label": [names[int(v)] for v in top["label"]],
                        "prediction": [names[int(v)] for v in top["pred"]],
                        "p(prediction)": top["p_pred"].round(3), "loss": top["loss"].round(3)})
    return f"<p>{html.escape(it.summary())}. The top losses:</p>" + _table(top)


def _chosen_section(session) -> str:
    c = session.chosen_config()
    keys = ("lr", "epochs", "optimizer", "weight_decay", "batch_size")
    parts = " · ".join(f"{k} {html.escape(fmt(c[k]))}" for k in keys if c.get(k) is not None)
    return f"<p>{parts}<br><small>from: {html.escape(c['source'])}</small></p>"


def _part_iv_section(session) -> str:
    out = []
    ens = session.book.get("ensemble")
    if ens is not None:
        out.append(f"<p>{html.escape(ens.summary())}</p>" + _table(ens.members[["member", "source", "loss",
                                                                               "metric"]]))
    dist = session.book.get("distill")
    if dist is not None:
        out.append(f"<p>{html.escape(dist.summary())}</p>" + _table(dist.table.drop(columns=["run_id"],
                                                                                      errors="ignore")))
    return "".join(out) or "<p>No ensemble or distillation yet (recipe IV).</p>"


def _curves(session):
    """A Bokeh figure of the loss and accuracy per epoch of the last run you trained (not a search trial,
    ensemble member or baseline), or None when there is none with epochs."""
    from bokeh.layouts import row
    from bokeh.plotting import figure

    run = last_user_run(session, completed=False)
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
    hb = human_baseline_of(session)
    if hb is not None:  # a labelled line, so nobody reads it as a target of unknown origin
        x = [float(m["epoch"].min()), float(m["epoch"].max())]
        acc.line(x, [hb["accuracy"]] * 2, line_dash="dashed", color=STATUS_COLORS["pass"], line_width=2,
                 legend_label=human_baseline_label(hb))
    acc.legend.location = "bottom_right"
    return row(loss, acc)


def _lr_find_section(session):
    """(html, Bokeh figure or None) for the LR range test (B.1)."""
    result = session.book.get("lr_find")
    if result is None:
        return "<p>No LR range test yet (recipe B.1).</p>", None
    from workbench.ui.tune import lr_find_figure

    used = session.chosen_config()["lr"]  # the LR the next ensemble or distillation trains with
    text = f"<p>{html.escape(result.message)} · LR used: {fmt(used, 3)}</p>"
    return text + _table(result.to_frame()), lr_find_figure(result)


def _search_section(session) -> str:
    table = session.book.get("search")
    if table is None:
        return "<p>No search yet (recipe B.2, B.3).</p>"
    cols = [c for c in ("trial", "run_id", "lr", "weight_decay", "epochs", "value", "state") if c in table.columns]
    return f"<p>{len(table)} trials, best first (the best 10 shown).</p>" + _table(table[cols].head(10))


def report_html(session) -> str:
    """The whole report as one HTML string: Bokeh's JavaScript inline, no font, script or stylesheet from
    another host, so it renders complete offline."""
    from bokeh.embed import components
    from bokeh.resources import INLINE

    lr_text, lr_fig = _lr_find_section(session)
    figures = {k: v for k, v in (("curves", _curves(session)), ("lr", lr_fig)) if v is not None}
    script, divs = components(figures) if figures else ("", {})
    runs = session.runs()
    runs_html = _table(runs) if len(runs) else "<p>No runs yet.</p>"
    hb = human_baseline_of(session)
    hb_text = html.escape(human_baseline_label(hb)) if hb is not None else "not measured"
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>Recipe Workbench report · {html.escape(session.describe())}</title>
{INLINE.render()}
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;font-size:0.9em}} td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left}}
h2{{border-bottom:2px solid #2f4f4f}}</style>
</head><body>
<h1>Recipe Workbench report</h1>
<p>{html.escape(session.describe())} · {datetime.now().isoformat(sep=" ", timespec="minutes")}</p>
<h2>I · The data (I.1-I.3)</h2>{_audit_section(session)}
<p>Human baseline (II.6): {hb_text}</p>
<h2>II · Sanity checks</h2>{_checks_table(session)}
<h2>III · Iterate</h2>
<h3>Curves of the last run you trained (P.1, P.2)</h3>{divs.get("curves") or "<p>No training run yet.</p>"}
<h3>LR range test (B.1)</h3>{divs.get("lr", "")}{lr_text}
<h3>Search (B.2, B.3)</h3>{_search_section(session)}
<h3>Chosen configuration</h3>{_chosen_section(session)}
<h3>Diagnosis (B.4)</h3>{_diagnosis_section(session)}
<h3>Confusion matrix and top losses (B.4, I.2)</h3>{_interpretation_section(session)}
<h3>Runs</h3>{runs_html}
<h2>IV · Squeeze out the juice</h2>{_part_iv_section(session)}
{script}
</body></html>"""


def export_report(session, path) -> Path:
    """Write the report to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_html(session), encoding="utf-8")
    return path


# the Fast theme draws this button as bare text in the header (and dark on dark once clicked), and its
# stylesheet comes after a widget's own: hence !important, so it reads as a button in every state and place
BUTTON_CSS = """
.bk-btn, .bk-btn:focus, .bk-btn:active, .bk-btn.bk-active { background-color: #1565c0 !important;
  color: #ffffff !important; border: 1px solid #ffffff !important; border-radius: 4px; font-weight: 600; }
.bk-btn:hover { background-color: #0d47a1 !important; }
.bk-btn a { color: #ffffff !important; }
"""


class ExportView(View):
    """A download button for the self-contained HTML report, and a preview of its sections."""

    filename = param.String(default="workbench-report.html")

    def __init__(self, session, **params):
        super().__init__(**params)
        self.session = session
        self.download = pn.widgets.FileDownload(callback=self._bytes, filename=self.filename, label="Export report",
                                                **{COLOR: "primary"}, width=180, css_classes=["wb-export"],
                                                stylesheets=[BUTTON_CSS])

    @guarded
    def _bytes(self):
        data = report_html(self.session).encode("utf-8")
        notify_info("report exported")
        return io.BytesIO(data)

    def __panel__(self):
        intro = pn.pane.Markdown("Everything the session holds — audit summary, check verdicts, curves, diagnosis — "
                                 "as one HTML file that opens offline.", css_classes=["wb-export-intro"])
        return pn.Column(intro, self.download, name="Export")
