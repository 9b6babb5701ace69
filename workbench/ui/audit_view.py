"""AuditView: run the data audit (I.2) off the page's thread, with progress, and show its summary.

The audit's issues then appear as filters in the DataBrowser (duplicate sets side by side).
"""

from __future__ import annotations

import html

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from workbench.ui.common import Background, LiveView, button, describe_error, guarded, notify_error, notify_info


def run_audit(session, **options):
    """``session.audit()`` with the task named; the session records it in its book for every view."""
    options.setdefault("task", session.task.name)
    return session.audit(**options)


class AuditView(LiveView):
    """A button that audits the session's splits in a thread, a progress bar, the summary table."""

    stage = param.String(default="")
    running = param.Boolean(default=False)

    def __init__(self, session, **params):
        super().__init__(**params)
        self.session = session
        self._progress = {"done": 0, "total": 1, "stage": ""}  # written by the audit thread, read by flush
        self._work = Background("workbench-audit")
        self.progress = pn.indicators.Progress(value=0, max=100, width=300, visible=False)
        self.button = button("Run the audit (I.2)", "primary", width=190,
                                        css_classes=["wb-audit-run"])
        self.button.on_click(lambda e: self.start())
        self._summary = pn.Column()
        self._handle = session.on("audit_progress", self._on_progress)
        self.show()

    def _on_progress(self, event) -> None:
        self._progress = {"done": event.done, "total": max(1, event.total), "stage": event.stage}

    @guarded
    def start(self):
        """Audit in a background thread; the page stays responsive and shows the progress."""
        if self.running:
            return
        self.running = True
        self.button.disabled = True
        self.progress.visible = True
        self._work.start(lambda: run_audit(self.session))

    def wait(self, timeout=None):
        self._work.join(timeout)
        self.flush()

    def flush(self) -> None:
        if not self.running:
            return
        p = self._progress
        self.progress.value = int(100 * min(1.0, p["done"] / p["total"]))
        self.stage = str(p["stage"])
        outcome = self._work.take()
        if outcome is not None:
            kind, value = outcome
            self.running = False
            self.button.disabled = False
            self.progress.visible = False
            self.stage = ""  # the last stage's name must not linger beside the button as if it were a link
            if kind == "error":
                notify_error(f"the audit failed: {describe_error(value)}")
            else:
                notify_info(f"audit done: {int((value.issues['index'] >= 0).sum())} flagged examples")
            self.show()

    def show(self) -> None:
        rep = self.session.book.get("audit")
        if rep is None:
            self._summary[:] = [pn.pane.Markdown("Not audited yet. The audit looks for exact and near duplicates, "
                                                 "train/test leaks, corrupt inputs, likely wrong labels, outliers "
                                                 "and class imbalance (I.2).")]
            return
        summary = rep.summary.reset_index() if isinstance(rep.summary, pd.DataFrame) else pd.DataFrame()
        judge = rep.label_model.words() if getattr(rep, "label_model", None) is not None else rep.source
        self._summary[:] = [pn.pane.Markdown(f"**{int((rep.issues['index'] >= 0).sum())}** flagged examples. "
                                             "Open *Browse the data* and filter by audit issue to see them; "
                                             "duplicate sets are shown side by side."),
                            # which model judged the labels, and how well it does on labels it did not see
                            pn.pane.HTML(f"<b>Labels judged by:</b> {html.escape(str(judge))}",
                                         css_classes=["wb-audit-label-model"], sizing_mode="stretch_width",
                                         styles={"overflow-wrap": "anywhere"}),
                            # every row shown (no inner scroll hiding the last issues) and the rules wrapped
                            pn.widgets.Tabulator(summary, disabled=True, show_index=False, layout="fit_columns",
                                                 sizing_mode="stretch_width", css_classes=["wb-audit-summary"],
                                                 widths={"issue": 140, "count": 70, "share": 80, "threshold": 90},
                                                 formatters={"rule": {"type": "textarea"},
                                                             "share": NumberFormatter(format="0.00%")})]

    def __panel__(self):
        self.start_updates()
        return pn.Column(pn.Row(self.button, self.progress, pn.pane.Markdown(self.param.stage)), self._summary,
                         name="Audit")
