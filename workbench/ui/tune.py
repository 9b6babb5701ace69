"""TuneView and DiagnosisView: the LR range test, random search, and what a run's curves say is wrong (part III).

``TuneView`` runs the LR range test (B.1) and the coarse/refine random search (B.2, B.3) in background
threads; the threads only leave their result in a slot, and ``flush()`` (the document's thread)
draws it. ``DiagnosisView`` reads one run's curves (B.4) and compares two runs (III.M3); both are
fast, so they run in the click handler, and raw Bokeh sources change through ``on_document``.
"""

from __future__ import annotations

import html
import math
import threading
import uuid

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, LabelSet, Range1d
from bokeh.plotting import figure

from workbench.ui.common import (
    Background,
    LiveView,
    badge,
    button,
    describe_error,
    fmt,
    guarded,
    notify_error,
    notify_info,
    on_document,
)
from workbench.ui.plots import PlotPane

# one colour per suggestion method; the result's own pick is drawn thicker
METHOD_COLORS = {"middle": "#2e7d32", "valley": "#6a1b9a", "min_div_10": "#ef6c00", "steepest": "#c62828",
                 "coarse": "#1565c0"}
PALETTE = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#5d4037", "#9e9d24")
SEARCH_COLUMNS = ("trial", "run_id", "lr", "weight_decay", "epochs", "value", "state", "status", "train_metric",
                  "val_loss", "duration_s")


def _busy_run(session):
    run = session.last_run
    return run if run is not None and getattr(run, "running", False) else None


def lr_find_figure(result):
    """A static Bokeh figure of an LRFindResult (the HTML report): loss and smoothed loss vs LR, suggestions."""
    from bokeh.models import Span

    c = result.curve
    fig = figure(width=520, height=280, x_axis_type="log", x_axis_label="learning rate (log)",
                 y_axis_label="training loss", title=f"LR range test (B.1): {result.message.split(';')[0]}")
    fig.line(c["lr"], c["loss"], color="#90caf9", legend_label="loss")
    fig.line(c["lr"], c["smoothed"], color="#1565c0", line_width=2, legend_label="smoothed")
    for k, v in result.suggestions.items():
        if v is not None and math.isfinite(v):
            fig.add_layout(Span(location=float(v), dimension="height", line_color=METHOD_COLORS.get(k, "#555555"),
                                line_dash="dashed", line_width=3 if k == result.method else 1.5))
    fig.legend.location = "bottom_left"
    return fig


def _legend_below(fig) -> None:
    """The legend under the plot, in one row: inside it covered the curves."""
    legend = fig.legend[0]
    legend.orientation, legend.label_text_font_size = "horizontal", "8pt"
    legend.padding, legend.spacing = 2, 6
    fig.add_layout(legend, "below")


