"""capacity (recipe II.9): a wider model must reach a lower training loss on the same budget.

Needs a model factory accepting ``width=``. Both widths train from the same seed on the same
batches; the training loss is then measured in eval mode on a fixed set of training examples, so
the comparison is not blurred by batch noise.
"""

from __future__ import annotations

import inspect

from workbench.checks.base import batches, evaluate_on, register, result, split_tensors, train_steps

NAME = "capacity"


def default_width(session) -> int | None:
    """The factory's default ``width`` (None when it has no default)."""
    try:
        p = inspect.signature(session.factory).parameters.get("width")
    except (TypeError, ValueError):
        return None
    if p is None or p.default is inspect.Parameter.empty or p.default is None:
        return None
    return int(p.default)


@register(NAME, "II.9", order=130)
def check(session, *, widths: tuple | None = None, steps: int = 150, lr: float = 3e-3, margin: float = 0.02,
          examples: int = 512):
    """Train ``widths`` (default: the factory's width and twice it) for ``steps`` batches; the wider must end
    at least ``margin`` (relative) lower in training loss, measured on ``examples`` training examples."""
    if not session.accepts("width"):
        return result(NAME, "skip", "the model is not a factory accepting width=; pass a factory such as "
                      "tiny_cnn(width=...) to test capacity (II.9)")
    if widths is None:
        w0 = default_width(session) or 16
        widths = (w0, 2 * w0)
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2 or list(widths) != sorted(set(widths)):
        return result(NAME, "error", f"widths must be two or more increasing values, got {widths}")
    x, y = split_tensors(session, "train", examples)
    rows = []
    for w in widths:
        model = session.new_model(width=w)
        n_params = sum(p.numel() for p in model.parameters())
        curve = train_steps(session, model, batches(session), steps, lr=lr)
        ev = evaluate_on(session, model, x, y)
        rows.append({"width": w, "params": n_params, "train_loss": ev["loss"], "train_metric": ev["metric"],
                     "curve": curve[:: max(1, len(curve) // 50)]})
    narrow, wide = rows[0], rows[-1]
    measured = {"train_loss_narrow": narrow["train_loss"], "train_loss_wide": wide["train_loss"],
                "params_narrow": narrow["params"], "params_wide": wide["params"], "widths": list(widths)}
    expected = {"train_loss_wide_below": narrow["train_loss"] * (1 - margin)}
    details = {"rows": rows}
    if wide["params"] == narrow["params"]:
        return result(NAME, "fail", f"width={widths[-1]} builds the same {wide['params']} parameters as "
                      f"width={widths[0]}: the factory ignores width=", measured=measured, expected=expected,
                      details=details)
    gain = (narrow["train_loss"] - wide["train_loss"]) / max(abs(narrow["train_loss"]), 1e-12)
    measured["relative_gain"] = gain
    if gain >= margin:
        return result(NAME, "pass", f"width {widths[0]} → {widths[-1]} lowers the training loss "
                      f"{narrow['train_loss']:.3g} → {wide['train_loss']:.3g} ({gain:.0%}).", measured=measured,
                      expected=expected, details=details)
    status = "warn" if gain > -margin else "fail"
    return result(NAME, status, f"the wider model (width {widths[-1]}, {wide['params']} parameters) does not train "
                  f"lower ({wide['train_loss']:.3g} vs {narrow['train_loss']:.3g}): look for a bottleneck that width "
                  "does not reach, or an optimisation problem (learning rate, initialisation).",
                  measured=measured, expected=expected, details=details)
