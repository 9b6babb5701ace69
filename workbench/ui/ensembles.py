"""EnsembleView: ensembles of seeds or of one run's checkpoints, and what each added member gains (IV.1-IV.3).

Building members trains models, so it runs in a background thread; the result lands in
``session.reports["ensemble"]`` and is drawn by the periodic flush on the page's thread.
"""

from __future__ import annotations

import panel as pn
import param
from bokeh.models import ColumnDataSource, SingleIntervalTicker
from bokeh.plotting import figure

from workbench.ui.common import Background, LiveView, button, describe_error, fmt, guarded, notify_error, notify_info
from workbench.ui.plots import PlotPane


class EnsembleView(LiveView):
    """Pick a kind and a size, build the ensemble off the page's thread, see members, ensemble and gains."""

    kind = param.Selector(default="checkpoints", objects=["checkpoints", "seeds"],
                          doc="checkpoints of the last run (IV.3, cheap) or fresh seeds (IV.1)")
    n = param.Integer(default=3, bounds=(2, 10))
    epochs = param.Integer(default=3, bounds=(1, 100), doc="epochs per member (seeds)")
    running = param.Boolean(default=False)

    def __init__(self, session, **params):
        super().__init__(**params)
        self.session = session
        self._work = Background("workbench-ensemble")
        self.result = session.reports.get("ensemble")
        self.source = ColumnDataSource({"k": [], "metric": []})
        self.fig = figure(width=420, height=260, title="ensemble vs members (III.R1: gains fade after ~5)",
                          x_axis_label="members", y_axis_label=session.task.metric, toolbar_location=None,
                          tools="")
        self.fig.xaxis.ticker = SingleIntervalTicker(interval=1)  # whole members, never 2.5 of them
        self.fig.line("k", "metric", source=self.source, line_width=2)
        self.fig.scatter("k", "metric", source=self.source, size=6)
        self.button = button("Build the ensemble", "success", width=180,
                                        css_classes=["wb-ensemble-run"])
        self.button.on_click(lambda e: self.start())
        self._summary = pn.pane.Markdown("", css_classes=["wb-ensemble-summary"])
        self._members = pn.widgets.Tabulator(disabled=True, show_index=False, height=200, width=480)
        self.plot = PlotPane(self.fig, self.source, hint="Build an ensemble: its gains per member show here.")
        self.show()

    @guarded
    def start(self):
        """Build the ensemble in a background thread."""
        if self.running:
            return
        if self.kind == "checkpoints" and self.session.last_run is None:
            raise ValueError("a checkpoint ensemble needs a run: train one first (Live curves)")
        opts = {"epochs": self.epochs} if self.kind == "seeds" else {}
        self.running, self.button.disabled = True, True
        kind, n = self.kind, self.n
        self._work.start(lambda: self.session.ensemble(kind, n=n, **opts))

    def wait(self, timeout=None):
        self._work.join(timeout)
        self.flush()

    def flush(self) -> None:
        outcome = self._work.take() if self.running else None
        if outcome is None:
            return
        kind, value = outcome
        self.running, self.button.disabled = False, False
        if kind == "error":
            notify_error(f"the ensemble failed: {describe_error(value)}")
            return
        self.result = value
        self.session.reports["ensemble"] = value
        notify_info(f"ensemble of {len(value.members)}: {value.metric_name} {fmt(value.metric)}")
        self.show()

    def show(self) -> None:
        r = self.result
        if r is None:
            self._summary.object = "No ensemble yet."
            return
        self.source.data = {"k": r.gains["k"].tolist(), "metric": r.gains["metric"].tolist()}
        self.plot.reveal()
        self._summary.object = (f"**{r.kind}** ensemble of {len(r.members)} (recipe {r.recipe}): {r.metric_name} "
                                f"**{fmt(r.metric)}** vs {fmt(r.mean_member_metric)} for the average member "
                                f"(improvement {fmt(r.improvement)}) on the whole {r.split} split "
                                f"({r.n_eval} examples)")
        self._members.value = r.members.round(4)

    def __panel__(self):
        self.start_updates()
        return pn.Column(pn.Row(pn.widgets.Select.from_param(self.param.kind, width=130),
                                pn.widgets.IntInput.from_param(self.param.n, width=80),
                                pn.widgets.IntInput.from_param(self.param.epochs, width=80), self.button),
                         self._summary, pn.Row(self.plot, self._members), name="Ensembles")
