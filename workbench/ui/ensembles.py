"""EnsembleView: ensembles of seeds or of one run's checkpoints, and what each added member gains (IV.1-IV.3).

Seed members train with the session's chosen configuration (the LR finder's pick, the best search
trial or your last completed run, ``session.chosen_config()``); the view shows it, says where it came
from, and lets one change it. Building members trains models, so it runs in a background thread; the
session records the result in its book and the periodic flush draws it on the page's thread.
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
    lr = param.Number(default=1e-3, bounds=(0, None), inclusive_bounds=(False, True),
                      doc="learning rate of each seed member (the chosen configuration's)")
    epochs = param.Integer(default=5, bounds=(1, 1000), doc="epochs per seed member (the chosen configuration's)")
    running = param.Boolean(default=False)

    def __init__(self, session, **params):
        super().__init__(**params)
        self.session = session
        self._work = Background("workbench-ensemble")
        self.result = session.book.get("ensemble")
        self._config = pn.pane.Markdown("", css_classes=["wb-ensemble-config"])
        self.use_button = button("Use this configuration", "primary", width=180, css_classes=["wb-ensemble-use"])
        self.use_button.on_click(lambda e: self.use_config())
        self.show_config()
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
        if self.kind == "seeds":
            self._adopt_fields()
        opts = {}  # seeds train with session.chosen_config(), which now holds what the fields show
        self.running, self.button.disabled = True, True
        kind, n = self.kind, self.n
        self._work.start(lambda: self.session.ensemble(kind, n=n, **opts))

    def show_config(self) -> None:
        """Fill the fields with the chosen configuration and say where it came from."""
        c = self.session.chosen_config()
        self.lr, self.epochs = float(c["lr"]), int(c["epochs"])
        self._config.object = (f"**Chosen configuration** (seed members train with it): lr **{c['lr']:.3g}**, "
                               f"**{c['epochs']}** epochs, {c.get('optimizer')}, weight decay "
                               f"{fmt(c.get('weight_decay'))} · from: {c['source']}")

    @guarded
    def use_config(self):
        """Make the lr and epochs in the fields the session's chosen configuration."""
        self.session.choose_config(lr=float(self.lr), epochs=int(self.epochs))
        self.show_config()
        notify_info(f"chosen configuration: lr {self.lr:.3g}, {self.epochs} epochs")

    def _adopt_fields(self) -> None:
        c = self.session.chosen_config()
        if (float(self.lr), int(self.epochs)) != (float(c["lr"]), int(c["epochs"])):  # edited, not yet used
            self.session.choose_config(lr=float(self.lr), epochs=int(self.epochs))
        self.show_config()

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
        self.result = value  # the session recorded it in its book (session.ensemble)
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
        return pn.Column(self._config,
                         pn.Row(pn.widgets.FloatInput.from_param(self.param.lr, width=110, format="0.[0000]"),
                                pn.widgets.IntInput.from_param(self.param.epochs, width=80), self.use_button),
                         pn.Row(pn.widgets.Select.from_param(self.param.kind, width=130),
                                pn.widgets.IntInput.from_param(self.param.n, width=80), self.button),
                         self._summary, pn.Row(self.plot, self._members), name="Ensembles")
