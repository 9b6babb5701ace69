"""Live instrument views: first-layer filters (P.4), wiggle (II.11), histograms (P.3), update ratio (P.5).

Each view attaches its instrument to the session (``session.instrument(name)``) if it is not
attached yet, and its ``flush()`` (document thread) reads the instrument's buffer with
``since(version)``, so the training thread never touches a Bokeh model.
"""

from __future__ import annotations

import html
import math

import numpy as np
import panel as pn
import param
from bokeh.models import BoxAnnotation, ColumnDataSource, LinearColorMapper, Span
from bokeh.palettes import Category10_10, Viridis256
from bokeh.plotting import figure

from workbench.ui.common import LiveView, View, badge, on_document
from workbench.ui.plots import PlotPane

HINT = "Start a run (Live curves above): this plot fills as it trains."


def instrument(session, name: str, every: int | None = None):
    """The session's attached instrument called ``name``, attaching it when absent (or at a new cadence).

    One that has measured a run is kept whatever its cadence (e.g. a ``wb.watch`` run's): replacing it
    would drop what the run measured.
    """
    for inst in getattr(session, "instruments", []):
        if getattr(inst, "name", None) == name and (every is None or getattr(inst, "every", None) == every
                                                     or getattr(inst, "version", 0) > 0):
            return inst
    handles = session.instrument([name], every=every)
    return getattr(handles[0], "instrument", None) or next(i for i in session.instruments if i.name == name)


def verdict_html(inst) -> str:
    s = inst.summary()
    # one verdict vocabulary (workbench/verdict.py): an instrument with nothing measured yet is "skip"
    status = s.get("status", "skip")
    return (f"{badge(status, 'not measured' if status == 'skip' else status)} "
            f"{html.escape(str(s.get('verdict', '')))} <small>(recipe {html.escape(str(s.get('recipe', '')))})"
            "</small>")


def _verdict_pane(view) -> pn.pane.HTML:
    """The verdict line, wrapped inside the view's width (long verdicts ran off the page)."""
    return pn.pane.HTML(view.param.verdict, width=460, css_classes=["wb-instrument-verdict"],
                  styles={"overflow-wrap": "anywhere", "white-space": "normal"})


class _InstrumentView(LiveView):
    """Shared: the instrument, the run it shows, the version read so far, the verdict line."""

    name_ = ""
    verdict = param.String(default="")

    def __init__(self, session, every: int | None = None, **params):
        super().__init__(**params)
        self.session = session
        self.inst = instrument(session, self.name_, every)
        self._version = 0
        self._run = None
        self._layout = None
        self.plot = None  # a PlotPane, once the layout is built

    def _new(self) -> list[dict]:
        """Records the instrument buffered since the last flush; a new run resets the view first."""
        if self.inst.run_id != self._run:
            self._run = self.inst.run_id
            self._version = 0
            self.reset()
        recs = self.inst.since(self._version)
        if recs:
            self._version = recs[-1]["version"]
        return recs

    def reset(self) -> None:  # pragma: no cover - overridden
        pass

    def flush(self) -> None:
        recs = self._new()
        if recs:
            self.update(recs)
            self.verdict = verdict_html(self.inst)
        if getattr(self, "plot", None) is not None:
            self.plot.reveal()


