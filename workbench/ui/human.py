"""HumanBaseline: label a random sample of test images yourself; your accuracy is the human level (II.6).

Every answer is recorded in the session's book (``human_baseline``: accuracy, n of total); once all
``n`` images are answered the accuracy becomes ``session.human_baseline``, which LiveCurves and the
report draw as a labelled dashed line on the accuracy plot.
Labelling them also answers I.3's question: does it take local features or global context?
"""

from __future__ import annotations

import numpy as np
import panel as pn
import param
import torch
from bokeh.plotting import figure

from workbench.errors import DataError
from workbench.ui.common import View, guarded, rgba, to_numpy_images


class HumanBaseline(View):
    """Shows one test image at a time; answer with the class buttons; accuracy so far is the baseline."""

    n = param.Integer(default=20, bounds=(1, 1000), doc="test images to label")
    position = param.Integer(default=0, doc="how many have been answered")
    accuracy = param.Number(default=None, allow_None=True)

    def __init__(self, session, split: str | None = None, **params):
        super().__init__(**params)
        self.session = session
        self.split = split or ("test" if session.test is not None else session.eval_split)
        classes = getattr(session.train, "classes", None)
        self.class_names = [str(c) for c in classes] if classes else [str(i) for i in range(session.num_classes or 0)]
        self.answers: list[dict] = []
        self._image = pn.Column()
        self._status = pn.pane.Markdown("", css_classes=["wb-human-status"])
        self.sample()
        self._resume()

    def _resume(self) -> None:
        """Take up the answers the book holds for this very sample (a reloaded page continues, not restarts)."""
        hb = self.session.book.get("human_baseline") or {}
        answers = list(hb.get("answers") or [])
        if hb.get("split") != self.split or not answers or len(answers) > len(self.indices):
            return
        if [a["index"] for a in answers] != self.indices[:len(answers)]:
            return
        self.answers, self.position = answers, len(answers)
        self.accuracy = float(np.mean([a["correct"] for a in answers]))
        self._draw()

    @guarded
    def sample(self):
        """A fresh random sample (seeded by the session's seed, so it is the same on every visit)."""
        if self.session.task.name != "classification":
            raise DataError("the human baseline mode needs a classification task")
        n_total = len(self.session.split(self.split))
        rng = np.random.default_rng(self.session.seed)
        self.indices = rng.choice(n_total, size=min(self.n, n_total), replace=False).tolist()
        self.answers = []
        self.position = 0
        self.accuracy = None
        self._draw()

    @property
    def current(self) -> int | None:
        return self.indices[self.position] if self.position < len(self.indices) else None

    @guarded
    def answer(self, label) -> None:
        """Record the person's label for the current image and move on."""
        i = self.current
        if i is None:
            raise DataError("every sampled image has been labelled; press 'New sample' to start again")
        label = self.class_names.index(str(label)) if str(label) in self.class_names else int(label)
        truth = int(torch.as_tensor(self.session.split(self.split)[i][1]))
        self.answers.append({"index": i, "answer": label, "truth": truth, "correct": label == truth})
        self.position += 1
        self.accuracy = float(np.mean([a["correct"] for a in self.answers]))
        complete = len(self.answers) >= len(self.indices)
        if complete:  # a baseline from a few clicks would be drawn as if it were one: only the full count counts
            self.session.human_baseline = self.accuracy
        self.session.book.record("human_baseline", {
            "accuracy": self.accuracy, "n": len(self.answers), "total": len(self.indices), "complete": complete,
            "split": self.split, "answers": list(self.answers), "recipe": "II.6"})
        self._draw()

    def _draw(self) -> None:
        i = self.current
        done = len(self.answers)
        acc = f"{self.accuracy:.0%}" if self.accuracy is not None else "–"
        if i is None:
            self._status.object = (f"Done: **{acc}** on {done} {self.split} images — kept as the human baseline "
                                   "(II.6), drawn on the accuracy plot.")
            self._image[:] = []
            return
        x = self.session.preprocessing.denormalize(torch.as_tensor(self.session.split(self.split)[i][0]).float())
        img = to_numpy_images(x.unsqueeze(0))[0]
        fig = figure(width=180, height=180, x_range=(0, 1), y_range=(0, 1), toolbar_location=None, tools="")
        fig.image_rgba(image=[rgba(img)], x=0, y=0, dw=1, dh=1)
        fig.axis.visible = False
        fig.grid.visible = False
        self._image[:] = [pn.pane.Bokeh(fig)]
        self._status.object = f"Image {done + 1}/{len(self.indices)} · your accuracy so far **{acc}**"

    def __panel__(self):
        buttons = []
        for name in self.class_names:
            b = pn.widgets.Button(label=name, width=44, css_classes=["wb-human-answer"])
            b.on_click(lambda e, c=name: self.answer(c))
            buttons.append(b)
        again = pn.widgets.Button(label="New sample", width=110)
        again.on_click(lambda e: self.sample())
        return pn.Column("Which class is it? Your accuracy on these is the human level to beat (II.6).",
                         self._status, self._image, pn.FlexBox(*buttons), again)
