"""RecipeWizard: the recipe as steps I → IV, each with its views, a status from the session and a "Next" card.

Statuses come from the session's result book (workbench/book.py) and its runs: a step turns green
only when its work is done (every selected check run, a run you trained, the whole human-baseline
sample answered). One can jump to any step; the "Next" card names the first failing check, else the
first step not done, in the stepper's order (UI.md).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import panel as pn
import param

from workbench.chosen import last_user_run
from workbench.ui.common import (
    COLOR,
    STATUS_COLORS,
    STATUS_ICONS,
    View,
    backend,
    button,
    guarded,
    human_baseline_of,
    quiet_periodic,
)
from workbench.verdict import worst

# the part II checks in recipe order: the first failing one is the "Next" action
CHECK_ORDER = ("data_pipeline", "gradient_flow", "init_loss", "bias_init", "input_independent", "overfit_batch",
               "capacity", "batch_dependency", "causality", "gradient_check", "regularization", "determinism",
               "architecture", "generalization")
CHECK_STEP = {"data_pipeline": "II.10", "gradient_flow": "II.12", "init_loss": "II.4", "bias_init": "II.5",
              "input_independent": "II.7", "overfit_batch": "II.8", "capacity": "II.9", "batch_dependency": "II.12",
              "causality": "II.12", "gradient_check": "G.1", "regularization": "L.2", "determinism": "II.1",
              "architecture": "III.M1", "generalization": "L.3"}


@dataclass
class Step:
    """One place in the stepper: a key, its title with the recipe IDs, the backend it needs, its views."""

    key: str
    part: str
    title: str
    recipe: str
    needs: tuple[str, ...] = ()
    views: tuple[str, ...] = field(default_factory=tuple)


STEPS = (
    Step("browse", "I", "Browse the data", "I.1, I.3, II.6", (), ("DataBrowser",)),
    Step("audit", "I", "Audit: duplicates, corruption, labels", "I.2", ("workbench.data.audit",), ("AuditView",)),
    Step("batch", "II", "The batch before model(x)", "II.10", (), ("BatchViewer",)),
    Step("checks", "II", "Sanity checks", "II.1-II.12, G, L", ("workbench.checks",), ("ChecksPanel",)),
    Step("tune", "III", "LR finder and search", "B.1-B.3", ("workbench.tune.lr_find",), ("TuneView",)),
    Step("train", "III", "Live curves", "P.1, P.2", (), ("LiveCurves",)),
    Step("instruments", "III", "Instruments: filters, wiggle, histograms, update ratio",
         "P.3-P.5, II.11, III.R11", ("workbench.instruments",), ("LiveCurves", "InstrumentsView")),
    Step("diagnose", "III", "Diagnosis of the curves", "B.4", ("workbench.tune.diagnose",), ("DiagnosisView",)),
    Step("runs", "III", "Runs side by side, the search's trials", "B.2-B.6, III.M3", (), ("RunsView",)),
    Step("interpret", "III", "Confusion matrix and top losses", "B.4, I.2", (), ("InterpretView",)),
    Step("ensembles", "IV", "Ensembles, EMA, distillation", "IV.1-IV.5", ("workbench.ensemble",),
         ("EnsembleView",)),
    Step("export", "·", "Export the report", "", (), ("ExportView",)),
)
# a step's label reads as a list item: left-aligned, wrapped onto a second line rather than cut at the edge
STEP_CSS = ".bk-btn { text-align: left; white-space: normal; overflow-wrap: anywhere; height: auto; }"
PARTS = {"I": "I · Become one with the data", "II": "II · Skeleton and sanity checks",
         "III": "III · Iterate on the model", "IV": "IV · Squeeze out the juice", "·": "Report"}


VIEW_MODULES = {"DataBrowser": "workbench.ui.data_browser", "AuditView": "workbench.ui.audit_view",
                "BatchViewer": "workbench.ui.batch", "ChecksPanel": "workbench.ui.checks_panel",
                "TuneView": "workbench.ui.tune", "LiveCurves": "workbench.ui.curves",
                "InstrumentsView": "workbench.ui.instruments", "DiagnosisView": "workbench.ui.tune",
                "EnsembleView": "workbench.ui.ensembles", "ExportView": "workbench.ui.export",
                "RunsView": "workbench.ui.runs_view", "InterpretView": "workbench.ui.interpret"}


def available_steps() -> list[Step]:
    """The steps whose backends have landed and import; the others are left out, never faked."""
    return [s for s in STEPS if all(backend(m) for m in s.needs)
            and all(backend(VIEW_MODULES[v]) for v in s.views)]


def applicable_checks(session) -> list[str]:
    """The part II checks that apply to the session's task, in the order ``checks()`` runs them."""
    from workbench.checks import REGISTRY, names

    task = session.task.name
    return [n for n in names() if REGISTRY[n].tasks is None or task in REGISTRY[n].tasks]


