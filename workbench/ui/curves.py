"""LiveCurves: train/val loss and accuracy against epochs, streaming while a run trains (recipe P.1, P.2).

Training runs in a background thread (``session.fit(background=True)``); the thread only appends
records to the Run. ``flush()`` runs on the document's thread (a periodic callback) and streams the
records it has not seen into Bokeh ColumnDataSources, so no Bokeh model is touched from the
training thread. Step losses are thinned (every k-th step) and rolled over to keep long runs light.
"""

from __future__ import annotations

import html
import math

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Label, Span
from bokeh.plotting import figure

from workbench.ui.common import (
    LiveView,
    button,
    fmt,
    guarded,
    human_baseline_label,
    human_baseline_of,
    notify_error,
    notify_info,
    on_document,
)
from workbench.ui.plots import PlotPane

STEP_ROLLOVER = 4000  # step points kept on the loss plot (P.1: the trend, not every iteration)
EPOCH_ROLLOVER = 1000


def gap_verdict(train_metric: float, val_metric: float, epoch: int, epochs: int) -> str:
    """The recipe's reading of the train/val accuracy gap (P.2, B.4), in one sentence."""
    if any(v is None or not math.isfinite(v) for v in (train_metric, val_metric)):
        return ""
    gap = train_metric - val_metric
    if gap > 0.05:
        return (f"gap {gap * 100:.1f} pts: overfitting — more regularization (weight decay, augmentation) "
                "or more data (B.4)")
    if train_metric < 0.9 and epoch >= max(2, epochs // 2):
        return (f"gap {gap * 100:.1f} pts, train accuracy {train_metric:.0%}: underfitting — bigger model, "
                "longer training or a higher LR (B.4)")
    return f"gap {gap * 100:.1f} pts: train and validation agree"


def failure_reason(run) -> str:
    """Why ``run`` failed or diverged (from the run, else its status.json), or "" for any other status."""
    if run is None or getattr(run, "running", False) or run.status not in ("failed", "diverged", "interrupted"):
        return ""
    info = getattr(run, "info", {}) or {}
    reason = getattr(run, "error", None) or info.get("error") or info.get("reason") or info.get("message")
    if reason:
        return str(reason)
    if run.status == "diverged":
        where = next((r for r in getattr(run, "extra_records", []) if r.get("kind") == "diverged"), {})
        at = f" at step {where['step']} (loss {where.get('data_loss')})" if "step" in where else ""
        return f"the loss became NaN or infinite{at}: lower the learning rate (B.1) or check the data (I.2)"
    return "the run ended without a reason on record; see its status.json"


class LiveCurves(LiveView):
    """Loss (log option) and accuracy vs epochs of the session's current run, with Start/Stop and progress."""

    epochs = param.Integer(default=10, bounds=(1, 500), doc="epochs for a new run")
    lr = param.Number(default=1e-3, bounds=(1e-6, 10.0), doc="learning rate for a new run")
    weight_decay = param.Number(default=0.0, bounds=(0.0, 1.0))
    log_loss = param.Boolean(default=True, doc="loss on a log axis (P.1: exponential decay looks like a line)")
    step_every = param.Integer(default=1, bounds=(1, None), doc="keep every k-th step loss (thinning)")
    run_id = param.String(default=None, allow_None=True, doc="the run shown")
    status = param.String(default="no run yet")
    message = param.String(default="")
    failure = param.String(default="", doc="why the run shown failed or diverged (HTML), empty otherwise")

    def __init__(self, session, fit_options: dict | None = None, **params):
        super().__init__(**params)
        self.session = session
        self.fit_options = dict(fit_options or {})
        self.run = None
        self._n_epochs_seen = 0
        self._n_steps_seen = 0
        self.epoch_source = ColumnDataSource(self._empty_epochs())
        self.step_source = ColumnDataSource({"epoch": [], "loss": []})
        self.loss_fig = {log: self._loss_figure(log) for log in (True, False)}
        self.acc_fig = self._accuracy_figure()
        self.start_button = button("▶ Start training", "success", width=150)
        self.stop_button = button("■ Stop", "danger", width=90, disabled=True)
        self.start_button.on_click(lambda e: self.start())
        self.stop_button.on_click(lambda e: self.stop())
        self.progress = pn.indicators.Progress(value=0, max=100, width=260, bar_color="info")
        self._loss_pane = PlotPane(self.loss_fig[self.log_loss], self.epoch_source, self.step_source,
                                   hint="No run yet: press Start training.")
        self._acc_pane = PlotPane(self.acc_fig, self.epoch_source)
        self._layout = None
        self._replace: set[str] = set()  # sources whose next data replaces the previous run's
        self._failure_told: str | None = None  # the run whose failure was already a notification
        if session.last_run is not None:
            self.show_run(session.last_run)

    # -- data ------------------------------------------------------------------------------------
    @staticmethod
    def _empty_epochs() -> dict:
        return {k: [] for k in ("epoch", "train_loss", "val_loss", "train_metric", "val_metric", "lo", "hi")}

    def _loss_figure(self, log: bool):
        fig = figure(height=280, width=460, title="loss vs epoch (P.1)" + (" · log" if log else ""),
                     y_axis_type="log" if log else "linear", x_axis_label="epoch", tools="pan,wheel_zoom,reset",
                     toolbar_location="right")
        fig.line("epoch", "loss", source=self.step_source, color="#90caf9", alpha=0.7, legend_label="train (steps)")
        fig.line("epoch", "train_loss", source=self.epoch_source, color="#1565c0", line_width=2,
                 legend_label="train")
        fig.scatter("epoch", "train_loss", source=self.epoch_source, color="#1565c0", size=5)
        fig.line("epoch", "val_loss", source=self.epoch_source, color="#ef6c00", line_width=2, legend_label="val")
        fig.scatter("epoch", "val_loss", source=self.epoch_source, color="#ef6c00", size=5)
        fig.legend.location = "top_right"
        fig.legend.label_text_font_size = "8pt"
        return fig

    def _accuracy_figure(self):
        metric = self.session.task.metric
        fig = figure(height=280, width=460, title=f"{metric} vs epoch, gap shaded (P.2)", x_axis_label="epoch",
                     tools="pan,wheel_zoom,reset", toolbar_location="right")
        # the shaded band between train and val makes the over/underfitting gap visible at a glance
        fig.varea(x="epoch", y1="lo", y2="hi", source=self.epoch_source, fill_color="#ffcc80", fill_alpha=0.4,
                  legend_label="gap")
        fig.line("epoch", "train_metric", source=self.epoch_source, color="#1565c0", line_width=2,
                 legend_label="train")
        fig.scatter("epoch", "train_metric", source=self.epoch_source, color="#1565c0", size=5)
        fig.line("epoch", "val_metric", source=self.epoch_source, color="#ef6c00", line_width=2, legend_label="val")
        fig.scatter("epoch", "val_metric", source=self.epoch_source, color="#ef6c00", size=5)
        self.human_span = Span(location=0, dimension="width", line_color="#2e7d32", line_dash="dashed",
                               line_width=2, visible=False)
        fig.add_layout(self.human_span)
        # the dashed line says what it is: "human 90% (n=20)" (II.6)
        self.human_label = Label(x=0, y=0, x_units="screen", text="", text_font_size="8pt", text_color="#2e7d32",
                                 visible=False, x_offset=4, y_offset=2)
        fig.add_layout(self.human_label)
        fig.legend.location = "bottom_right"
        fig.legend.label_text_font_size = "8pt"
        return fig

    # -- controls --------------------------------------------------------------------------------
    @guarded
    def start(self):
        """Train a fresh seeded model in a background thread and stream its curves."""
        if self.run is not None and self.run.running:
            notify_info("a run is already training; stop it first")
            return self.run
        run = self.session.fit(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, background=True,
                               **self.fit_options)
        self.show_run(run)
        return run

    @guarded
    def stop(self):
        """Ask the run to stop after the step in flight (the run ends as ``stopped``)."""
        if self.run is not None:
            self.run.stop()
            self.status = f"stopping {self.run.id} …"
            self.stop_button.disabled = True

    def show_run(self, run) -> None:
        """Show ``run`` (live or finished): the sources are reset and refilled by the next flush."""
        self.run = run
        self.run_id = run.id
        on_document(self._reset_sources)

    def _reset_sources(self) -> None:
        # the new run's first records replace the old ones in one go: a plot emptied in between has no
        # range to draw, and BokehJS warns each time
        self._n_epochs_seen = self._n_steps_seen = 0
        self._replace = {"steps", "epochs"}
        self.flush()

    # -- the periodic flush (document thread) ----------------------------------------------------
    def flush(self) -> None:
        """Stream the records the training thread appended since the last flush."""
        self._update_human_baseline()
        run = self.run
        if run is None:
            return
        steps = run.step_records
        n = len(steps)  # the training thread only appends: a length read is a consistent snapshot
        if n > self._n_steps_seen:
            new = steps[self._n_steps_seen:n]
            keep = [r for r in new if r["step"] % self.step_every == 0 and math.isfinite(r["loss"])]
            if keep:
                self._feed(self.step_source, "steps", {"epoch": [r["epoch"] for r in keep],
                                                       "loss": [max(r["loss"], 1e-12) for r in keep]}, STEP_ROLLOVER)
            self._n_steps_seen = n
        epochs = run.epoch_records
        m = len(epochs)
        if m > self._n_epochs_seen:
            new = epochs[self._n_epochs_seen:m]
            data = self._empty_epochs()
            for r in new:
                data["epoch"].append(r["epoch"])
                for k in ("train_loss", "val_loss", "train_metric", "val_metric"):
                    data[k].append(float(r.get(k, np.nan)))
                data["lo"].append(min(r["train_metric"], r["val_metric"]))
                data["hi"].append(max(r["train_metric"], r["val_metric"]))
            self._feed(self.epoch_source, "epochs", data, EPOCH_ROLLOVER)
            self._n_epochs_seen = m
        self._update_status()
        self._loss_pane.reveal()
        self._acc_pane.reveal()

    def _feed(self, source, name: str, data: dict, rollover: int) -> None:
        """Stream ``data`` into ``source``, or replace what it holds with it after a new run was shown."""
        if name in self._replace:
            self._replace.discard(name)
            source.data = {k: list(v)[-rollover:] for k, v in data.items()}
        else:
            source.stream(data, rollover=rollover)

    def _update_human_baseline(self) -> None:
        done = human_baseline_of(self.session)
        hb = None if done is None else float(done["accuracy"])
        if hb is not None and (not self.human_span.visible or self.human_span.location != hb):
            self.human_span.location = hb
            self.human_span.visible = True
            self.human_label.y, self.human_label.text = hb, human_baseline_label(done)
            self.human_label.visible = True

    def _update_status(self) -> None:
        run = self.run
        total = int(run.config.get("epochs", 1))
        steps_per_epoch = getattr(getattr(run, "trainer", None), "steps_per_epoch", None)
        if steps_per_epoch and run.step_records:
            done = run.step_records[-1]["epoch"]
        else:
            done = len(run.epoch_records)
        pct = int(round(100 * min(1.0, done / max(total, 1))))
        live = run.running
        if not live and run.status == "completed":
            pct = 100
        self.progress.value = pct
        self.progress.active = live
        self.start_button.disabled = live
        self.stop_button.disabled = not live or run.stop_requested
        last = run.epoch_records[-1] if run.epoch_records else None
        # a stop asked for stays "stopping" until the run has ended (the flush must not undo the click's answer)
        state = ("stopping" if run.stop_requested else "training") if live else run.status
        text = f"run {run.id} · {state} · epoch {len(run.epoch_records)}/{total}"
        if last is not None:
            text += (f" · val loss {fmt(last['val_loss'])} · val {last.get('metric', 'metric')} "
                     f"{fmt(last['val_metric'])}")
        self.status = text
        self._show_failure(run)
        self.message = gap_verdict(last["train_metric"], last["val_metric"], last["epoch"], total) if last else ""

    def _show_failure(self, run) -> None:
        """A failed or diverged run says why, inline and once as a notification (like the LR finder)."""
        reason = failure_reason(run)
        self.failure = (f"<div class='wb-curves-failure' style='color:#c62828;overflow-wrap:anywhere'>"
                        f"<b>run {html.escape(run.id)} {html.escape(run.status)}:</b> {html.escape(reason)}</div>"
                        if reason else "")
        if reason and self._failure_told != run.id:
            self._failure_told = run.id
            notify_error(f"run {run.id} {run.status}: {reason}")

    @param.depends("log_loss", watch=True)
    def _swap_scale(self):
        self._loss_pane.swap(self.loss_fig[self.log_loss])

    def __panel__(self):
        # one layout per view: the wizard shows this view in two steps, and a second layout around the
        # same Bokeh figures and widgets breaks the page ("reference already known", dead buttons)
        self.start_updates()
        if self._layout is None:
            self._layout = self._build_layout()
        return self._layout

    def _build_layout(self):
        controls = pn.Row(
            pn.widgets.IntInput.from_param(self.param.epochs, width=90),
            pn.widgets.FloatInput.from_param(self.param.lr, width=120, format="0.[000000]"),
            pn.widgets.FloatInput.from_param(self.param.weight_decay, width=100, name="weight decay"),
            pn.widgets.Checkbox.from_param(self.param.log_loss, name="log loss", margin=(28, 10)),
            self.start_button, self.stop_button, self.progress, css_classes=["wb-curves-controls"])
        status = pn.pane.Markdown(self.param.status, css_classes=["wb-curves-status"], margin=(0, 10))
        gap = pn.pane.Markdown(self.param.message, margin=(0, 10), styles={"color": "#ad4e00"})
        failure = pn.pane.HTML(self.param.failure, margin=(0, 10), sizing_mode="stretch_width")
        return pn.Column("### Live curves (P.1, P.2)", controls, status, failure, gap,
                         pn.Row(self._loss_pane, self._acc_pane), name="Live curves")
