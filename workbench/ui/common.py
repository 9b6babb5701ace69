"""Shared pieces of the views: error notifications, the periodic flush, image tiles and verdict badges.

Every button handler runs through :func:`guarded`, so an exception becomes a message in the page
(``pn.state.notifications``) and the app keeps working (UI.md: "the app never goes blank").
"""

from __future__ import annotations

import functools
import html
import importlib.util
import logging
import threading
import traceback

import numpy as np
import panel as pn
import param
import torch

from workbench.verdict import COLORS, SYMBOLS

log = logging.getLogger("workbench.ui")

# the one palette and symbol set of verdicts (workbench/verdict.py), plus the states of a step in the wizard
STATUS_COLORS = {**COLORS, "not run": "#9e9e9e", "running": "#1565c0", "partial": "#0969da"}
STATUS_ICONS = {**SYMBOLS, "not run": "○", "running": "◐", "partial": "◑"}
FLUSH_MS = 300  # the periodic flush on the document's thread: fast enough to look live, cheap enough


class ErrorLog(param.Parameterized):
    """The messages of failed callbacks, kept so a test (or a notebook user) can read what the page showed."""

    messages = param.List(default=[])

    def add(self, message: str) -> None:
        self.messages = self.messages + [message]


ERRORS = ErrorLog()


def notify_error(message: str) -> None:
    """Show ``message`` as an error notification in the page (or log it where there is no page)."""
    ERRORS.add(message)
    log.warning("workbench UI: %s", message)
    notifications = getattr(pn.state, "notifications", None)
    if notifications is not None:
        try:
            notifications.error(message, duration=8000)
        except Exception:  # noqa: BLE001 - a notification must never raise in turn
            log.debug("notification failed", exc_info=True)


def notify_info(message: str) -> None:
    notifications = getattr(pn.state, "notifications", None)
    if notifications is not None:
        try:
            notifications.info(message, duration=4000)
        except Exception:  # noqa: BLE001
            log.debug("notification failed", exc_info=True)


def describe_error(e: BaseException) -> str:
    from workbench.errors import WorkbenchError

    if isinstance(e, WorkbenchError):
        return str(e)
    return f"{type(e).__name__}: {e}"


def guarded(fn):
    """Wrap a callback so that an exception becomes an error notification instead of a broken page."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the page must keep working whatever a callback does
            log.warning("callback %s raised\n%s", getattr(fn, "__name__", fn), traceback.format_exc())
            notify_error(f"{getattr(fn, '__name__', 'action').strip('_').replace('_', ' ')} failed: "
                         f"{describe_error(e)}")
            return None

    return wrapper


def on_document(fn) -> None:
    """Run ``fn`` where Bokeh models may be changed directly.

    In a served page the call is scheduled on the document's next tick, which holds the document
    lock: Panel may run a click handler on the event loop without that lock, and a direct change
    to a ColumnDataSource there fails. Outside a server (notebook, tests) it runs at once.
    """
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        fn()
    else:
        doc.add_next_tick_callback(guarded(fn))


def install_exception_handler() -> None:
    """Errors Panel catches in any other callback (widget watchers) also become notifications."""
    pn.config.exception_handler = lambda e: notify_error(describe_error(e))


# Panel 1.9 names a button's colour ``color`` and deprecates ``button_type``; older releases know only the latter
COLOR = "color" if "color" in pn.widgets.Button.param else "button_type"


def button(label: str, color: str = "default", **params) -> pn.widgets.Button:
    """A ``pn.widgets.Button`` in one of Panel's colours ("primary", "success", "warning", "danger", "light")."""
    return pn.widgets.Button(label=label, **{COLOR: color}, **params)


def backend(module: str) -> bool:
    """Whether another part's backend module (e.g. ``workbench.checks``) exists and imports."""
    try:
        if importlib.util.find_spec(module) is None:
            return False
        importlib.import_module(module)
        return True
    except Exception:  # noqa: BLE001 - a half-written backend is treated as absent
        return False