class TuneView(LiveView):
    """The LR range test with its suggestions marked (B.1), then a coarse or refine random search (B.2, B.3)."""

    lr_start = param.Number(default=1e-7, bounds=(1e-12, 1.0), doc="first LR of the sweep")
    lr_end = param.Number(default=10.0, bounds=(1e-6, 1e3), doc="last LR of the sweep")
    steps = param.Integer(default=100, bounds=(10, 5000), doc="iterations of the sweep")
    method = param.Selector(default="middle", objects=["middle", "valley", "min_div_10", "steepest", "coarse"],
                            doc="which suggestion 'Use this LR' takes")
    trials = param.Integer(default=4, bounds=(1, 200), doc="trials this search runs")
    epochs = param.Integer(default=2, bounds=(1, 200), doc="epochs per trial (coarse 1-5, refine 10-20)")
    stage = param.Selector(default="coarse", objects=["coarse", "refine"])
    finding = param.Boolean(default=False)
    searching = param.Boolean(default=False)

    wizard = None  # set by RecipeWizard.view: "Use this LR" then sets the LR of its Live curves

    def __init__(self, session, **params):
        super().__init__(**params)
        self.session = session
        self.result = None
        self.table = None
        self._lr_work = Background("workbench-lr-find")
        self._search_work = Background("workbench-search")
        self._lock = threading.Lock()
        self._trials_done: list[str] = []  # run ids of finished trials of the search in flight
        self._trial_live = None  # the trial run training now
        self._search_stage, self._search_total = "coarse", 1
        # each view (one per browser session) names its own studies: two tabs on one runs folder
        # would otherwise add their trials to one study and show each other's best trial
        self.study_prefix = f"{session.name}-{session.model_name}-{uuid.uuid4().hex[:8]}".replace(" ", "")
        self._layout = None

        # -- B.1: the sweep, its suggestions and the coarse test
        self.curve_source = ColumnDataSource({"lr": [], "loss": [], "smoothed": []})
        self.sugg_source = ColumnDataSource({"lr": [], "method": [], "label": [], "color": [], "width": [],
                                             "y": []})
        # a fixed y range set from the curve: auto-ranging would follow the exploding tail of the sweep
        self.lr_fig = figure(width=540, height=330, x_axis_type="log", x_axis_label="learning rate (log)",
                             y_range=Range1d(0, 1),
                             y_axis_label="training loss", title="LR range test: loss vs LR (B.1)",
                             tools="pan,wheel_zoom,reset,hover", toolbar_location="right",
                             tooltips=[("lr", "@lr{0.000e}"), ("loss", "@loss"), ("smoothed", "@smoothed")])
        self.lr_fig.line("lr", "loss", source=self.curve_source, color="#90caf9", alpha=0.8, legend_label="loss")
        self.lr_fig.line("lr", "smoothed", source=self.curve_source, color="#1565c0", line_width=2,
                         legend_label="smoothed")
        self.lr_fig.vspan(x="lr", source=self.sugg_source, line_color="color", line_width="width",
                          line_dash="dashed")
        self.lr_fig.add_layout(LabelSet(x="lr", y="y", y_units="screen", text="label", source=self.sugg_source,
                                        text_color="color", text_font_size="8pt", x_offset=3,
                                        background_fill_color="white", background_fill_alpha=0.8))
        _legend_below(self.lr_fig)
        self.coarse_source = ColumnDataSource({"xs": [], "ys": [], "color": [], "label": []})
        self.coarse_fig = figure(width=380, height=330, y_range=Range1d(0, 1), x_axis_label="iteration",
                                 y_axis_label="loss",
                                 title="coarse test: 100 iterations per LR (B.1)", tools="pan,wheel_zoom,reset",
                                 toolbar_location="right")
        self.coarse_fig.multi_line("xs", "ys", source=self.coarse_source, line_color="color", line_width=2,
                                   legend_field="label")
        _legend_below(self.coarse_fig)
        self.lr_button = button("Run LR finder", "success", width=150,
                                           css_classes=["wb-lr-run"])
        self.lr_button.on_click(lambda e: self.run_lr_find())
        self.use_button = button("Use this LR", "primary", width=220, disabled=True,
                                            css_classes=["wb-lr-use"])
        self.use_button.on_click(lambda e: self.use_lr())
        self._lr_message = pn.pane.Markdown("Run the LR finder: one short training with the LR growing "
                                            "exponentially, then ~100 iterations at each of 1e-1 … 1e-4.",
                                            css_classes=["wb-lr-message"], sizing_mode="stretch_width")
        self._lr_table = pn.pane.Markdown("", css_classes=["wb-lr-suggestions"], width=330)
        self._coarse_table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=170,
                                                  width=560, css_classes=["wb-lr-coarse"], visible=False)

        # -- B.2, B.3: random search
        self.search_source = ColumnDataSource({"lr": [], "value": [], "wd": [], "color": [], "trial": []})
        self.search_fig = figure(width=440, height=300, x_axis_type="log", x_axis_label="learning rate (log)",
                                 y_axis_label="objective", title="trials: objective vs LR, colour = weight decay",
                                 tools="pan,wheel_zoom,reset,hover", toolbar_location="right",
                                 tooltips=[("trial", "@trial"), ("lr", "@lr{0.000e}"), ("value", "@value"),
                                           ("weight decay", "@wd")])
        self.search_fig.scatter("lr", "value", source=self.search_source, color="color", size=9,
                                legend_field="wd")
        self.search_fig.x_range.range_padding = self.search_fig.y_range.range_padding = 0.15  # edge points
        self.search_fig.legend.title = "weight decay"
        self.search_fig.legend.label_text_font_size = "8pt"
        self.search_fig.xaxis.ticker.desired_num_ticks = 4  # a narrow log range otherwise crowds its labels
        self.search_fig.xaxis.major_label_orientation = 0.6
        self.search_button = button("Run search", "success", width=130,
                                               css_classes=["wb-search-run"])
        self.search_button.on_click(lambda e: self.run_search())
        self.progress = pn.indicators.Progress(value=0, max=100, width=200, visible=False)
        self._search_status = pn.pane.Markdown("", css_classes=["wb-search-status"], sizing_mode="stretch_width")
        self._search_table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=260,
                                                  width=480, css_classes=["wb-search-table"], visible=False)
        self._handles = [session.on("run_start", self._on_run_start), session.on("run_end", self._on_run_end)]
        self._plots = (PlotPane(self.lr_fig, self.curve_source, hint="Run the LR finder: the loss vs LR shows here."),
                       PlotPane(self.coarse_fig, self.coarse_source),
                       PlotPane(self.search_fig, self.search_source, hint="Run a search: its trials show here."))

        if session.reports.get("lr_find") is not None:
            self.show_lr(session.reports["lr_find"])
        if isinstance(session.reports.get("search"), pd.DataFrame):
            self.show_search(session.reports["search"])

    # -- trial progress from the training threads: only recorded here, drawn by flush ------------
    def _ours(self, run) -> bool:
        tags = (getattr(run, "config", {}) or {}).get("tags") or {}
        return self.searching and "study" in tags and tags.get("stage") == self._search_stage

    def _on_run_start(self, event) -> None:
        if self._ours(event.run):
            self._trial_live = event.run

    def _on_run_end(self, event) -> None:
        if self._ours(event.run):
            with self._lock:
                self._trials_done.append(event.run.id)

    # -- B.1 ---------------------------------------------------------------------------------------
    @guarded
    def run_lr_find(self, **options):
        """The LR range test in a background thread (``options`` go to ``session.lr_find``)."""
        self._check_idle()
        opts = {"start": self.lr_start, "end": self.lr_end, "steps": self.steps, **options}
        self.finding = True
        self.lr_button.disabled = self.search_button.disabled = True
        self._lr_message.object = f"LR range test running: {opts['steps']} iterations from {fmt(opts['start'])} " \
                                  f"to {fmt(opts['end'])}, then the coarse test …"

        self._lr_work.start(lambda: self.session.lr_find(**opts))

    def show_lr(self, result) -> None:
        """Draw an LRFindResult: the curve, a line per suggestion, the coarse test (document thread)."""
        self.result = result
        c = result.curve
        self.curve_source.data = {"lr": c["lr"].tolist(), "loss": c["loss"].tolist(),
                                  "smoothed": c["smoothed"].tolist()}
        picks = [(k, float(v)) for k, v in result.suggestions.items() if v is not None and math.isfinite(v)]
        self.sugg_source.data = {
            "lr": [v for _, v in picks], "method": [k for k, _ in picks],
            "label": [f"{k} {v:.2g}" + (" ◀" if k == result.method else "") for k, v in picks],
            "color": [METHOD_COLORS.get(k, "#555555") for k, _ in picks],
            "width": [3 if k == result.method else 1.5 for k, _ in picks],
            # staggered from the top down, where the curve has left the plot: close suggestions stay readable
            "y": [self.lr_fig.height - 80 - 15 * i for i in range(len(picks))]}
        self._show_coarse(result)
        self.method = result.method if result.method in self.param.method.objects else self.method
        self._update_use_button()
        self._zoom_loss(c)
        table = result.to_frame()
        rows = "".join(f"| {r.method}{' ◀' if r.method == result.method else ''} | {fmt(r.lr, 3)} | "
                       f"{fmt(r.smoothed_loss, 3)} |\n" for r in table.itertuples())
        self._lr_message.object = (
            f"**{html.escape(result.message)}**\n\nThe sweep ran {len(c)} iterations from {fmt(c['lr'].iloc[0], 3)} "
            f"to {fmt(c['lr'].iloc[-1], 3)} (stopped: {result.stopped}).")
        self._lr_table.object = f"| suggestion | lr | smoothed loss |\n|---|---|---|\n{rows}"

    def _zoom_loss(self, c: pd.DataFrame) -> None:
        # the raw loss explodes at the end of the sweep; the part worth reading is the descent
        sm = c["smoothed"].to_numpy(dtype=float)
        lo = float(np.nanmin(np.minimum(sm, c["loss"].to_numpy(dtype=float))))
        hi = float(max(sm[0] * 1.25, np.nanmax(sm[: max(1, int(np.nanargmin(sm)) + 1)]) * 1.25))
        if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
            r = self.lr_fig.y_range
            r.start = r.reset_start = max(0.0, lo - 0.05 * (hi - lo))
            r.end = r.reset_end = hi

    def _show_coarse(self, result) -> None:
        df, summary = result.coarse, result.coarse_summary
        if df is None or not len(df):
            self.coarse_source.data = {"xs": [], "ys": [], "color": [], "label": []}
            self._coarse_table.value, self._coarse_table.visible = pd.DataFrame(), False
            return
        lrs = sorted(df["lr"].unique(), reverse=True)
        falls = dict(zip(summary["lr"], summary["falls"], strict=False)) if len(summary) else {}
        data = {"xs": [], "ys": [], "color": [], "label": []}
        for i, lr in enumerate(lrs):
            part = df[df["lr"] == lr]
            data["xs"].append(part["iteration"].tolist())
            # a NaN loss (diverged) is drawn as a gap, not as a line to infinity
            data["ys"].append([v if math.isfinite(v) else float("nan") for v in part["loss"]])
            data["color"].append(PALETTE[i % len(PALETTE)])
            data["label"].append(f"{lr:g} " + ("✓ falls" if falls.get(lr) else "✗ does not fall"))
        self.coarse_source.data = data
        # one exploding LR would squash the others into a line at the bottom: clip above the start losses
        starts = [ys[0] for ys in data["ys"] if ys and math.isfinite(ys[0])]
        if starts:
            r = self.coarse_fig.y_range
            r.start = r.reset_start = 0.0
            r.end = r.reset_end = 1.5 * max(starts)
        cols = [c for c in ("lr", "start_loss", "end_loss", "ratio", "falls", "iterations", "recipe") if c in summary]
        self._coarse_table.value, self._coarse_table.visible = summary[cols], True

    def _update_use_button(self) -> None:
        lr = self.chosen_lr()
        self.use_button.disabled = lr is None
        self.use_button.label = f"Use this LR ({lr:.2g})" if lr is not None else "Use this LR"

    def chosen_lr(self) -> float | None:
        """The LR of the selected suggestion method (falling back to the result's own pick)."""
        if self.result is None:
            return None
        v = self.result.suggestions.get(self.method)
        if v is None or not math.isfinite(v):
            return self.result.suggestion
        return float(v)

    @param.depends("method", watch=True)
    def _on_method(self):
        self._update_use_button()

    @guarded
    def use_lr(self):
        """Set the chosen LR for the next run: in the wizard's Live curves, and in ``reports["chosen_lr"]``."""
        lr = self.chosen_lr()
        if lr is None:
            raise ValueError("no LR to use: run the LR finder first (B.1)")
        self.session.reports["chosen_lr"] = lr
        if self.wizard is not None:
            curves = self.wizard.view("LiveCurves")
            lo, hi = curves.param.lr.bounds
            curves.lr = float(min(max(lr, lo), hi))
            notify_info(f"LR {curves.lr:.2g} set in Live curves (B.1)")
            self.wizard.refresh()
        else:
            notify_info(f"LR {lr:.2g} stored as session.reports['chosen_lr'] (B.1)")
        return lr

    # -- B.2, B.3 ----------------------------------------------------------------------------------
    @param.depends("stage", watch=True)
    def _on_stage(self):
        # the recipe's epoch ranges: coarse 1-5 epochs (B.2), refine 10-20 without LR decay (B.3)
        if self.stage == "refine" and self.epochs < 10:
            self.epochs = 10
        elif self.stage == "coarse" and self.epochs > 5:
            self.epochs = 2

    @guarded
    def run_search(self, **options):
        """A coarse or refine random search in a background thread (``options`` go to ``session.search``)."""
        self._check_idle()
        opts = {"trials": self.trials, "epochs": self.epochs, "stage": self.stage,
                "study_name": f"{self.study_prefix}-{options.get('stage', self.stage)}", **options}
        with self._lock:
            self._trials_done = []
        self._trial_live, self._search_total = None, int(opts["trials"])
        self._search_stage = opts["stage"]
        self.searching = True
        self.lr_button.disabled = self.search_button.disabled = True
        self.progress.value, self.progress.visible = 0, True
        self._search_status.object = f"{opts['stage']} search: {opts['trials']} trials of {opts['epochs']} epochs …"

        self._search_work.start(lambda: self.session.search(**opts))

    def show_search(self, table: pd.DataFrame) -> None:
        """The trials best first, and objective vs log LR coloured by weight decay (document thread)."""
        self.table = table
        cols = [c for c in SEARCH_COLUMNS if c in table] + [c for c in table.columns if c not in SEARCH_COLUMNS
                                                             and c not in ("train_loss", "val_metric")]
        self._search_table.value = table[cols].reset_index(drop=True)
        self._search_table.visible = True
        done = table[table["state"].eq("COMPLETE") & table["value"].notna()] if len(table) else table
        wd = done["weight_decay"] if "weight_decay" in done else pd.Series([None] * len(done), index=done.index)
        labels = [fmt(v, 2) if v is not None and not (isinstance(v, float) and np.isnan(v)) else "–" for v in wd]
        order = sorted(set(labels))
        self.search_source.data = {"lr": done["lr"].astype(float).tolist() if "lr" in done else [],
                                   "value": done["value"].astype(float).tolist(), "wd": labels,
                                   "color": [PALETTE[order.index(w) % len(PALETTE)] for w in labels],
                                   "trial": done["trial"].tolist()}
        stage, recipe = table.attrs.get("stage", self.stage), table.attrs.get("recipe", "B.2")
        objective = table.attrs.get("objective", "val_metric")
        if len(done):
            best = done.iloc[0]
            text = (f"**{stage} search** (recipe {recipe}, study `{table.attrs.get('study', '?')}`): "
                    f"{len(done)} of {len(table)} trials complete; best trial {int(best['trial'])}: "
                    f"{objective} **{fmt(best['value'])}** at lr {fmt(best.get('lr'), 3)}, weight decay "
                    f"{fmt(best.get('weight_decay'), 2)} (run `{best['run_id']}`).")
            if stage == "coarse":
                text += " Next: refine the best ones for 10-20 epochs, no LR decay (B.3)."
        else:
            text = f"**{stage} search**: no trial completed ({len(table)} in the study; diverged trials are pruned)."
        self._search_status.object = text

    # -- the periodic flush (document thread) ------------------------------------------------------
    def flush(self) -> None:
        for plot in self._plots:
            plot.reveal()
        lr_outcome = self._lr_work.take() if self.finding else None
        if lr_outcome is not None:
            kind, value = lr_outcome
            self.finding = False
            self._idle_buttons()
            if kind == "error":
                self._lr_message.object = f"The LR range test failed: {html.escape(describe_error(value))}"
                notify_error(f"the LR finder failed: {describe_error(value)}")
            else:
                self.show_lr(value)
                notify_info(f"LR finder: {value.message}")
                self._refresh_wizard()
        if self.searching:
            with self._lock:
                done = len(self._trials_done)
            total = max(1, self._search_total)
            self.progress.value = int(100 * min(1.0, done / total))
            live = self._trial_live
            search_outcome = self._search_work.take()
            if search_outcome is None:
                text = f"{self._search_stage} search: {done}/{total} trials finished"
                if live is not None and getattr(live, "running", False):
                    cfg = live.config
                    text += (f" · trial {cfg.get('tags', {}).get('trial', '?')} training: lr {fmt(cfg.get('lr'), 3)},"
                             f" weight decay {fmt(cfg.get('weight_decay'), 2)}, epoch {len(live.epoch_records)}/"
                             f"{cfg.get('epochs', '?')}")
                self._search_status.object = text
                return
            kind, value = search_outcome
            self.searching, self.progress.visible = False, False
            self._idle_buttons()
            if kind == "error":
                self._search_status.object = f"The search failed: {html.escape(describe_error(value))}"
                notify_error(f"the search failed: {describe_error(value)}")
            else:
                self.show_search(value)
                notify_info(f"search done: {done} trials trained")
                self._refresh_wizard()

    def wait(self, timeout=None) -> None:
        """Wait for the LR finder and the search in flight, then draw them (tests, notebooks)."""
        for work in (self._lr_work, self._search_work):
            work.join(timeout)
        self.flush()

    def _check_idle(self) -> None:
        if self.finding or self.searching:
            raise ValueError("the LR finder or a search is already running; wait for it")
        run = _busy_run(self.session)
        if run is not None:
            raise ValueError(f"run {run.id} is training: stop it or wait (Live curves) before tuning")

    def _idle_buttons(self) -> None:
        self.lr_button.disabled = self.search_button.disabled = False

    def _refresh_wizard(self) -> None:
        if self.wizard is not None:
            self.wizard.refresh()

    def __panel__(self):
        self.start_updates()
        if self._layout is None:  # one layout per view (see LiveCurves.__panel__)
            self._layout = self._build_layout()
        return self._layout

    def _build_layout(self):
        lr_controls = pn.Row(
            pn.widgets.FloatInput.from_param(self.param.lr_start, name="start LR", width=100),
            pn.widgets.FloatInput.from_param(self.param.lr_end, name="end LR", width=100),
            pn.widgets.IntInput.from_param(self.param.steps, width=90), self.lr_button,
            css_classes=["wb-lr-controls"])
        use = pn.Row(pn.widgets.Select.from_param(self.param.method, name="suggestion", width=130), self.use_button)
        search_controls = pn.Row(
            pn.widgets.Select.from_param(self.param.stage, width=100),
            pn.widgets.IntInput.from_param(self.param.trials, width=80),
            pn.widgets.IntInput.from_param(self.param.epochs, width=80), self.search_button, self.progress,
            css_classes=["wb-search-controls"])
        return pn.Column(
            "### LR range test (B.1)", lr_controls, self._lr_message,
            pn.Row(*self._plots[:2]), use,
            pn.Row(self._lr_table, pn.Column(pn.pane.Markdown("**Coarse test** (B.1): does the loss fall within "
                                                              "100 iterations?"), self._coarse_table)),
            "### Random search: coarse (B.2), then refine (B.3)",
            pn.pane.Markdown("Random, not grid: log-LR around the finder's pick and weight decay in {1e-4, 1e-5, 0}. "
                             "Every trial is an ordinary run in the runs table."),
            search_controls, self._search_status, pn.Row(self._plots[2], self._search_table),
            name="Tune")


