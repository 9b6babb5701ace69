"""DataBrowser: the data as a paged image grid with the audit's findings, class counts and marks (I.1-I.3).

Filter by class and by audit issue, sort by issue score, duplicate sets side by side (one row per
set), a class-count chart (I.2: imbalance), mark examples to exclude or relabel and export the
list, and a resolution slider that shows the images downsampled (I.3: how much detail matters).
The human-baseline mode (II.6) lives in :class:`HumanBaseline`.
"""

from __future__ import annotations

import html
import io

import numpy as np
import pandas as pd
import panel as pn
import param
import torch
import torch.nn.functional as F
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from bokeh.transform import dodge

from workbench.errors import DataError
from workbench.ui.common import (
    Background,
    LiveView,
    backend,
    button,
    describe_error,
    guarded,
    notify_error,
    notify_info,
    rgba,
    to_numpy_images,
)
from workbench.ui.human import HumanBaseline

ALL = "all"
GROUPED = ("duplicate", "leak")  # issue kinds whose examples come in sets: shown one set per row


def _classes(session) -> list[str]:
    classes = getattr(session.train, "classes", None)
    n = session.num_classes or 0
    return [str(c) for c in classes] if classes else [str(i) for i in range(n)]


def class_counts(session) -> pd.DataFrame:
    """Examples per class and split (I.2: imbalance and split shift)."""
    names = _classes(session)
    rows = {}
    for split in ("train", "val", "test"):
        if getattr(session, split, None) is None:
            continue
        y = session.labels(split)
        if y.dim() != 1 or y.is_floating_point():
            continue
        rows[split] = np.bincount(y.numpy(), minlength=len(names))[:len(names)]
    return pd.DataFrame(rows, index=pd.Index(names, name="class")).reset_index()


