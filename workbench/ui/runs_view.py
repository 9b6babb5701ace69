"""RunsView: every run (or a chosen set, a search's trials) on one plot, smoothed, and a search's trials as
parallel coordinates (recipe B.2-B.6, III.M3, P.1).

The runs come from ``session.runs()`` (on disk, also after a restart); the curves from each run's
records. Smoothing is TensorBoard's: an exponential moving average, debiased at the start
(``pandas.Series.ewm(adjust=True)``). Everything here is fast, so it runs in the click handler.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColorBar, ColumnDataSource, LinearColorMapper, Range1d
from bokeh.palettes import Category10_10, Viridis256
from bokeh.plotting import figure

from workbench.errors import WorkbenchError
from workbench.ui.common import View, button, fmt, guarded

METRICS = {"loss (steps)": ("steps", "loss"), "train loss": ("epochs", "train_loss"),
           "val loss": ("epochs", "val_loss"), "train metric": ("epochs", "train_metric"),
           "val metric": ("epochs", "val_metric")}
MAX_DEFAULT = 8  # runs drawn when nobody chose: the newest ones


def smooth(values, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an EMA with factor ``weight`` in [0, 1), debiased so the start is not pulled to 0."""
    if not 0.0 <= weight < 1.0:
        raise WorkbenchError(f"smoothing must be in [0, 1), got {weight!r}")
    s = pd.Series(np.asarray(values, dtype=float))
    return s.to_numpy() if weight == 0 else s.ewm(alpha=1.0 - weight, adjust=True, ignore_na=True).mean().to_numpy()


