"""InterpretView: the confusion matrix and the top losses of a run, linked to the data browser (recipe B.4, I.2).

The examples the model gets most wrong are either hard or mislabelled (I.2: "corrupted labels"); each
is shown with its prediction, its label and its loss, and can be marked there and then to be
excluded or relabelled in the data browser's marks. A click on a cell of the matrix shows the top
losses of that (label, prediction) pair. The evaluation (``session.interpret``, workbench/interpret.py)
runs off the page's thread and is recorded in the session's book, so a reload shows it again.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import panel as pn
import param
import torch
from bokeh.models import ColumnDataSource, LinearColorMapper
from bokeh.palettes import Blues256
from bokeh.plotting import figure
from sklearn.metrics import confusion_matrix

from workbench.errors import WorkbenchError
from workbench.interpret import class_names, predictions, require_classes, top_losses  # noqa: F401 - public here
from workbench.ui.common import (
    Background,
    LiveView,
    button,
    describe_error,
    guarded,
    image_grid,
    notify_error,
    notify_info,
    to_numpy_images,
)


class InterpretView(LiveView):
    """A run's confusion matrix and its top losses (prediction, label, loss), to exclude or relabel (B.4, I.2)."""

    run_id = param.Selector(default=None, objects=[], allow_None=True, doc="the run interpreted")
    k = param.Integer(default=16, bounds=(4, 64), doc="top losses shown")
    running = param.Boolean(default=False)

    wizard = None  # set by RecipeWizard.view: marks go to the wizard's data browser

    def __init__(self, session, **params):
        super().__init__(**params)
        self.session = session
        self.table: pd.DataFrame | None = None
        self.cell: tuple[int, int] | None = None
        self.shown = pd.DataFrame()
        self.names = class_names(session)
        self._work = Background("workbench-interpret")
        self.cm_source = ColumnDataSource({"label": [], "pred": [], "count": [], "text": [], "share": []})
        self.cm_fig = self._matrix_figure()
        self.cm_source.selected.on_change("indices", self._on_cell)
        self.button = button("Interpret the run", "success", width=160, css_classes=["wb-interpret-run"])
        self.button.on_click(lambda e: self.start())
        self.exclude_button = button("Mark all shown: exclude", "warning", width=190, disabled=True)
        self.exclude_button.on_click(lambda e: self.mark("exclude"))
        self.relabel_button = button("Mark all shown: relabel as predicted", "light", width=250, disabled=True)
        self.relabel_button.on_click(lambda e: self.mark("relabel"))
        self._summary = pn.pane.HTML("Pick a run and press <b>Interpret the run</b>.", sizing_mode="stretch_width",
                                     css_classes=["wb-interpret-summary"])
        self._grid = pn.Column(css_classes=["wb-top-losses"])
        self._layout = None
        self._runs_changed = False
        self._handle = session.on("run_end", self._on_run_end)
        self.refresh_runs()
        done = session.book.get("interpretation")
        if done is not None and done.run_id in self.param.run_id.objects and done.classes == self.names:
            self.run_id = done.run_id  # the workspace survives a reload: the book's interpretation is shown
            self.show(done.table)

    def _on_run_end(self, event) -> None:
        self._runs_changed = True  # a training thread: the run list is refreshed by flush

    def _matrix_figure(self):
        n = len(self.names)
        names = self.names or ["–"]
        fig = figure(width=max(300, min(460, 40 * n + 120)), height=max(280, min(440, 40 * n + 100)),
                     x_range=names, y_range=list(reversed(names)), x_axis_label="prediction", y_axis_label="label",
                     title="confusion matrix (click a cell: its top losses)", tools="tap,hover",
                     tooltips=[("label", "@label"), ("prediction", "@pred"), ("examples", "@count")],
                     toolbar_location=None, css_classes=["wb-confusion"])
        self.mapper = LinearColorMapper(palette=list(reversed(Blues256)), low=0, high=1)
        fig.rect("pred", "label", 0.95, 0.95, source=self.cm_source, line_color=None,
                 fill_color={"field": "share", "transform": self.mapper})
        fig.text("pred", "label", text="text", source=self.cm_source, text_align="center", text_baseline="middle",
                 text_font_size="8pt")
        fig.xaxis.major_label_orientation = 0.8 if max((len(s) for s in names), default=1) > 3 else 0
        fig.grid.visible = False
        return fig

    def refresh_runs(self) -> None:
        """The finished runs to choose from, the last one by default."""
        runs = self.session.runs()
        ids = [str(r["id"]) for r in runs.to_dict("records") if r.get("status") in ("completed", "stopped")]
        self.param.run_id.objects = ids
        if self.run_id not in ids:
            self.run_id = ids[-1] if ids else None

    @guarded
    def start(self):
        """Interpret the chosen run (``session.interpret``) on the evaluation split in a background thread."""
        if self.running:
            return
        require_classes(self.session)
        run = self.session.run(self.run_id) if self.run_id else None
        if run is None:
            raise WorkbenchError("no finished run to interpret: train one first (Live curves)")
        self.running, self.button.disabled = True, True
        self._summary.object = (f"evaluating run {html.escape(run.id)} on the "
                                f"{html.escape(self.session.eval_split)} split …")
        self._work.start(lambda: self.session.interpret(run))

    def wait(self, timeout=None) -> None:
        self._work.join(timeout)
        self.flush()

    def flush(self) -> None:
        if self._runs_changed:
            self._runs_changed = False
            self.refresh_runs()
        outcome = self._work.take() if self.running else None
        if outcome is None:
            return
        self.running, self.button.disabled = False, False
        kind, value = outcome
        if kind == "error":
            self._summary.object = f"<span style='color:#c62828'>{html.escape(describe_error(value))}</span>"
            notify_error(f"interpretation failed: {describe_error(value)}")
            return
        self.show(value.table)

    def show(self, table: pd.DataFrame) -> None:
        """Draw the matrix and the top losses of ``table`` (from :func:`predictions`)."""
        self.table, self.cell = table, None
        n = len(self.names)
        cm = confusion_matrix(table["label"], table["pred"], labels=list(range(n)))
        rows = cm.sum(1, keepdims=True).clip(min=1)
        li, pi = np.meshgrid(range(n), range(n), indexing="ij")
        self.cm_source.data = {"label": [self.names[i] for i in li.ravel()],
                               "pred": [self.names[j] for j in pi.ravel()],
                               "count": cm.ravel().tolist(), "text": [str(c) if c else "" for c in cm.ravel()],
                               "share": (cm / rows).ravel().tolist()}
        acc = float(np.trace(cm)) / max(1, cm.sum())
        wrong = int(cm.sum() - np.trace(cm))
        self._summary.object = (f"<b>{html.escape(str(self.run_id))}</b> on the {html.escape(self.session.eval_split)}"
                                f" split: accuracy <b>{acc:.4f}</b>, {wrong} of {int(cm.sum())} wrong. The top losses"
                                " are hard or mislabelled examples: exclude or relabel them in the data browser (I.2).")
        self.show_top()

    def _on_cell(self, attr, old, new) -> None:
        if new and self.table is not None:
            i = new[0]
            self.cell = (self.names.index(self.cm_source.data["label"][i]),
                         self.names.index(self.cm_source.data["pred"][i]))
            self.show_top()

    def show_top(self) -> None:
        """The top losses (of the clicked cell, if any) as thumbnails: prediction (p), label, loss."""
        label, pred = self.cell if self.cell else (None, None)
        self.shown = top_losses(self.table, self.k, label, pred)
        has = len(self.shown) > 0
        self.exclude_button.disabled = self.relabel_button.disabled = not has
        if not has:
            self._grid[:] = [pn.pane.Markdown("*No example in this cell.*")]
            return
        x = torch.stack([torch.as_tensor(self.session.split(s)[int(i)][0]).float()
                         for s, i in zip(self.shown["split"], self.shown["index"], strict=True)])
        images = to_numpy_images(self.session.preprocessing.denormalize(x)) if x.dim() in (3, 4) else None
        labels = [f"{self.names[r.pred]} {r.p_pred:.2f} / {self.names[r.label]} · {r.loss:.2f}"
                  for r in self.shown.itertuples()]
        title = "top losses: prediction p / label · loss" + (f" (label {self.names[label]}, predicted "
                                                             f"{self.names[pred]})" if self.cell else "")
        if images is None:
            self._grid[:] = [pn.pane.Markdown("\n".join(f"- #{int(i)}: {t}" for i, t in
                                                        zip(self.shown["index"], labels, strict=True)))]
            return
        fig, _ = image_grid(images, labels, cols=4, tile=100, title=title,
                            colors=["#c62828" if r.pred != r.label else "#2e7d32" for r in self.shown.itertuples()])
        self._grid[:] = [pn.pane.Bokeh(fig)]

    @guarded
    def mark(self, action: str) -> int:
        """Mark the examples shown to be excluded, or relabelled as predicted, in the data browser (I.2)."""
        if self.shown is None or not len(self.shown):
            raise WorkbenchError("nothing shown to mark: interpret a run first")
        if self.wizard is None:
            raise WorkbenchError("marks go to the wizard's data browser: open this view in wb.ui.Wizard")
        browser = self.wizard.view("DataBrowser")
        for r in self.shown.itertuples():
            new = self.names[r.pred] if action == "relabel" else None
            browser.marks[(r.split, int(r.index))] = {"action": action, "new_label": new}
        browser.render()
        notify_info(f"{len(self.shown)} examples marked '{action}' in the data browser (export them there)")
        return len(self.shown)

    def __panel__(self):
        self.start_updates()
        if self._layout is None:  # one layout per view (see LiveCurves.__panel__)
            controls = pn.Row(pn.widgets.Select.from_param(self.param.run_id, name="run", width=300),
                              pn.widgets.IntInput.from_param(self.param.k, name="top losses", width=90), self.button,
                              css_classes=["wb-interpret-controls"])
            marks = pn.Row(self.exclude_button, self.relabel_button)
            self._layout = pn.Column("### Confusion matrix and top losses (B.4, I.2)", controls, self._summary,
                                     pn.Row(pn.pane.Bokeh(self.cm_fig), pn.Column(self._grid, marks)),
                                     name="Interpret")
        return self._layout