class DataBrowser(LiveView):
    """A paged grid of any split with labels, issue filters, duplicate sets, class counts and marks."""

    split = param.Selector(default="train", objects=["train", "test"])
    label = param.Selector(default=ALL, objects=[ALL], doc="show one class only")
    issue = param.Selector(default=ALL, objects=[ALL], doc="show one audit issue type only (I.2)")
    sort_by = param.Selector(default="index", objects=["index", "score"], doc="score: the audit's issue score")
    page = param.Integer(default=0, bounds=(0, None))
    page_size = param.Integer(default=48, bounds=(4, 400))
    resolution = param.Integer(default=0, bounds=(0, None), doc="downsample to this many pixels high (0: full)")
    selected = param.List(default=[], doc="(split, index) pairs picked in the grid")
    relabel_to = param.Selector(default=None, objects=[None], allow_None=True)

    def __init__(self, session, **params):
        super().__init__(**params)
        self.session = session
        splits = [s for s in ("train", "val", "test") if getattr(session, s, None) is not None]
        self.param.split.objects = splits
        names = _classes(session)
        self.param.label.objects = [ALL, *names]
        self.param.relabel_to.objects = [None, *names]
        self.class_names = names
        h = session.input_shape[-2] if len(session.input_shape) >= 2 else 1
        self.native = int(h)
        self.param.resolution.bounds = (0, self.native)
        self.marks: dict[tuple[str, int], dict] = {}
        self.items: pd.DataFrame = pd.DataFrame()
        self.page_items: pd.DataFrame = pd.DataFrame()
        self.source = None
        self.unreadable: dict[int, str] = {}  # position on the page -> why the example could not be read
        self._grid = pn.Column()
        self._info = pn.pane.Markdown("", css_classes=["wb-browser-info"])
        self._counts = pn.pane.Bokeh(self._counts_figure())
        self.human = HumanBaseline(session)
        self.download = pn.widgets.FileDownload(callback=self._export_bytes, filename="marks.csv",
                                                label="Export marks (CSV)", width=170)
        self.auditing = False
        self._audit_work = Background("workbench-browser-audit")
        self._audit_button = None
        self._load_issue_types()
        self.render()

    # -- the audit's findings --------------------------------------------------------------------
    @property
    def issues(self) -> pd.DataFrame | None:
        rep = (getattr(self.session, "reports", {}) or {}).get("audit")
        df = getattr(rep, "issues", None)
        if not isinstance(df, pd.DataFrame):
            return None
        return df[df["index"] >= 0]  # index -1: a finding about a whole split, not an example to show

    def _load_issue_types(self) -> None:
        df = self.issues
        kinds = sorted(df["issue"].astype(str).unique()) if df is not None and len(df) else []
        self.param.issue.objects = [ALL, *kinds]
        if self.issue not in self.param.issue.objects:
            self.issue = ALL

    @guarded
    def run_audit(self, background: bool = False):
        """Run the data audit (I.2) and offer its issue types as filters.

        ``background=True`` (the button) audits in a worker thread; ``flush()`` (the periodic callback,
        on the document's thread) then shows the findings. Otherwise it returns the report.
        """
        from workbench.ui.audit_view import run_audit

        if background:
            if self.auditing:
                return None
            self.auditing = True
            self._set_audit_button()
            self._audit_work.start(lambda: run_audit(self.session))
            return None
        report = run_audit(self.session)
        self.sync_audit()
        notify_info(f"audit done: {len(report.issues)} findings")
        return report

    def wait(self, timeout=None) -> None:
        """Block until a background audit is done and show it (tests, scripts)."""
        self._audit_work.join(timeout)
        self.flush()

    def flush(self) -> None:
        """Document thread: pick up a finished background audit, or one that ran in another view."""
        outcome = self._audit_work.take()
        if outcome is not None:
            self.auditing = False
            self._set_audit_button()
            kind, value = outcome
            if kind == "error":
                notify_error(f"the audit failed: {describe_error(value)}")
            else:
                notify_info(f"audit done: {int((value.issues['index'] >= 0).sum())} flagged examples")
        if not self.auditing:
            self.sync_audit()

    def _set_audit_button(self) -> None:
        if self._audit_button is not None:
            self._audit_button.disabled = self.auditing
            self._audit_button.label = "Auditing…" if self.auditing else "Run the audit (I.2)"

    def sync_audit(self) -> None:
        """Offer the issue types of the session's latest audit as filters (after an audit ran elsewhere)."""
        rep = (getattr(self.session, "reports", {}) or {}).get("audit")
        if rep is not getattr(self, "_audit_seen", None):
            self._audit_seen = rep
            self._load_issue_types()
            self.render()

    # -- which examples, in which order ----------------------------------------------------------
    def _filtered(self) -> pd.DataFrame:
        """The examples to show: columns split, index, label, score, group, issue."""
        df = self.issues
        if self.issue == ALL:
            y = self.session.labels(self.split)
            items = pd.DataFrame({"split": self.split, "index": np.arange(len(y)), "label": _label_names(y, self)})
            score = pd.Series(0.0, index=items.index)
            if df is not None and len(df):
                mine = df[df["split"] == self.split].groupby("index")["score"].max()
                score = items["index"].map(mine).fillna(0.0)
            items["score"], items["group"], items["issue"] = score.astype(float), None, ""
        else:
            sel = df[df["issue"].astype(str) == self.issue].copy()
            grouped = any(k in self.issue for k in GROUPED) and sel["group"].notna().any()
            if not grouped:
                sel = sel[sel["split"] == self.split]
            if len(sel) == 0:
                return pd.DataFrame(columns=["split", "index", "label", "score", "group", "issue"])
            ys = {sp: self.session.labels(sp) for sp in sel["split"].unique()}
            sel["label"] = [_label_of(ys[sp], int(i), self) for sp, i in zip(sel["split"], sel["index"], strict=True)]
            items = sel[["split", "index", "label", "score", "group", "issue"]].reset_index(drop=True)
            items["score"] = items["score"].astype(float)
        if self.label != ALL:
            if items["group"].notna().any():  # keep whole sets where any member has the class
                keep = items.groupby("group")["label"].transform(lambda s: (s == self.label).any())
                items = items[keep.astype(bool)]
            else:
                items = items[items["label"] == self.label]
        if self.sort_by == "score":
            if items["group"].notna().any():
                best = items.groupby("group")["score"].transform("max")
                items = items.assign(_best=best).sort_values(["_best", "group", "split", "index"],
                                                             ascending=[False, True, False, True]).drop(columns="_best")
            else:
                items = items.sort_values(["score", "index"], ascending=[False, True])
        elif items["group"].notna().any():
            items = items.sort_values(["group", "split", "index"], ascending=[True, False, True])
        return items.reset_index(drop=True)

    @property
    def n_pages(self) -> int:
        return max(1, -(-len(self.items) // self.page_size))

    # -- drawing ---------------------------------------------------------------------------------
    @param.depends("split", "label", "issue", "sort_by", "page_size", watch=True)
    def _on_filter(self):
        self.page = 0
        self.render()

    @param.depends("page", "resolution", watch=True)
    def _on_page(self):
        self.render()

    @guarded
    def render(self) -> None:
        """Recompute the filtered list and draw the current page."""
        self.items = self._filtered()
        self.page = min(self.page, self.n_pages - 1)
        lo = self.page * self.page_size
        self.page_items = self.items.iloc[lo:lo + self.page_size].reset_index(drop=True)
        self.selected = []
        try:
            fig = self._grid_figure(self.page_items)
            grid = [pn.pane.Bokeh(fig)] if fig is not None else [pn.pane.Markdown("*Nothing to show.*")]
        except Exception as e:  # noqa: BLE001 - never leave the previous filter's images under the new one
            grid = [pn.pane.Markdown(f"*Cannot draw this page: {html.escape(describe_error(e))}*")]
            notify_error(f"the data browser cannot draw this page: {describe_error(e)}")
        self._grid[:] = grid
        res = self.resolution or self.native
        groups = self.items["group"].nunique() if len(self.items) else 0
        self._info.object = (f"**{len(self.items)}** examples" + (f" in **{groups}** sets" if groups else "")
                             + f" · page {self.page + 1}/{self.n_pages} · resolution {res}px (native "
                             f"{self.native}px, I.3) · marked {len(self.marks)}")

    def images(self, items: pd.DataFrame) -> np.ndarray:
        """The examples of ``items`` as display images, downsampled to ``resolution`` (I.3).

        An example that cannot be read (an undecodable file, I.2) is drawn as a grey tile with a red
        cross, and its position is kept in ``self.unreadable``: the page shows it, it does not fail.
        """
        self.unreadable = {}
        xs = []
        for pos, (s, i) in enumerate(zip(items["split"], items["index"], strict=True)):
            try:
                xs.append(torch.as_tensor(self.session.split(s)[int(i)][0]).float())
            except Exception as e:  # noqa: BLE001 - one bad file must not blank the page
                self.unreadable[pos] = describe_error(e)
                xs.append(None)
        if not xs:
            return np.zeros((0, 1, 1, 1))
        shape = next((x.shape for x in xs if x is not None), tuple(self.session.input_shape))
        x = torch.stack([x if x is not None else torch.zeros(shape) for x in xs])
        if x.dim() not in (3, 4):
            raise DataError(f"the data browser shows images; examples have shape {tuple(x.shape[1:])}")
        x = self.session.preprocessing.denormalize(x)
        if self.resolution and self.resolution < self.native:
            h = self.resolution
            w = max(1, round(x.shape[-1] * h / x.shape[-2]))
            x = F.interpolate(x if x.dim() == 4 else x.unsqueeze(1), size=(h, w), mode="area")
        out = to_numpy_images(x)
        for pos in self.unreadable:
            out[pos] = _unreadable_tile(out.shape[1:])
        return out

    def _positions(self, items: pd.DataFrame, cols: int = 12):
        if len(items) and items["group"].notna().any():
            # duplicate sets side by side: one row per set
            xs, ys, row, last = [], [], -1, object()
            col = 0
            for g in items["group"]:
                if g != last:
                    row, col, last = row + 1, 0, g
                xs.append(col)
                ys.append(-row * 1.3)
                col += 1
            return xs, ys, max(xs) + 1, row + 1
        n = len(items)
        return [i % cols for i in range(n)], [-(i // cols) * 1.3 for i in range(n)], min(cols, n), -(-n // cols)

    def _grid_figure(self, items: pd.DataFrame):
        if len(items) == 0:
            return None
        imgs = self.images(items)
        xs, ys, cols, rows = self._positions(items)
        labels = []
        for pos, r in items.iterrows():
            mark = self.marks.get((r["split"], int(r["index"])))
            tag = " ✖" if mark and mark["action"] == "exclude" else (f"→{mark['new_label']}" if mark else "")
            grp = f" g{r['group']}" if pd.notna(r["group"]) else ""
            bad = " unreadable" if pos in self.unreadable else ""
            labels.append(f"{r['split'][:2]}{int(r['index'])}:{r['label']}{grp}{tag}{bad}")
        colors = ["#c62828" if s > 0 else "#333333" for s in items["score"]]
        self.source = ColumnDataSource({"image": [rgba(im) for im in imgs], "x": xs, "y": ys, "label": labels,
                                        "color": colors, "cx": [x + 0.46 for x in xs], "cy": [y + 0.46 for y in ys]})
        tile = 70
        fig = figure(width=max(200, cols * tile), height=max(140, int(rows * tile * 1.3)), tools="tap,reset",
                     x_range=(-0.05, cols), y_range=(-(rows - 1) * 1.3 - 0.35, 1.0), toolbar_location=None,
                     css_classes=["wb-data-grid"])
        fig.image_rgba(image="image", x="x", y="y", dw=0.92, dh=0.92, source=self.source)
        # transparent tiles over the images: tapping one selects the example for marking
        fig.rect(x="cx", y="cy", width=0.96, height=0.96, source=self.source, fill_alpha=0.0, line_alpha=0.0,
                 selection_line_color="#1565c0", selection_line_width=3, selection_line_alpha=1.0,
                 nonselection_fill_alpha=0.0, nonselection_line_alpha=0.0)
        fig.text(x="x", y="y", text="label", source=self.source, text_font_size="8pt", y_offset=11,
                 text_color="color")
        fig.axis.visible = False
        fig.grid.visible = False
        fig.outline_line_color = None
        self.source.selected.on_change("indices", self._on_tap)
        return fig

    def _on_tap(self, attr, old, new):
        self.select(list(new))

    def select(self, positions: list[int]) -> None:
        """Pick examples by their position on the current page."""
        self.selected = [(self.page_items.loc[p, "split"], int(self.page_items.loc[p, "index"])) for p in positions
                         if 0 <= p < len(self.page_items)]

    def _counts_figure(self):
        counts = class_counts(self.session)
        splits = [c for c in counts.columns if c != "class"]
        fig = figure(x_range=list(counts["class"]), height=230, width=420, title="examples per class (I.2)",
                     toolbar_location=None, tools="")
        width = 0.8 / max(1, len(splits))
        palette = ["#1565c0", "#ef6c00", "#2e7d32"]
        src = ColumnDataSource(counts)
        for k, s in enumerate(splits):
            fig.vbar(x=dodge("class", -0.4 + width * (k + 0.5), range=fig.x_range), top=s, width=width * 0.95,
                     source=src, color=palette[k % 3], legend_label=s)
        legend = fig.legend[0]  # under the plot, in one row: inside it covered the bars
        legend.orientation, legend.label_text_font_size, legend.padding = "horizontal", "8pt", 2
        fig.add_layout(legend, "below")
        return fig

    # -- marks -----------------------------------------------------------------------------------
    @guarded
    def mark_exclude(self):
        """Mark the selected examples to be excluded from training."""
        if not self.selected:
            raise DataError("select examples in the grid first (click an image)")
        for key in self.selected:
            self.marks[key] = {"action": "exclude", "new_label": None}
        self.render()

    @guarded
    def mark_relabel(self):
        """Mark the selected examples to be relabelled as ``relabel_to``."""
        if not self.selected:
            raise DataError("select examples in the grid first (click an image)")
        if self.relabel_to is None:
            raise DataError("choose the new label first")
        for key in self.selected:
            self.marks[key] = {"action": "relabel", "new_label": self.relabel_to}
        self.render()

    @guarded
    def clear_marks(self):
        for key in self.selected or list(self.marks):
            self.marks.pop(key, None)
        self.render()

    def export_marks(self) -> pd.DataFrame:
        """The marks as a table: split, index, action (exclude | relabel), new_label."""
        rows = [{"split": s, "index": i, **m} for (s, i), m in sorted(self.marks.items())]
        df = pd.DataFrame(rows, columns=["split", "index", "action", "new_label"]).astype({"new_label": object})
        return df.where(df.notna(), None)

    def _export_bytes(self):
        buf = io.StringIO()
        self.export_marks().to_csv(buf, index=False)
        return io.BytesIO(buf.getvalue().encode())

    # -- layout ----------------------------------------------------------------------------------
    def next_page(self):
        self.page = min(self.page + 1, self.n_pages - 1)

    def prev_page(self):
        self.page = max(self.page - 1, 0)

    def __panel__(self):
        self.start_updates()
        if getattr(self, "_layout", None) is None:  # one layout per view (see LiveCurves.__panel__)
            self._layout = self._build_layout()
        return self._layout

    def _build_layout(self):
        prev_b = pn.widgets.Button(label="◀", width=40)
        next_b = pn.widgets.Button(label="▶", width=40)
        prev_b.on_click(lambda e: self.prev_page())
        next_b.on_click(lambda e: self.next_page())
        filters = pn.Row(pn.widgets.Select.from_param(self.param.split, width=90),
                         pn.widgets.Select.from_param(self.param.label, name="class", width=90),
                         pn.widgets.Select.from_param(self.param.issue, name="audit issue", width=170,
                                                      css_classes=["wb-issue-filter"]),
                         pn.widgets.Select.from_param(self.param.sort_by, name="sort by", width=90),
                         pn.widgets.IntSlider.from_param(self.param.resolution, name="resolution (0 = full)",
                                                         width=170),
                         prev_b, next_b)
        audit_row = []
        if backend("workbench.data.audit"):
            audit_b = button("Run the audit (I.2)", "primary", width=170,
                                        css_classes=["wb-run-audit"])
            audit_b.on_click(lambda e: self.run_audit(background=True))
            self._audit_button = audit_b
            audit_row = [audit_b]
        ex_b = button("Mark exclude", "warning", width=120)
        re_b = pn.widgets.Button(label="Mark relabel →", width=120)
        clr_b = pn.widgets.Button(label="Clear marks", width=110)
        ex_b.on_click(lambda e: self.mark_exclude())
        re_b.on_click(lambda e: self.mark_relabel())
        clr_b.on_click(lambda e: self.clear_marks())
        marks = pn.Row(*audit_row, ex_b, re_b, pn.widgets.Select.from_param(self.param.relabel_to, name="", width=80),
                       clr_b, self.download)
        browse = pn.Column(filters, marks, self._info, self._grid, name="Browse (I.1, I.2)")
        return pn.Tabs(browse, pn.Column(self._counts, name="Class counts (I.2)"),
                       pn.Column(self.human, name="Human baseline (II.6)"), dynamic=False, name="Data")


def _unreadable_tile(shape) -> np.ndarray:
    """A grey tile with a red cross: the place of an image that could not be decoded."""
    h, w, c = shape
    tile = np.full((h, w, 3), 0.85, dtype=np.float32)
    rows = np.arange(h)
    for cols in ((rows * (w - 1) // max(1, h - 1)), (w - 1 - rows * (w - 1) // max(1, h - 1))):
        tile[rows, cols] = (0.78, 0.16, 0.16)
    return tile if c == 3 else tile[..., :c] if c < 3 else np.concatenate([tile, tile[..., :c - 3]], -1)


def _label_names(y: torch.Tensor, browser: DataBrowser) -> list[str]:
    if y.dim() == 1 and not y.is_floating_point():
        names = browser.class_names
        return [names[v] if v < len(names) else str(v) for v in y.tolist()]
    return [""] * len(y)


def _label_of(labels: torch.Tensor, i: int, browser: DataBrowser) -> str:
    """Example ``i``'s class name from the split's labels (never decoding the image, which may be broken)."""
    if labels.dim() == 1 and not labels.is_floating_point():
        v = int(labels[i])
        return browser.class_names[v] if v < len(browser.class_names) else str(v)
    return ""