class FilterGrid(_InstrumentView):
    """First-layer weights as an image grid per epoch, with a slider over epochs (P.4, III.R11)."""

    name_ = "first_layer"
    index = param.Integer(default=0, bounds=(0, None), doc="which recorded epoch is shown")
    follow = param.Boolean(default=True, doc="jump to the newest epoch as it arrives")

    def __init__(self, session, every: int | None = None, **params):
        super().__init__(session, every, **params)
        self.records: list[dict] = []
        self.source = ColumnDataSource({"image": [], "dw": [], "dh": []})
        self.fig = figure(width=360, height=360, title="first-layer filters (P.4)", toolbar_location=None,
                          tools="", x_range=(0, 1), y_range=(0, 1), css_classes=["wb-filter-grid"])
        self.fig.image_rgba(image="image", x=0, y=0, dw="dw", dh="dh", source=self.source)
        self.fig.axis.visible = False
        self.fig.grid.visible = False
        self.slider = pn.widgets.IntSlider.from_param(self.param.index, name="epoch record", width=340)
        self.caption = pn.pane.Markdown("", css_classes=["wb-filter-caption"])
        self.flush()

    def reset(self) -> None:
        self.records = []
        self.source.data = {"image": [], "dw": [], "dh": []}

    def update(self, recs) -> None:
        self.records += list(recs)  # the instrument's records: each draws its grid once, on first read
        self.param.index.bounds = (0, max(0, len(self.records) - 1))
        self.slider.end = max(1, len(self.records) - 1)
        if self.follow:
            self.index = len(self.records) - 1
        self._draw()

    @param.depends("index", watch=True)
    def _index_changed(self) -> None:
        on_document(self._draw)  # the slider's change may arrive without the document lock

    def _draw(self) -> None:
        if not self.records:
            return
        r = self.records[min(self.index, len(self.records) - 1)]
        img = r["image"]
        rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
        packed = np.ascontiguousarray(rgba[::-1]).view(np.uint32)[..., 0]
        self.source.data = {"image": [packed], "dw": [img.shape[1]], "dh": [img.shape[0]]}
        # explicit ranges: an auto range does not always follow an image whose size arrives later
        self.fig.x_range.start, self.fig.x_range.end = 0, img.shape[1]
        self.fig.y_range.start, self.fig.y_range.end = 0, img.shape[0]
        self.caption.object = (f"epoch **{r['epoch']}** (step {r['step']}) · layer `{r['layer']}` · "
                               f"change from init {r['change']:.3f} · smoothness {r['smoothness']:.3f}")

    def __panel__(self):
        self.start_updates()
        if self._layout is None:
            self._layout = pn.Column("#### First-layer filters (P.4)", pn.pane.Bokeh(self.fig), self.slider,
                                     self.caption, _verdict_pane(self), width=480, name="Filters")
        return self._layout


class WigglePlot(_InstrumentView):
    """True-class probability of each fixed test example over steps, one band per example, and the wiggle (II.11).

    The k examples share one figure (example i drawn in the band [i, i + 0.9]): small multiples that
    fit the page at any width, where a grid of k figures overflowed it.
    """

    name_ = "predictions"
    wiggle = param.Number(default=math.nan)
    score_text = param.String(default="wiggle score: –")
    BAND = 0.9  # height of one example's band: p = 1 touches the next example's floor at 0.9 + gap

    def __init__(self, session, every: int | None = None, **params):
        super().__init__(session, every, **params)
        self.k = int(getattr(self.inst, "k", 16))
        self.steps: list[int] = []
        self.history: list[np.ndarray] = []
        self.source = ColumnDataSource({"xs": [], "ys": [], "color": [], "example": []})
        self.fig = figure(width=460, height=360, title="true-class probability per example (II.11)",
                          x_axis_label="step", toolbar_location=None, tools="hover",
                          tooltips=[("example", "@example")], y_range=(-0.1, self.k), css_classes=["wb-wiggle-plot"])
        self.fig.multi_line("xs", "ys", source=self.source, line_color="color", line_width=1.5)
        self.fig.yaxis.ticker = [i + self.BAND / 2 for i in range(self.k)]
        self.fig.ygrid.ticker = [float(i) for i in range(self.k + 1)]
        self.fig.yaxis.major_label_text_font_size = "7pt"
        self._label_ticks()
        self.flush()

    def _label_ticks(self) -> None:
        labels = getattr(self.inst, "labels", None)
        names = getattr(self.session.train, "classes", None)

        def name(i):
            if labels is None or i >= len(labels):
                return f"#{i}"
            v = labels[i]
            return f"#{i} · {names[int(v)] if names and np.ndim(v) == 0 and int(v) < len(names) else v}"

        self.fig.yaxis.major_label_overrides = {i + self.BAND / 2: name(i) for i in range(self.k)}

    def reset(self) -> None:
        self.steps, self.history = [], []  # the plot keeps the old run until the new one's first record

    def update(self, recs) -> None:
        self.steps += [r["step"] for r in recs]
        self.history += [np.asarray(r["p_true"], dtype=float) for r in recs]
        self.steps, self.history = self.steps[-2000:], self.history[-2000:]  # a bounded plot for long runs
        p = np.stack(self.history)
        k = min(self.k, p.shape[1])
        self._label_ticks()
        self.source.data = {"xs": [self.steps] * k,
                            "ys": [(i + self.BAND * p[:, i]).tolist() for i in range(k)],
                            "color": [Category10_10[i % 10] for i in range(k)],
                            "example": [f"#{i}" for i in range(k)]}
        self.wiggle = float(self.inst.wiggle(getattr(self.inst, "window", None)))
        self.score_text = f"wiggle score (mean |Δp| per update): **{self.wiggle:.4f}**"

    def __panel__(self):
        self.start_updates()
        if self._layout is None:
            score = pn.pane.Markdown(self.param.score_text, css_classes=["wb-wiggle-score"])
            self.plot = PlotPane(self.fig, self.source, hint=HINT)
            self._layout = pn.Column("#### Predictions on a fixed test batch (II.11)", self.plot, score,
                                     _verdict_pane(self), width=480, name="Wiggle")
        return self._layout