def curve(run, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of one run's ``metric`` (a key of METRICS); the x axis is in epochs (P.1)."""
    kind, column = METRICS[metric]
    table = run.steps if kind == "steps" else run.metrics
    if column not in table or "epoch" not in table or not len(table):
        return np.zeros(0), np.zeros(0)
    x, y = table["epoch"].to_numpy(dtype=float), table[column].to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


class RunsView(View):
    """Chosen runs overlaid on one plot with smoothing; a search's trials as parallel coordinates (B.2, B.3)."""

    chosen = param.ListSelector(default=[], objects=[], doc="run ids drawn (none: the newest few)")
    metric = param.Selector(default="val metric", objects=list(METRICS))
    smoothing = param.Number(default=0.6, bounds=(0.0, 0.99), step=0.01, doc="EMA weight, as in TensorBoard")
    log_y = param.Boolean(default=False, doc="loss on a log axis (P.1)")
    message = param.String(default="")

    def __init__(self, session, **params):
        super().__init__(**params)
        self.session = session
        self.source = ColumnDataSource({"xs": [], "ys": [], "raw_xs": [], "raw": [], "color": [], "run": []})
        self.figs = {log: self._curves_figure(log) for log in (False, True)}
        self._curves = pn.pane.Bokeh(self.figs[False])
        self.pc_source = ColumnDataSource({"xs": [], "ys": [], "value": [], "trial": []})
        self.pc_axes = ColumnDataSource({"x": [], "label": [], "lo": [], "hi": []})
        self.mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
        self.pc_fig = self._parallel_figure()
        self.refresh_button = button("Refresh runs", "primary", width=130, css_classes=["wb-runs-refresh"])
        self.refresh_button.on_click(lambda e: self.refresh())
        self.trials_button = button("The search's trials", "light", width=160, css_classes=["wb-runs-trials"])
        self.trials_button.on_click(lambda e: self.choose_search_trials())
        self._layout = None
        self.refresh()

    # -- figures -----------------------------------------------------------------------------------
    def _curves_figure(self, log: bool):
        fig = figure(width=780, height=320, x_axis_label="epoch", y_axis_type="log" if log else "linear",
                     x_range=Range1d(0, 1), y_range=Range1d(0.1 if log else 0, 1), title="runs side by side",
                     tools="pan,wheel_zoom,reset,hover", tooltips=[("run", "@run")], toolbar_location="right",
                     css_classes=["wb-runs-plot"])
        fig.multi_line("raw_xs", "raw", source=self.source, line_color="color", line_alpha=0.2)
        fig.multi_line("xs", "ys", source=self.source, line_color="color", line_width=2, legend_field="run")
        legend = fig.legend[0]
        legend.label_text_font_size, legend.padding, legend.spacing = "8pt", 2, 0
        fig.add_layout(legend, "right")  # beside the plot: many runs must not hide the curves
        return fig

    def _parallel_figure(self):
        fig = figure(width=640, height=300, x_range=Range1d(-0.15, 1.15), y_range=Range1d(-0.12, 1.1),
                     title="search trials: parallel coordinates, colour = objective (B.2, B.3)", tools="hover",
                     tooltips=[("trial", "@trial"), ("objective", "@value")], toolbar_location=None,
                     css_classes=["wb-runs-parallel"])
        fig.multi_line("xs", "ys", source=self.pc_source, line_width=2, line_alpha=0.8,
                       line_color={"field": "value", "transform": self.mapper})
        fig.segment(x0="x", y0=0, x1="x", y1=1, source=self.pc_axes, line_color="#555555")
        fig.text(x="x", y=1.02, text="label", source=self.pc_axes, text_align="center", text_font_size="8pt")
        fig.text(x="x", y=-0.1, text="lo", source=self.pc_axes, text_align="center", text_font_size="7pt")
        fig.text(x="x", y=1.07, text="hi", source=self.pc_axes, text_align="center", text_font_size="7pt")
        fig.axis.visible = False
        fig.grid.visible = False
        fig.add_layout(ColorBar(color_mapper=self.mapper, width=10, title="objective", title_text_font_size="8pt",
                                major_label_text_font_size="7pt"), "right")
        return fig

    # -- which runs ----------------------------------------------------------------------------------
    @guarded
    def refresh(self) -> None:
        """Read the runs on disk again; keep the choice, or take the newest few."""
        runs = self.session.runs()
        ids = [str(i) for i in runs["id"]] if len(runs) and "id" in runs else []
        self.param.chosen.objects = ids
        kept = [i for i in self.chosen if i in ids]
        self.chosen = kept or ids[-MAX_DEFAULT:]
        self.draw()
        self.draw_search()

    @guarded
    def choose_search_trials(self) -> None:
        """Draw exactly the trials of the session's last search."""
        table = (getattr(self.session, "reports", {}) or {}).get("search")
        if not isinstance(table, pd.DataFrame) or not len(table):
            raise WorkbenchError("no search yet: run one in the LR finder and search step (B.2)")
        self.refresh()
        ids = [str(r) for r in table["run_id"] if isinstance(r, str) and r in self.param.chosen.objects]
        self.chosen = ids

    # -- drawing ---------------------------------------------------------------------------------------
    @param.depends("chosen", "metric", "smoothing", watch=True)
    def draw(self) -> None:
        data = {"xs": [], "ys": [], "raw_xs": [], "raw": [], "color": [], "run": []}
        for k, rid in enumerate(self.chosen):
            x, y = curve(self.session.run(rid), self.metric)
            if self.log_y:
                x, y = x[y > 0], y[y > 0]
            if not len(x):
                continue
            data["xs"].append(x.tolist())
            data["raw_xs"].append(x.tolist())
            data["raw"].append(y.tolist())
            data["ys"].append(smooth(y, self.smoothing).tolist())
            data["color"].append(Category10_10[k % 10])
            data["run"].append(rid)
        self.source.data = data
        self._fit_ranges(data)
        fig = self.figs[self.log_y]
        fig.title.text = f"{self.metric} of {len(data['run'])} runs, smoothing {self.smoothing:.2f} (P.1, III.M3)"
        self.message = "" if data["run"] else "No run with this metric yet: train one (Live curves)."

    def _fit_ranges(self, data) -> None:
        # explicit ranges: Bokeh cannot auto-range an empty plot, and a log axis needs positive bounds
        xs = [v for line in data["raw_xs"] for v in line]
        ys = [v for line in data["raw"] for v in line]
        if not xs or not ys:
            return
        fig = self.figs[self.log_y]
        fig.x_range.start, fig.x_range.end = min(xs), max(max(xs), min(xs) + 1e-9)
        lo, hi = min(ys), max(ys)
        if self.log_y:
            fig.y_range.start, fig.y_range.end = lo / 1.2, hi * 1.2
        else:
            pad = 0.05 * (hi - lo or abs(hi) or 1.0)
            fig.y_range.start, fig.y_range.end = lo - pad, hi + pad

    @param.depends("log_y", watch=True)
    def _swap_scale(self) -> None:
        self._curves.object = self.figs[self.log_y]
        self.draw()

    def draw_search(self) -> None:
        """The last search's completed trials as lines across one axis per searched parameter and the objective."""
        table = (getattr(self.session, "reports", {}) or {}).get("search")
        if not isinstance(table, pd.DataFrame) or not len(table):
            self.pc_source.data = {"xs": [], "ys": [], "value": [], "trial": []}
            self.pc_axes.data = {"x": [], "label": [], "lo": [], "hi": []}
            return
        done = table[table["state"].eq("COMPLETE") & table["value"].notna()]
        skip = {"trial", "run_id", "value", "state", "status", "duration_s", "train_loss", "train_metric",
                "val_loss", "val_metric", "epochs"}
        params = [c for c in done.columns if c not in skip and pd.api.types.is_numeric_dtype(done[c])]
        axes = params + ["value"]
        scaled, lows, highs = [], [], []
        for c in axes:
            v = done[c].astype(float).to_numpy()
            log = c == "lr" or (v > 0).all() and v.max() / max(v.min(), 1e-300) > 100
            t = np.log10(v) if log and (v > 0).all() else v
            lo, hi = (float(np.nanmin(t)), float(np.nanmax(t))) if len(t) else (0.0, 1.0)
            scaled.append((t - lo) / (hi - lo) if hi > lo else np.full(len(t), 0.5))
            lows.append(fmt(float(np.nanmin(v)), 2) if len(v) else "")
            highs.append(fmt(float(np.nanmax(v)), 2) if len(v) else "")
        xs = np.linspace(0, 1, len(axes)).tolist() if len(axes) > 1 else [0.5]
        self.pc_axes.data = {"x": xs, "label": [("log " if c == "lr" else "") + ("objective" if c == "value" else c)
                                                 for c in axes], "lo": lows, "hi": highs}
        values = done["value"].astype(float).tolist()
        self.pc_source.data = {"xs": [xs] * len(done), "ys": [[float(s[i]) for s in scaled] for i in range(len(done))],
                               "value": values, "trial": [int(t) for t in done["trial"]]}
        if values:
            self.mapper.low, self.mapper.high = min(values), max(values) + (1e-9 if min(values) == max(values) else 0)
        self.pc_fig.x_range.start = -0.15 if len(axes) > 1 else 0

    def __panel__(self):
        if self._layout is None:  # one layout per view (see LiveCurves.__panel__)
            pick = pn.widgets.MultiChoice.from_param(self.param.chosen, name="runs", width=560,
                                                     css_classes=["wb-runs-choice"])
            controls = pn.Row(pn.widgets.Select.from_param(self.param.metric, width=130),
                              pn.widgets.FloatSlider.from_param(self.param.smoothing, width=200),
                              pn.widgets.Checkbox.from_param(self.param.log_y, name="log y", margin=(28, 10)),
                              self.refresh_button, self.trials_button, css_classes=["wb-runs-controls"])
            self._layout = pn.Column("### Runs side by side (B.5, III.M3)", controls, pick,
                                     pn.pane.Markdown(self.param.message), self._curves,
                                     "### The search's trials (B.2, B.3)", pn.pane.Bokeh(self.pc_fig), name="Runs")
        return self._layout

