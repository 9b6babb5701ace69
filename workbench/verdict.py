"""One verdict shape for the whole recipe: a status, the evidence and what to do about it.

Checks (part II), instrument summaries (P.1-P.5) and diagnosis findings (B.4) all answer with a
``Verdict``: one status vocabulary (``STATUSES``), one symbol per status and one palette, so a view,
the CLI and the exported report draw them the same way (DESIGN.md, "The next cut").
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np

STATUSES = ("pass", "warn", "fail", "skip", "error")
SYMBOLS = {"pass": "✔", "warn": "⚠", "fail": "✖", "skip": "·", "error": "!"}
COLORS = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e", "skip": "#57606a", "error": "#8250df"}
# the older vocabularies, read once at the edge and never again: instruments said ok/empty, findings error/info
ALIASES = {"ok": "pass", "empty": "skip", "info": "skip", "healthy": "pass"}
WORST_FIRST = ("error", "fail", "warn", "skip", "pass")


def status_of(value: str) -> str:
    """The one vocabulary's status for ``value`` (``"ok"`` -> ``"pass"``, ``"empty"`` -> ``"skip"``)."""
    s = str(value).strip().lower()
    s = ALIASES.get(s, s)
    if s not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {value!r}")
    return s


def worst(statuses) -> str | None:
    """The most serious of ``statuses`` (error > fail > warn > skip > pass), None when there are none."""
    found = {status_of(s) for s in statuses}
    return next((s for s in WORST_FIRST if s in found), None)


@dataclass
class Verdict:
    """A verdict with its evidence: status, the numbers measured, what was expected, what to do, the recipe step."""

    name: str
    status: str
    measured: dict = field(default_factory=dict)
    expected: object = None
    message: str = ""
    recipe: str = ""
    details: dict = field(default_factory=dict)
    seconds: float | None = None
    advice: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:  # strict here: old words are translated at the edge by status_of
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def ok(self) -> bool:
        """True unless the verdict is a failure or an error (warn and skip are not failures)."""
        return self.status not in ("fail", "error")

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.status]

    @property
    def color(self) -> str:
        return COLORS[self.status]

    def to_dict(self) -> dict:
        """A JSON-safe dict (tensors and numpy values become lists and floats, NaN/inf become strings)."""
        return jsonable({"name": self.name, "status": self.status, "measured": self.measured,
                         "expected": self.expected, "message": self.message, "recipe": self.recipe,
                         "details": self.details, "seconds": self.seconds, "advice": self.advice})

    @classmethod
    def from_dict(cls, d: dict) -> Verdict:
        """The verdict ``to_dict`` wrote (as read back from JSON)."""
        keys = ("name", "status", "measured", "expected", "message", "recipe", "details", "seconds", "advice")
        return Verdict(**{k: d[k] for k in keys if k in d})

    def summary(self) -> str:
        """One line: the measured numbers, compact."""
        return ", ".join(f"{k}={fmt(v)}" for k, v in list(self.measured.items())[:4])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name} [{self.recipe}] {self.symbol} {self.status}: {self.message} "
                f"| measured: {self.summary()} | expected: {fmt(self.expected)})")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(fmt(v))}</td></tr>"
                       for k, v in self.measured.items())
        advice = f"<br><i>{html.escape(self.advice)}</i>" if self.advice else ""
        return (f"<div><b style='color:{self.color}'>{self.symbol} {self.status}</b> "
                f"<code>{html.escape(self.name)}</code> <small>recipe {html.escape(str(self.recipe))}</small><br>"
                f"{html.escape(self.message)}{advice}<table>{rows}</table>"
                f"<small>expected: {html.escape(fmt(self.expected))}</small></div>")


def jsonable(o):
    """Plain JSON types from tensors, numpy values, tuples and non-finite floats."""
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [jsonable(v) for v in o]
    if hasattr(o, "detach") and hasattr(o, "tolist"):  # a torch tensor, without importing torch here
        return jsonable(o.detach().cpu().tolist())
    if isinstance(o, np.ndarray):
        return jsonable(o.tolist())
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if o is None or isinstance(o, (bool, int, float, str)):
        return o
    return repr(o)


def fmt(v) -> str:
    """A number (or anything) short enough for a table cell."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v == 0 or not math.isfinite(v):
            return str(v)
        return f"{v:.3g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x) for x in list(v)[:4]) + (", …" if len(v) > 4 else "") + "]"
    if isinstance(v, dict):
        return ", ".join(f"{k} {fmt(x)}" for k, x in list(v.items())[:3])
    return str(v)