class Histograms(_InstrumentView):
    """Per-layer activation or gradient histograms over time as a heatmap: the "colorful dimension" (P.3)."""

    name_ = "histograms"
    layer = param.Selector(default=None, objects=[None], allow_None=True)
    kind = param.Selector(default="act", objects=["act", "grad"])

    def __init__(self, session, every: int | None = None, **params):
        super().__init__(session, every, **params)
        self.source = ColumnDataSource({"image": [], "x": [], "y": [], "dw": [], "dh": []})
        self.fig = figure(width=460, height=260, title="histograms over steps (P.3)", x_axis_label="step",
                          y_axis_label="value", toolbar_location=None, tools="")
        self.mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
        self.fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.source, color_mapper=self.mapper)
        self.flags = pn.pane.Markdown("")
        self.flush()

    def reset(self) -> None:
        pass  # the heatmap is redrawn whole from the new run's first record

    def update(self, recs) -> None:
        layers = list(recs[-1]["layers"])
        if layers and list(self.param.layer.objects) != layers:
            self.param.layer.objects = layers
            if self.layer not in layers:
                self.layer = layers[0]
        self._draw()

    @param.depends("layer", "kind", watch=True)
    def _draw(self) -> None:
        if self.layer is None:
            return
        hm = self.inst.heatmap(self.layer, self.kind)
        counts = np.asarray(hm["counts"], dtype=float)
        if not len(counts):
            return
        # log counts per capture, normalised: the shape of each distribution, comparable over time
        img = np.log1p(counts) / np.maximum(np.log1p(counts).max(axis=1, keepdims=True), 1e-12)
        steps, edges = hm["steps"], hm["edges"]
        x0, x1 = steps[0], steps[-1] if len(steps) > 1 else steps[0] + 1
        self.source.data = {"image": [img.T], "x": [x0], "y": [float(edges[0])], "dw": [max(1, x1 - x0)],
                            "dh": [float(edges[-1] - edges[0])]}
        flags = self.inst.flags()
        self.flags.object = "<br>".join(f"⚠ {html.escape(f['message'])}" for f in flags) or "no dead or saturated layer"

    def __panel__(self):
        self.start_updates()
        if self._layout is None:
            self.plot = PlotPane(self.fig, self.source, hint=HINT)
            self._layout = pn.Column("#### Activation and gradient histograms (P.3)",
                                     pn.Row(pn.widgets.Select.from_param(self.param.layer, width=200),
                                            pn.widgets.RadioButtonGroup.from_param(self.param.kind, width=160)),
                                     self.plot, self.flags, _verdict_pane(self), width=480,
                                     name="Histograms")
        return self._layout