class DiagnosisView(LiveView):
    """Pick a run, read what its curves say is wrong and what to do (B.4); compare two runs (III.M3)."""

    run_id = param.Selector(default=None, objects=[], allow_None=True, doc="the run diagnosed")
    run_a = param.Selector(default=None, objects=[], allow_None=True, doc="compare: the baseline run")
    run_b = param.Selector(default=None, objects=[], allow_None=True, doc="compare: the changed run")

    wizard = None  # set by RecipeWizard.view: a diagnosis redraws the step statuses

    def __init__(self, session, **params):
        super().__init__(**params)
        self.session = session
        self.diagnosis = session.reports.get("diagnosis")
        self.comparison = None
        self._dirty = False
        self.epoch_source = ColumnDataSource({"epoch": [], "train_loss": [], "val_loss": [], "train_metric": [],
                                              "val_metric": []})
        self.step_source = ColumnDataSource({"epoch": [], "loss": []})
        self.loss_fig = figure(width=420, height=240, title="loss (P.1)", x_axis_label="epoch", y_axis_type="log",
                               tools="pan,wheel_zoom,reset", toolbar_location="right")
        self.loss_fig.line("epoch", "loss", source=self.step_source, color="#90caf9", legend_label="train (steps)")
        self.loss_fig.line("epoch", "train_loss", source=self.epoch_source, color="#1565c0", line_width=2,
                           legend_label="train")
        self.loss_fig.line("epoch", "val_loss", source=self.epoch_source, color="#ef6c00", line_width=2,
                           legend_label="val")
        self.acc_fig = figure(width=420, height=240, title=f"{session.task.metric} (P.2)", x_axis_label="epoch",
                              tools="pan,wheel_zoom,reset", toolbar_location="right")
        for key, color in (("train_metric", "#1565c0"), ("val_metric", "#ef6c00")):
            self.acc_fig.line("epoch", key, source=self.epoch_source, color=color, line_width=2,
                              legend_label=key.split("_")[0])
            self.acc_fig.scatter("epoch", key, source=self.epoch_source, color=color, size=5)
        for fig in (self.loss_fig, self.acc_fig):
            fig.legend.label_text_font_size = "8pt"
        self.diagnose_button = button("Diagnose", "success", width=120,
                                                 css_classes=["wb-diagnose-run"])
        self.diagnose_button.on_click(lambda e: self.diagnose())
        self.compare_button = button("Compare", "primary", width=110,
                                                css_classes=["wb-compare-run"])
        self.compare_button.on_click(lambda e: self.compare())
        self._cards = pn.Column(sizing_mode="stretch_width", css_classes=["wb-diagnosis-cards"])
        self._compare_message = pn.pane.Markdown("", css_classes=["wb-compare-message"], sizing_mode="stretch_width")
        self._config_table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=160,
                                                  width=440)
        self._metrics_table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=230,
                                                   width=440)
        self._handles = [session.on("run_end", self._on_run_change), session.on("run_start", self._on_run_change)]
        self._plots = (PlotPane(self.loss_fig, self.epoch_source, self.step_source,
                                hint="Diagnose a run: its curves show here."),
                       PlotPane(self.acc_fig, self.epoch_source))
        self.refresh_runs()
        self.show()

    def _on_run_change(self, event) -> None:
        self._dirty = True  # a training thread: the run list is refreshed by flush

    def refresh_runs(self) -> None:
        """The run choices from ``session.runs()`` (newest last), defaulting to the last run."""
        runs = self.session.runs()
        labels = {}
        for r in runs.to_dict("records"):
            vm = r.get("val_metric")
            labels[f"{r['id']} · {r.get('status')}" + (f" · val {fmt(vm, 3)}" if isinstance(vm, float)
                                                       and math.isfinite(vm) else "")] = r["id"]
        ids = list(labels.values())
        for name in ("run_id", "run_a", "run_b"):
            self.param[name].objects = labels  # Selector takes a {label: value} dict
        last = self.session.last_run
        if self.run_id not in ids:
            self.run_id = last.id if last is not None and last.id in ids else (ids[-1] if ids else None)
        if self.run_b not in ids:
            self.run_b = ids[-1] if ids else None
        if self.run_a not in ids:
            parent = self._parent(self.run_b)
            self.run_a = parent if parent in ids else (ids[-2] if len(ids) > 1 else self.run_b)

    def _parent(self, run_id):
        if run_id is None:
            return None
        try:
            return self.session.run(run_id).config.get("parent")
        except Exception:  # noqa: BLE001 - an unreadable run has no parent to offer
            return None

    @guarded
    def diagnose(self, run=None):
        """Diagnose ``run`` (default: the selected run) and show its findings and curves (B.4)."""
        run = run or self.run_id or self.session.last_run
        if run is None:
            raise ValueError("no run to diagnose: train one first (Live curves)")
        self.diagnosis = self.session.diagnose(run)
        self.show()
        if self.wizard is not None:  # the step turns green in the stepper
            self.wizard.refresh()
        return self.diagnosis

    def show(self) -> None:
        """One card per finding (severity, message, evidence, advice, recipe step), or "healthy"."""
        d = self.diagnosis
        if d is None:
            self._cards[:] = [pn.pane.Markdown("Pick a run and press **Diagnose**: plateau, under- or overfitting, "
                                               "divergence, a noisy loss, and the instruments' verdicts (B.4).")]
            return
        head = (badge("pass", "healthy") if d.healthy else badge("warn", f"{len(d.findings)} finding(s)"))
        items = [pn.pane.HTML(f"<div class='wb-diagnosis-head'>{head} {html.escape(d.message)}</div>",
                              sizing_mode="stretch_width")]
        items += [self._card(f) for f in d.findings]
        if not d.findings:
            items.append(pn.pane.HTML("<div class='wb-diagnosis-healthy'>No problem found in the curves: the loss "
                                      "falls, train and val agree (recipe B.4).</div>"))
        self._cards[:] = items
        on_document(lambda: self._draw_curves(d.run_id))

    @staticmethod
    def _card(f):
        status, text = f.status, f.status  # findings are Verdicts: one status vocabulary
        evidence = ", ".join(f"{html.escape(str(k))}={html.escape(fmt(v))}" for k, v in (f.evidence or {}).items())
        return pn.pane.HTML(
            f"<div class='wb-finding wb-finding-{html.escape(f.name.replace(':', '-'))}' style='border-left:4px solid "
            f"#ddd;padding:4px 10px;margin:4px 0'>{badge(status, text)} <b>{html.escape(f.name)}</b> "
            f"<small>recipe {html.escape(str(f.recipe))}</small><br>{html.escape(f.message)}<br>"
            f"<small><b>evidence</b> {evidence or '–'}</small><br><b>advice:</b> {html.escape(f.advice)}</div>",
            sizing_mode="stretch_width")

    def _draw_curves(self, run_id) -> None:
        try:
            run = self.session.run(run_id)
        except Exception as e:  # noqa: BLE001 - a deleted run folder: the findings still show
            notify_error(f"cannot read run {run_id}: {describe_error(e)}")
            return
        m, s = run.metrics, run.steps
        cols = ("epoch", "train_loss", "val_loss", "train_metric", "val_metric")
        self.epoch_source.data = {c: (m[c].astype(float).tolist() if c in m else []) for c in cols}
        if len(s) and "loss" in s:
            ok = np.isfinite(s["loss"].to_numpy(dtype=float)) & (s["loss"].to_numpy(dtype=float) > 0)
            self.step_source.data = {"epoch": s["epoch"][ok].astype(float).tolist(),
                                     "loss": s["loss"][ok].astype(float).tolist()}
        else:
            self.step_source.data = {"epoch": [], "loss": []}
        self.loss_fig.title.text = f"loss · {run_id} (P.1)"

    @guarded
    def compare(self, a=None, b=None):
        """The config diff and metric deltas (b - a) of two runs (III.M3)."""
        a, b = a or self.run_a, b or self.run_b
        if a is None or b is None:
            raise ValueError("pick two runs to compare")
        self.comparison = c = self.session.compare(a, b)
        config = c.config.copy()
        for col in ("a", "b"):
            config[col] = [fmt(v) for v in config[col]]
        self._config_table.value = config if len(config) else pd.DataFrame({"key": ["(nothing changed)"]})
        metrics = c.metrics.copy()
        for col in ("a", "b", "delta"):  # a missing delta (status) is "–", not "nan"
            metrics[col] = [fmt(None if isinstance(v, float) and math.isnan(v) else v) for v in metrics[col]]
        self._metrics_table.value = metrics
        verdict = badge("pass", "one thing changed") if c.one_thing else badge("warn", f"{len(c.changed)} things "
                                                                                       "changed")
        # the message names the recipe step itself when several things changed
        self._compare_message.object = f"{verdict} {html.escape(c.message)}" + \
            (f" (recipe {c.recipe})" if c.one_thing else "")
        return c

    def flush(self) -> None:
        for plot in self._plots:
            plot.reveal()
        if self._dirty:
            self._dirty = False
            self.refresh_runs()

    def __panel__(self):
        self.start_updates()
        if getattr(self, "_layout", None) is None:  # one layout per view (see LiveCurves.__panel__)
            self._layout = self._build_layout()
        return self._layout

    def _build_layout(self):
        pick = pn.Row(pn.widgets.Select.from_param(self.param.run_id, name="run", width=420), self.diagnose_button,
                      css_classes=["wb-diagnosis-controls"])
        comp = pn.Row(pn.widgets.Select.from_param(self.param.run_a, name="run a (before)", width=330),
                      pn.widgets.Select.from_param(self.param.run_b, name="run b (after)", width=330),
                      self.compare_button)
        return pn.Column(
            "### What the curves say (B.4)", pick, self._cards,
            pn.Row(*self._plots),
            "### One thing at a time: compare two runs (III.M3)", comp, self._compare_message,
            pn.Row(pn.Column(pn.pane.Markdown("**config diff**"), self._config_table),
                   pn.Column(pn.pane.Markdown("**metrics (b - a)**"), self._metrics_table)), name="Diagnosis")
