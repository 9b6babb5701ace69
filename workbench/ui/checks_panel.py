"""ChecksPanel: run the sanity checks of part II, see verdict badges, measured vs expected, the recipe's words.

Checks run in a background thread (some train for a while); each verdict arrives as a
``check_done`` event, is buffered, and the periodic flush draws it on the document's thread. Where
a fix exists it is one button: apply the suggested output bias (II.5, ``session.apply_bias_init()``).
"""

from __future__ import annotations

import html
import threading

import panel as pn
import param

from workbench.ui.common import LiveView, badge, button, describe_error, fmt, guarded, notify_error, notify_info

QUICK = ("architecture", "data_pipeline", "init_loss", "bias_init", "regularization")  # seconds, no training

RECIPE_TEXT = {  # the recipe's own words (RECIPE.md), shown under each verdict
    "II.1": "Fix the random seed.",
    "II.4": "Verify the loss at initialisation: C-class softmax starts at log C (L.1).",
    "II.5": "Initialise well: e.g. regression targets with mean 50 → set the final bias to 50.",
    "II.7": "Train an input-independent baseline: with real inputs the loss must be lower than with zeroed ones.",
    "II.8": "Overfit one batch: regularization off, reach 100% accuracy on a few examples (L.3).",
    "II.9": "Increase capacity a little and verify the training loss goes down.",
    "II.10": "Visualise the data right before y_pred = model(x), after preprocessing.",
    "II.12": "Use backprop to chart dependencies: the gradient of example i's output must reach only input i.",
    "II.G": "Gradient check: analytic vs centered-difference gradients, relative error in double precision.",
    "G.1": "Centered difference and relative error |a − n| / max(eps, |a| + |n|), in double precision.",
    "L.2": "Adding regularization, and increasing its strength, must increase the loss.",
    "L.3": "Overfitting is necessary, not sufficient: features unrelated to the input still overfit a small set "
           "but do not generalise on the full data.",
    "III.R7": "Dropout can interact badly with batch norm.",
    "III.M1": "Start from an existing, proven model; don't be a hero.",
}


def check_names() -> list[str]:
    from workbench.checks import names

    return names()


class ChecksPanel(LiveView):
    """Pick checks, run them off the page's thread, read each verdict with its evidence and fix."""

    selected = param.ListSelector(default=list(QUICK), objects=list(QUICK))
    running = param.Boolean(default=False)

    def __init__(self, session, **params):
        names = check_names()
        super().__init__(**params)
        self.param.selected.objects = names
        self.selected = [n for n in self.selected if n in names]
        self.session = session
        self._done: list = []  # verdicts from the worker thread, drawn by flush
        self._received: set = set()  # names of the checks this run has answered (the progress bar)
        self._lock = threading.Lock()
        self._thread = None
        self._error = None
        self._total = 0
        self._cards = pn.Column(sizing_mode="stretch_width", css_classes=["wb-check-cards"])
        self.progress = pn.indicators.Progress(value=0, max=100, width=240, visible=False)
        self.run_button = button("Run selected checks", "success", width=180,
                                            css_classes=["wb-run-checks"])
        self.run_button.on_click(lambda e: self.start())
        self._handle = session.on("check_done", self._on_done)
        self.show()

    def _on_done(self, event) -> None:
        with self._lock:
            self._done.append(event.result)
            self._received.add(event.result.name)

    @guarded
    def start(self, names=None):
        """Run ``names`` (default: the selected checks) in a background thread."""
        if self.running:
            notify_info("checks are already running")
            return
        chosen = list(names or self.selected)
        if not chosen:
            raise ValueError("select at least one check")
        self.running, self._error, self._total = True, None, len(chosen)
        with self._lock:
            self._done, self._received = [], set()
        self.run_button.disabled = True
        self.progress.value, self.progress.visible = 0, True

        def work():
            try:
                self.session.checks(names=chosen)
            except Exception as e:  # noqa: BLE001 - shown by flush as a notification
                self._error = e

        self._thread = threading.Thread(target=work, name="workbench-checks", daemon=True)
        self._thread.start()

    def wait(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()

    def show(self, results=None) -> None:
        """Draw one card per verdict the session holds (most recent of each check)."""
        results = list(results) if results is not None else list(self.session.book.checks().values())
        order = {n: i for i, n in enumerate(check_names())}
        results.sort(key=lambda r: order.get(r.name, 99))
        cards = [self._card(r) for r in results]
        self._cards[:] = cards or [pn.pane.Markdown("No check has run yet. The quick ones take seconds; "
                                                    "overfit_batch, capacity and the baselines train for a while.")]

    def _card(self, r):
        text = RECIPE_TEXT.get(r.recipe, "")
        head = (f"<div class='wb-check wb-check-{html.escape(r.name)}'>{badge(r.status)} <b>{html.escape(r.name)}"
                f"</b> <small>recipe {html.escape(str(r.recipe))}</small><br>{html.escape(str(r.message))}<br>"
                f"<small><b>measured</b> {html.escape(fmt(r.measured))} · <b>expected</b> "
                f"{html.escape(fmt(r.expected))}</small>"
                + (f"<br><small><i>{html.escape(r.recipe)}: {html.escape(text)}</i></small>" if text else "")
                + "</div>")
        items = [pn.pane.HTML(head, sizing_mode="stretch_width")]
        if r.name == "bias_init" and r.status in ("warn", "fail"):
            fix = button("Apply bias init (II.5)", "warning", width=190,
                                    css_classes=["wb-fix-bias"])
            fix.on_click(lambda e: self.fix_bias())
            items.append(fix)
        return pn.Row(*items, styles={"border-bottom": "1px solid #eee"}, sizing_mode="stretch_width")

    @guarded
    def fix_bias(self):
        """Set the output bias the bias_init check suggests (II.5) and run that check again."""
        applied = self.session.apply_bias_init()
        notify_info(f"output bias of {applied.get('layer', 'the last layer')} set (II.5)")
        self.session.check("bias_init")
        self.flush()
        return applied

    def flush(self) -> None:
        with self._lock:
            new, self._done = self._done, []
        if new:
            self.show()
        if self.running:
            with self._lock:  # verdicts of this run only: the book also holds earlier ones
                n_done = len(self._received)
            self.progress.value = int(100 * min(1.0, n_done / max(1, self._total)))
            if self._thread is not None and not self._thread.is_alive():
                self.running = False
                self.run_button.disabled = False
                self.progress.visible = False
                if self._error is not None:
                    notify_error(f"the checks stopped: {describe_error(self._error)}")
                self.show()

    def __panel__(self):
        self.start_updates()
        pick = pn.widgets.MultiChoice.from_param(self.param.selected, name="checks to run", width=620)
        quick = pn.widgets.Button(label="quick set", width=90)
        every = pn.widgets.Button(label="all checks", width=90)
        quick.on_click(lambda e: setattr(self, "selected", [n for n in QUICK if n in self.param.selected.objects]))
        every.on_click(lambda e: setattr(self, "selected", list(self.param.selected.objects)))
        return pn.Column(pn.Row(pick, pn.Column(quick, every)), pn.Row(self.run_button, self.progress), self._cards,
                         name="Checks")