def step_status(session, key: str, selected=None) -> str:
    """A step's status from the session's book: a verdict ("pass", "warn", "fail"), "partial" while
    its work is half done, "running", or "not run". ``selected``: the checks the "Sanity checks"
    step asks for (default: every check that applies)."""
    book = session.book
    if key == "browse":
        if human_baseline_of(session) is not None:
            return "pass"
        return "partial" if (book.get("human_baseline") or {}).get("n") else "not run"
    if key == "audit":
        rep = book.get("audit")
        if rep is None:
            return "not run"
        issues = getattr(rep, "issues", None)
        return "warn" if issues is not None and len(issues) else "pass"
    if key == "batch":
        r = book.check("data_pipeline")
        return r.status if r is not None else "not run"
    if key == "checks":
        return _checks_status(book.checks(), selected or applicable_checks(session))
    if key == "tune":
        return "pass" if book.has("lr_find") or book.has("search") else "not run"
    if key == "train":
        run = last_user_run(session, completed=False)
        if run is None:
            return "not run"
        if run.running:
            return "running"
        return {"completed": "pass", "stopped": "warn"}.get(run.status, "fail")
    if key == "instruments":
        return "pass" if getattr(session, "instruments", None) else "not run"
    if key == "diagnose":
        diag = book.get("diagnosis")
        if diag is None:
            return "not run"
        return worst(f.status for f in diag.findings if f.status != "skip") or "pass"
    if key == "runs":  # side by side needs two finished runs (a search's trials count)
        n = _finished_runs(session)
        return "pass" if n >= 2 else "partial" if n == 1 else "not run"
    if key == "interpret":
        return "pass" if book.has("interpretation") else "not run"
    if key == "ensembles":
        return "pass" if book.has("ensemble") else "not run"
    return "not run"


def _finished_runs(session) -> int:
    return sum(s in ("completed", "stopped") for s in session.store.statuses().values())


def _checks_status(verdicts: dict, wanted) -> str:
    """A failure shows at once; otherwise the step is done only when every wanted check has a verdict."""
    if not verdicts:
        return "not run"
    found = worst(v.status for v in verdicts.values())
    if found in ("fail", "error"):
        return "fail"
    if any(n not in verdicts for n in wanted):
        return "partial"
    return "warn" if found == "warn" else "pass"


UNDONE = ("not run", "partial")


def next_action(session, steps=None, selected=None) -> tuple[str, str]:
    """(step key, sentence): the first failing check, else the first step in the stepper's order whose
    work is not done (UI.md's "Next" card: it never skips a step)."""
    keys = [s.key for s in (steps or available_steps())]
    ordered = sorted(session.book.checks().values(),
                     key=lambda r: CHECK_ORDER.index(r.name) if r.name in CHECK_ORDER else 99)
    for r in ordered:
        if getattr(r, "status", None) in ("fail", "error"):
            where = "batch" if r.name == "data_pipeline" and "batch" in keys else "checks"
            step = getattr(r, "recipe", None) or CHECK_STEP.get(r.name, "II")
            return where, f"**{r.name}** ({step}) {r.status}ed: {getattr(r, 'message', '')}"
    advice = {
        "audit": "Audit the data for duplicates, corrupt images and label issues (I.2).",
        "browse": "Browse the data and label test images yourself, all of the sample: the human baseline "
                  "(I.1, II.6).",
        "batch": "Look at the batch right before model(x) and run the data_pipeline check (II.10).",
        "checks": "Run the sanity checks of part II: loss at init, overfit one batch, input-independent baseline.",
        "tune": "Find a learning rate that makes the loss fall within ~100 iterations (B.1).",
        "train": "Train and watch the loss and accuracy curves (P.1, P.2).",
        "instruments": "Attach the instruments: first-layer filters, wiggle, update ratio (P.3-P.5, II.11).",
        "diagnose": "Diagnose the last run's curves: over- or underfitting, plateau, divergence (B.4).",
        "runs": "Train a second run that changes one thing and put the runs side by side (B.2-B.6, III.M3).",
        "interpret": "Interpret the last run: its confusion matrix and top losses show hard or mislabelled "
                     "examples (B.4, I.2).",
        "ensembles": "Squeeze out the juice: an ensemble of seeds or an EMA of the weights (IV).",
    }
    for key in keys:
        if key in advice and step_status(session, key, selected) in UNDONE:
            return key, advice[key]
    return "export", "Every step has been visited: export the report and share it."


