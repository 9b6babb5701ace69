"""BatchViewer: the batch exactly as it enters ``model(x)``, and de-normalised, with per-channel stats (II.10).

The batch is taken the way the Trainer takes it: the session's seeded train loader, then the
run's augmentation when switched on. Shown twice: min-max scaled (what the model sees, whatever the
range) and de-normalised through ``session.preprocessing.denormalize`` (what a person should see).
"""

from __future__ import annotations

import pandas as pd
import panel as pn
import param
import torch

from workbench.ui.common import View, backend, badge, button, fmt, guarded, image_grid, minmax, to_numpy_images


def channel_stats(x: torch.Tensor) -> pd.DataFrame:
    """Mean, std, min and max per channel of a batch (N, C, ...): the numbers II.10 asks to look at."""
    x = torch.as_tensor(x).detach().float()
    if x.dim() < 2:
        x = x.view(-1, 1)
    c = x.shape[1] if x.dim() >= 3 else 1
    flat = x.transpose(0, 1).reshape(c, -1) if x.dim() >= 3 else x.reshape(1, -1)
    return pd.DataFrame({"channel": range(c), "mean": flat.mean(1).tolist(), "std": flat.std(1).tolist(),
                         "min": flat.min(1).values.tolist(), "max": flat.max(1).values.tolist()})


class BatchViewer(View):
    """The batch right before ``y_pred = model(x)``: as the model sees it and de-normalised, with stats."""

    split = param.Selector(default="train", objects=["train", "test"])
    augment = param.Boolean(default=False, doc="apply the training augmentation (off by default: II.2)")
    n = param.Integer(default=32, bounds=(1, 256), doc="examples shown")
    verdict = param.String(default="", doc="the data_pipeline check's verdict, as HTML")

    def __init__(self, session, **params):
        splits = [s for s in ("train", "val", "test") if getattr(session, s, None) is not None]
        super().__init__(**params)
        self.param.split.objects = splits
        self.session = session
        self.x = self.y = None
        self.stats = pd.DataFrame()
        self._grid_pane = pn.Row()
        self._stats_pane = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=140,
                                                width=420)
        self._info = pn.pane.Markdown("")
        self.refresh()

    def take(self):
        """The batch as the Trainer would feed it: the seeded loader's first batch, augmented when asked."""
        from workbench.train import make_augment

        loader = self.session.loader(self.split, shuffle=self.split == "train", batch_size=self.n)
        x, y = next(iter(loader))
        if self.augment and self.split == "train":
            x = make_augment(True)(x)
        return x, y

    @param.depends("split", "augment", "n", watch=True)
    @guarded
    def refresh(self):
        """Take the batch again and redraw the grids and the statistics."""
        x, y = self.take()
        self.x, self.y = x, y
        self.stats = channel_stats(x)
        self._stats_pane.value = self.stats.round(4)
        if x.dim() in (3, 4) and x.is_floating_point():
            classes = getattr(self.session.train, "classes", None)
            labels = ([classes[int(v)] if classes else str(int(v)) for v in y.tolist()] if y.dim() == 1
                      else [""] * len(x))
            # 12 tiles of 52 px a row: room for a class name under each thumbnail
            seen, _ = image_grid(to_numpy_images(minmax(x)), labels, cols=12, tile=52,
                                 title="as model(x) sees it (min-max scaled per image)")
            denorm = self.session.preprocessing.denormalize(x)
            person, _ = image_grid(to_numpy_images(denorm), labels, cols=12, tile=52,
                                   title="de-normalised (what a person should recognise)")
            self._grid_pane[:] = [pn.Column(pn.pane.Bokeh(seen), pn.pane.Bokeh(person))]
        else:
            self._grid_pane[:] = [pn.pane.Markdown(f"inputs of shape {tuple(x.shape)}, dtype {x.dtype}: "
                                                   f"first example `{x[0].flatten()[:16].tolist()}`")]
        prep = self.session.preprocessing
        self._info.object = (f"**shape** `{tuple(x.shape)}` · **dtype** `{x.dtype}` · labels `{y[:16].tolist()}` · "
                             f"**preprocessing**: {'; '.join(prep.steps) or 'none recorded'}"
                             + (f" · mean {prep.mean} std {prep.std}" if prep.mean is not None else ""))
        self._load_verdict()

    def _load_verdict(self) -> None:
        result = self.session.results.get("data_pipeline")
        self.verdict = _result_html(result) if result is not None else ""

    @guarded
    def run_check(self):
        """Run the data_pipeline check (II.10) and show its verdict."""
        result = self.session.check("data_pipeline")
        self.verdict = _result_html(result)
        return result

    def __panel__(self):
        if getattr(self, "_layout", None) is None:  # one layout per view (see LiveCurves.__panel__)
            self._layout = self._build_layout()
        return self._layout

    def _build_layout(self):
        controls = pn.Row(pn.widgets.Select.from_param(self.param.split, width=100),
                          pn.widgets.IntSlider.from_param(self.param.n, width=180),
                          pn.widgets.Checkbox.from_param(self.param.augment, name="augmentation", margin=(28, 10)))
        items = [controls]
        if backend("workbench.checks"):
            check_b = button("Run the data_pipeline check", "primary", width=220)
            check_b.on_click(lambda e: self.run_check())
            items.append(pn.Row(check_b, pn.pane.HTML(self.param.verdict)))
        return pn.Column(pn.pane.Markdown("### The batch right before model(x) (II.10)", css_classes=["wb-batch"]),
                         *items, self._info,
                         pn.Row(self._grid_pane, pn.Column("**per-channel statistics**", self._stats_pane)),
                         name="Batch")


def _result_html(result) -> str:
    status = getattr(result, "status", "not run")
    return (f"{badge(status, f'{result.name}: {status}')} measured {fmt(getattr(result, 'measured', None))}, "
            f"expected {fmt(getattr(result, 'expected', None))} — {getattr(result, 'message', '')}")
