"""Take the instruments and a run's curves out of the workbench: CSV, TensorBoard event files, HTML and PNG plots.

CSV always works (pandas). TensorBoard event files need the ``tensorboard`` package (through
``torch.utils.tensorboard``). HTML plots are standalone Bokeh documents (``bokeh.embed.file_html``,
no browser needed); PNG goes through matplotlib when it is installed (Bokeh's ``export_png`` would
need a browser driver), else a clear error points at HTML.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.instruments.base import Instrument


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _instruments(source) -> list[Instrument]:
    if isinstance(source, Instrument):
        return [source]
    if hasattr(source, "instruments"):  # a Session
        return [i for i in source.instruments if isinstance(i, Instrument)]
    try:
        items = list(source)
    except TypeError:
        raise WorkbenchError(f"expected a Session, an instrument or a list of them, got {type(source).__name__}") \
            from None
    bad = [type(i).__name__ for i in items if not isinstance(i, Instrument)]
    if bad:
        raise WorkbenchError(f"not instruments: {', '.join(bad)}")
    return items


# -- CSV -------------------------------------------------------------------------------------------
def to_csv(source, folder) -> list[Path]:
    """One CSV per instrument (curves: steps and epochs) under ``folder``; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for inst in _instruments(source):
        frames = {inst.name: inst.frame()} if inst.name != "curves" else \
            {"curves_steps": inst.frame("step"), "curves_epochs": inst.frame("epoch")}
        for stem, df in frames.items():
            path = folder / f"{stem}.csv"
            df.to_csv(path, index=False)
            paths.append(path)
    return paths


def export_run(run, folder=None, instruments=(), tensorboard: bool | str = "auto") -> dict:
    """A run's steps and epochs as CSV (and its instruments'), plus TensorBoard files when available.

    ``tensorboard="auto"`` writes event files only when the package is installed; ``True`` insists.
    """
    folder = Path(folder) if folder is not None else Path(run.dir) / "export"
    folder.mkdir(parents=True, exist_ok=True)
    out = {"steps": folder / "steps.csv", "epochs": folder / "epochs.csv"}
    run.steps.to_csv(out["steps"], index=False)
    run.metrics.to_csv(out["epochs"], index=False)
    out["instruments"] = to_csv(instruments, folder) if instruments else []
    if tensorboard is True or (tensorboard == "auto" and tensorboard_available()):
        out["tensorboard"] = to_tensorboard(run, folder / "tensorboard", instruments)
    return out


# -- TensorBoard -----------------------------------------------------------------------------------
def to_tensorboard(run, logdir=None, instruments=()) -> Path:
    """TensorBoard event files for a run's curves and the instruments' series, histograms and filter grids."""
    if not tensorboard_available():
        raise WorkbenchError("TensorBoard export needs the tensorboard package: pip install tensorboard "
                             "(CSV and HTML export work without it)")
    from torch.utils.tensorboard import SummaryWriter

    logdir = Path(logdir) if logdir is not None else Path(run.dir) / "tensorboard"
    with SummaryWriter(str(logdir)) as w:
        for r in run.step_records:
            w.add_scalar("loss/step", r["loss"], r["step"])
        for r in run.epoch_records:
            for k in ("train_loss", "val_loss", "train_metric", "val_metric", "lr"):
                if isinstance(r.get(k), (int, float)):
                    w.add_scalar(f"epoch/{k}", r[k], r["step"])
        for inst in _instruments(instruments) if instruments else []:
            _tb_instrument(w, inst)
    return logdir


def _tb_instrument(w, inst, records=None) -> None:
    """Write an instrument's records (all buffered ones by default) as TensorBoard summaries."""
    import torch

    recs = inst.since(0) if records is None else records
    if inst.name == "update_ratio":
        for r in recs:
            w.add_scalars("update_ratio", {k: v for k, v in r["ratios"].items() if math.isfinite(v)}, r["step"])
    elif inst.name == "grad_norms":
        for r in recs:
            if "total" in r:
                w.add_scalar("grad_norm/total", r["total"], r["step"])
                w.add_scalars("grad_norm/layers", r["layers"], r["step"])
    elif inst.name == "predictions":
        for r in recs:
            w.add_scalar("predictions/mean_p_true", float(np.mean(r["p_true"])), r["step"])
    elif inst.name == "first_layer":
        for r in recs:
            w.add_image("first_layer", torch.from_numpy(r["image"]).permute(2, 0, 1), r["step"])
    elif inst.name == "histograms":
        for r in recs:
            for layer, entry in r["layers"].items():
                for kind, st in entry.items():
                    lo, hi = inst.edges[(layer, kind)]
                    edges = np.linspace(lo, hi, inst.bins + 1)
                    n, mean, std = st["n"], st["mean"], st["std"]
                    w.add_histogram_raw(f"{kind}/{layer}", min=lo, max=hi, num=n, sum=mean * n,
                                        sum_squares=(std ** 2 + mean ** 2) * n, bucket_limits=edges[1:].tolist(),
                                        bucket_counts=st["counts"].tolist(), global_step=r["step"])