class Background:
    """Slow work (an audit, a search) on a worker thread; a view's ``flush()`` picks up the outcome
    on the document thread with ``take()``. Nothing here touches a Bokeh model."""

    def __init__(self, name: str):
        self.name = name
        self.thread: threading.Thread | None = None
        self.outcome: tuple[str, object] | None = None

    def start(self, fn) -> None:
        self.outcome = None

        def work():
            try:
                self.outcome = ("ok", fn())
            except Exception as e:  # noqa: BLE001 - shown by the view's flush as a notification
                self.outcome = ("error", e)

        self.thread = threading.Thread(target=work, name=self.name, daemon=True)
        self.thread.start()

    def join(self, timeout=None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def take(self) -> tuple[str, object] | None:
        """``("ok", value)`` or ``("error", exception)`` once the work is done, then None again."""
        out, self.outcome = self.outcome, None
        return out


class View(pn.viewable.Viewer):
    """A workbench view: a Panel viewer that also embeds in ipywidgets hosts (VS Code, Voila)."""

    def ipywidget(self):
        """This view as an ipywidget, through jupyter_bokeh."""
        return pn.ipywidget(self)


class LiveView(View):
    """A view fed on the document's thread: ``flush()`` pulls new data from buffers into Bokeh sources.

    In the served app one periodic callback per browser session calls every view's ``flush``; a view
    shown alone (a notebook cell) starts its own on first display.
    """

    _periodic = None

    def flush(self) -> None:  # pragma: no cover - overridden
        pass

    def _safe_flush(self) -> None:
        try:
            self.flush()
        except Exception as e:  # noqa: BLE001 - a failing flush must not stop the others
            notify_error(f"{type(self).__name__} update failed: {describe_error(e)}")

    def start_updates(self, period: int = FLUSH_MS) -> None:
        if self._periodic is None:
            self._periodic = quiet_periodic(self._safe_flush, period)

    def stop_updates(self) -> None:
        if self._periodic is not None:
            self._periodic.stop()
            self._periodic = None


def quiet_periodic(callback, period: int):
    """A periodic callback on the document's loop that leaves the page's busy spinner alone.

    Panel counts every periodic callback as busy unless it is a background one, so the views' refresh
    ticks (every 500 ms) kept the spinner turning on an idle page; a click's own work still shows.
    """
    from panel.io.callbacks import PeriodicCallback

    cb = PeriodicCallback(callback=callback, period=period, background=True)
    cb.start()
    return cb


def to_numpy_images(x: torch.Tensor) -> np.ndarray:
    """A batch (N, C, H, W) or (N, H, W) as float images (N, H, W, C) in [0, 1] for display."""
    x = torch.as_tensor(x).detach().float().cpu()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        from workbench.errors import DataError

        raise DataError(f"images must have shape (N, C, H, W) or (N, H, W), got {tuple(x.shape)}")
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def rgba(img: np.ndarray) -> np.ndarray:
    """One float image (H, W, C) in [0, 1] as a uint32 RGBA array for Bokeh's ``image_rgba`` (rows bottom-up)."""
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    elif img.shape[-1] > 3:
        img = img[..., :3]
    elif img.shape[-1] == 2:
        img = np.concatenate([img, img[..., :1]], axis=-1)
    u8 = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    out = np.empty(img.shape[:2], dtype=np.uint32)
    view = out.view(dtype=np.uint8).reshape(img.shape[0], img.shape[1], 4)
    view[..., :3] = u8
    view[..., 3] = 255
    return np.flipud(out)


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Per-image min-max scaling: the batch as the model sees it, whatever its range."""
    x = x.detach().float()
    flat = x.reshape(len(x), -1)
    lo, hi = flat.min(1).values, flat.max(1).values
    shape = (-1,) + (1,) * (x.dim() - 1)
    return (x - lo.view(shape)) / (hi - lo).clamp_min(1e-12).view(shape)


def badge(status: str, text: str = "") -> str:
    """An HTML pill for a verdict: ✔ pass, ⚠ warn, ✖ fail ..."""
    color = STATUS_COLORS.get(status, "#9e9e9e")
    icon = STATUS_ICONS.get(status, "?")
    label = html.escape(text or status)
    return (f'<span class="wb-badge wb-{html.escape(status.replace(" ", "-"))}" style="background:{color};'
            f'color:white;border-radius:10px;padding:1px 8px;font-size:0.85em;white-space:nowrap">'
            f"{icon} {label}</span>")


def fmt(v, digits: int = 4) -> str:
    """A measured value for a table: numbers to ``digits`` significant figures, everything else as text."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, dict):  # a check's measured numbers: the first few, compact
        return ", ".join(f"{k}={fmt(x, digits)}" for k, x in list(v.items())[:4]) or "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return str(v)
        return f"{float(v):.{digits}g}"
    return str(v)


def image_grid(images: np.ndarray, labels: list[str] | None = None, cols: int = 8, tile: int = 64,
               title: str | None = None, colors: list[str] | None = None):
    """A Bokeh figure with the images tiled (``images`` (N, H, W, C) in [0, 1]) and a label under each."""
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    n = len(images)
    cols = max(1, min(cols, n or 1))
    rows = max(1, -(-n // cols))
    data = {"image": [rgba(im) for im in images], "x": [i % cols for i in range(n)],
            "y": [-(i // cols) * 1.25 for i in range(n)], "label": list(labels or [""] * n),
            "color": list(colors or ["#333333"] * n)}
    source = ColumnDataSource(data)
    fig = figure(width=max(160, cols * tile), height=max(120, int(rows * tile * 1.25) + (30 if title else 0)),
                 x_range=(-0.05, cols), y_range=(-(rows - 1) * 1.25 - 0.3, 1.0), tools="tap,reset",
                 toolbar_location=None, title=title, match_aspect=True)
    fig.image_rgba(image="image", x="x", y="y", dw=0.92, dh=0.92, source=source)
    fig.text(x="x", y="y", text="label", source=source, text_font_size="9pt", y_offset=12,
             text_color="color")
    fig.axis.visible = False
    fig.grid.visible = False
    fig.outline_line_color = None
    return fig, source


def human_baseline_of(session) -> dict | None:
    """The finished human baseline (II.6) as ``{"accuracy", "n", ...}`` from the session's book (so it
    survives a page reload), else from ``session.human_baseline``; None while the sample is unanswered."""
    hb = session.book.get("human_baseline") if hasattr(session, "book") else None
    if hb and hb.get("complete"):
        return hb
    acc = getattr(session, "human_baseline", None)
    return {"accuracy": float(acc), "n": None} if acc is not None else None


def human_baseline_label(hb: dict) -> str:
    """"human 92% (n=20)": what the dashed line on an accuracy plot is."""
    n = f" (n={hb['n']})" if hb.get("n") else ""
    return f"human {hb['accuracy']:.0%}{n}"