class UpdateRatio(_InstrumentView):
    """‖Δw‖/‖w‖ per weight tensor on a log axis, with the healthy band around 1e-3 (P.5)."""

    name_ = "update_ratio"

    def __init__(self, session, every: int | None = None, **params):
        super().__init__(session, every, **params)
        self.source = ColumnDataSource({"step": [], "median": []})
        self.names: list[str] = []
        self.fig = figure(width=460, height=260, y_axis_type="log", title="update / weight ratio (P.5)",
                          x_axis_label="step", toolbar_location=None, tools="")
        low, high = getattr(self.inst, "low", 1e-4), getattr(self.inst, "high", 1e-2)
        self.fig.add_layout(BoxAnnotation(bottom=low, top=high, fill_color="#a5d6a7", fill_alpha=0.25))
        self.fig.add_layout(Span(location=1e-3, dimension="width", line_dash="dashed", line_color="#2e7d32"))
        self.fig.line("step", "median", source=self.source, color="black", line_width=2, legend_label="median")
        self.fig.legend.label_text_font_size = "7pt"
        self.flush()

    def reset(self) -> None:
        self._replace = True  # the new run's first records replace the old: an emptied plot has no range

    def update(self, recs) -> None:
        if not self.names and getattr(self.inst, "weight_names", None):
            # the tensors are known once the first update is measured: one line each, drawn on this thread
            self.names = list(self.inst.weight_names)
            self.source.data = {**{k: list(v) for k, v in self.source.data.items()}, **{n: [] for n in self.names}}
            for i, n in enumerate(self.names[:10]):
                self.fig.line("step", n, source=self.source, color=Category10_10[i % 10], alpha=0.6,
                              legend_label=n[:24])
            if len(self.source.data["step"]):
                self.source.data = {"step": [], "median": [], **{n: [] for n in self.names}}
        data = {"step": [r["step"] for r in recs], "median": [_pos(r["median"]) for r in recs]}
        for n in self.names:
            data[n] = [_pos(r["ratios"].get(n, math.nan)) for r in recs]
        if getattr(self, "_replace", False):
            self._replace = False
            self.source.data = data
        else:
            self.source.stream(data, rollover=2000)

    def __panel__(self):
        self.start_updates()
        if self._layout is None:
            self.plot = PlotPane(self.fig, self.source, hint=HINT)
            self._layout = pn.Column("#### Update / weight ratio (P.5)", self.plot, _verdict_pane(self),
                                     width=480, name="Update ratio")
        return self._layout


def _pos(v: float) -> float:
    return v if v == v and v > 0 else math.nan


class InstrumentsView(View):
    """The four instrument views side by side; they stream while a run trains (start it in Live curves)."""

    def __init__(self, session, every: int | None = 5, **params):
        super().__init__(**params)
        self.session = session
        self.filters = FilterGrid(session)  # per epoch: its cadence is in epochs
        self.wiggle = WigglePlot(session, every)
        self.histograms = Histograms(session, every)
        self.update_ratio = UpdateRatio(session, every)

    def flush(self) -> None:
        for v in (self.filters, self.wiggle, self.histograms, self.update_ratio):
            v.flush()

    def __panel__(self):
        if getattr(self, "_layout", None) is None:  # one layout: see LiveCurves.__panel__
            self._layout = pn.Column(pn.Row(self.filters, self.wiggle), pn.Row(self.update_ratio, self.histograms),
                                     name="Instruments")
        return self._layout