# -- plots -----------------------------------------------------------------------------------------
def figure(inst: Instrument, width: int = 600, height: int = 300):
    """A Bokeh figure of an instrument's buffer (a static copy; the live views stream their own)."""
    p = _figure(inst, width, height)
    if not p.renderers:  # nothing measured yet (a run shorter than the cadence): say so in the plot
        p.text(x=[0], y=[1], text=[f"nothing measured yet ({inst.name} records every {inst.every} "
                                   f"{inst.cadence_unit}s)"], text_font_size="11pt")
    return p


def _figure(inst: Instrument, width: int, height: int):
    from bokeh.models import BoxAnnotation
    from bokeh.plotting import figure as bfigure

    title = f"{inst.title} ({inst.recipe})"
    if inst.name == "curves":
        df = inst.frame("step")
        p = bfigure(title=title, width=width, height=height, x_axis_label="epoch",
                    y_axis_type="log" if inst.log else "linear")
        if not df.empty:
            p.line(df["epoch"], df["loss"], legend_label="train loss (step)")
        ep = inst.frame("epoch")
        if not ep.empty:
            p.scatter(ep["epoch"], ep["val_loss"], color="orange", legend_label="val loss")
        return p
    if inst.name == "update_ratio":
        df = inst.frame()
        p = bfigure(title=title, width=width, height=height, x_axis_label="step", y_axis_type="log")
        p.add_layout(BoxAnnotation(bottom=inst.low, top=inst.high, fill_alpha=0.1, fill_color="green"))
        for col in inst.weight_names:
            if col in df:
                p.line(df["step"], df[col], legend_label=col)
        return p
    if inst.name == "grad_norms":
        df = inst.frame()
        p = bfigure(title=title, width=width, height=height, x_axis_label="step", y_axis_type="log")
        if not df.empty:
            p.line(df["step"], df["total"], legend_label="total", line_width=2)
        return p
    if inst.name == "predictions":
        pt = inst.p_true()
        steps = [r["step"] for r in inst.since(0)]
        p = bfigure(title=title, width=width, height=height, x_axis_label="step", y_axis_label="p(true class)")
        for i in range(pt.shape[1] if pt.ndim == 2 else 0):
            p.line(steps, pt[:, i], alpha=0.6)
        return p
    if inst.name == "first_layer":
        img = inst.rgba()
        p = bfigure(title=title, width=width, height=height, match_aspect=True)
        if img is not None:
            p.image_rgba(image=[img], x=0, y=0, dw=img.shape[1], dh=img.shape[0])
        return p
    if inst.name == "histograms":
        frame = inst.frame()
        p = bfigure(title=title, width=width, height=height, x_axis_label="step", y_axis_label="std")
        if not frame.empty:
            for layer, df in frame[frame["kind"] == "act"].groupby("layer", sort=False):
                p.line(df["step"], df["std"], legend_label=str(layer))
        return p
    raise WorkbenchError(f"no plot for instrument {inst.name!r}")


def to_html(source, path, title: str = "Recipe Workbench instruments") -> Path:
    """A standalone HTML page (Bokeh, resources inline) with one plot per instrument."""
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.resources import INLINE

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(file_html(column(*[figure(i) for i in _instruments(source)]), INLINE, title), encoding="utf-8")
    return path


def to_png(inst: Instrument, path) -> Path:
    """A PNG of one instrument through matplotlib; without matplotlib, a WorkbenchError pointing at HTML."""
    if not matplotlib_available():
        raise WorkbenchError("PNG export needs matplotlib (pip install matplotlib); Bokeh's export_png would need "
                             "a browser driver. Use to_html(...) for a standalone plot instead.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_title(f"{inst.title} ({inst.recipe})")
    if inst.name == "first_layer" and inst.image() is not None:
        ax.imshow(inst.image())
        ax.axis("off")
    else:
        df = inst.frame("step") if inst.name == "curves" else inst.frame()
        y = {"curves": "loss", "update_ratio": "median", "grad_norms": "total", "predictions": "p_true",
             "histograms": "std"}[inst.name]
        if not df.empty:
            data = df.groupby("step")[y].mean() if inst.name in ("predictions", "histograms") else \
                pd.Series(df[y].to_numpy(), index=df["step"])
            ax.plot(data.index, data.to_numpy())
            if inst.name in ("update_ratio", "grad_norms") or (inst.name == "curves" and inst.log):
                ax.set_yscale("log")
        ax.set_xlabel("step")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