class RecipeWizard(View):
    """The recipe I → IV as a stepper with each step's views, statuses and the "Next" card."""

    step = param.Selector(default="browse", objects=[s.key for s in STEPS])
    refresh_counter = param.Integer(default=0, doc="bumped to redraw the statuses")

    def __init__(self, session, views: dict | None = None, **params):
        self.steps = available_steps()
        super().__init__(**params)
        self.param.step.objects = [s.key for s in self.steps]
        if self.step not in self.param.step.objects:
            self.step = self.steps[0].key
        self.session = session
        self.views: dict[str, object] = dict(views or {})
        self._content = pn.Column(sizing_mode="stretch_width")
        self._stepper = pn.Column(width=290)
        self._next = pn.Column(sizing_mode="stretch_width")
        self._watchers = [session.on(e, self._on_session_change) for e in ("result_done", "run_end")]
        self._dirty = False
        self._periodic = None
        self._render_stepper()
        self._render_next()
        self._render_content()

    # -- views, built on first visit -------------------------------------------------------------
    def view(self, name: str):
        """The wizard's instance of a view class (e.g. ``"LiveCurves"``), built on first use."""
        if name not in self.views:
            from workbench import ui

            self.views[name] = getattr(ui, name)(self.session)
            if hasattr(self.views[name], "wizard"):  # TuneView sets the LR of Live curves, redraws statuses
                self.views[name].wizard = self
        return self.views[name]

    def _on_session_change(self, event) -> None:
        # may come from a training or check thread: only mark; the periodic callback redraws
        self._dirty = True

    def tick(self) -> None:
        """Redraw statuses when the session changed (document thread)."""
        if self._dirty:
            self._dirty = False
            self.refresh()

    def refresh(self) -> None:
        self._render_stepper()
        self._render_next()
        self.refresh_counter += 1

    # -- rendering -------------------------------------------------------------------------------
    def _render_stepper(self) -> None:
        """Build the stepper once; later calls only update labels, colours and the highlighted step."""
        if not getattr(self, "_step_buttons", None):
            self._step_buttons, items, part = {}, [], None
            for s in self.steps:
                if s.part != part:
                    part = s.part
                    items.append(pn.pane.HTML(f"<b>{html.escape(PARTS[part])}</b>", margin=(10, 5, 0, 5)))
                step_b = pn.widgets.Button(label=s.title, width=270, margin=(2, 5), css_classes=[f"wb-step-{s.key}"],
                                           align="start", stylesheets=[STEP_CSS])
                step_b.on_click(lambda e, k=s.key: self.go(k))
                self._step_buttons[s.key] = step_b
                items.append(step_b)
            if "checks" in self.param.step.objects:
                run_all = button("Run all checks", "success", width=270, margin=(12, 5),
                                 css_classes=["wb-run-all-checks"])
                run_all.on_click(lambda e: self.run_all_checks())
                items.append(run_all)
            self._stepper[:] = items
        for s in self.steps:
            status = step_status(self.session, s.key, self._selected_checks())
            step_b = self._step_buttons[s.key]
            step_b.label = f"{STATUS_ICONS.get(status, '○')} {s.title}" + (f" ({s.recipe})" if s.recipe else "")
            setattr(step_b, COLOR, "primary" if s.key == self.step else "light")
            step_b.styles = {} if s.key == self.step else {"color": STATUS_COLORS.get(status, "#333")}

    def _render_next(self) -> None:
        key, text = next_action(self.session, self.steps, self._selected_checks())
        open_b = button("Open", "primary", width=80, css_classes=["wb-next-open"])
        open_b.on_click(lambda e, k=key: self.go(k))
        self._next[:] = [pn.Row(pn.pane.Markdown(f"**Next:** {text}", sizing_mode="stretch_width"), open_b,
                                styles={"background": "#e3f2fd", "border-radius": "6px"}, css_classes=["wb-next"],
                                sizing_mode="stretch_width")]
        self.next_key = key

    def _selected_checks(self):
        """The checks the ChecksPanel asks for, once it is open; else None (every applicable check)."""
        panel = self.views.get("ChecksPanel")
        return list(panel.selected) if panel is not None and panel.selected else None

    def _render_content(self) -> None:
        step = next(s for s in self.steps if s.key == self.step)
        views = [self.view(name) for name in step.views]
        for v in views:  # e.g. the browser picks up an audit that ran in another step
            if hasattr(v, "sync_audit"):
                v.sync_audit()
        self._content[:] = [pn.pane.Markdown(f"## {step.title}" + (f" · recipe {step.recipe}" if step.recipe
                                                                      else "")), *views]

    @param.depends("step", watch=True)
    def _on_step(self):
        self._render_stepper()
        self._render_content()

    @guarded
    def go(self, key: str) -> None:
        """Jump to a step (any step, any time)."""
        self.step = key

    @guarded
    def run_all_checks(self):
        """Open the checks step and run every applicable check there, off the page's thread (ChecksPanel)."""
        self.go("checks")
        panel = self.view("ChecksPanel")
        panel.selected = [n for n in applicable_checks(self.session) if n in panel.param.selected.objects]
        panel.start()
        return panel

    def stepper(self):
        return self._stepper

    def main(self):
        return pn.Column(self._next, self._content, sizing_mode="stretch_width")

    def start_updates(self) -> None:
        if self._periodic is None:
            self._periodic = quiet_periodic(self.tick, 500)

    def __panel__(self):
        self.start_updates()
        return pn.Row(self._stepper, self.main(), sizing_mode="stretch_width")
