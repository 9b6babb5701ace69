"""capacity (recipe II.9): a wider model must reach a lower training loss on the same budget.

Needs a model factory accepting ``width=``. Both widths train from the same seed on the same
batches; the training loss is then measured in eval mode on a fixed set of training examples, so
the comparison is not blurred by batch noise. Run-to-run noise is measured, not assumed: when one
seed does not settle it, a second seed trains both widths and a difference within the spread of the
two seeds is reported as too close to tell. When both widths already fit the training data the
data are too easy to tell capacity apart, and the check says so instead of judging.
"""

from __future__ import annotations

import inspect

from workbench.checks.base import batches, evaluate_on, frozen_skip, register, result, split_tensors, train_steps

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


def _train(session, width, seed, steps, lr, x, y):
    model = session.new_model(width=width, seed=seed)
    # dropout and other randomness of this run from its own stream, the caller's generators untouched
    curve = train_steps(session, model, batches(session, seed=seed), steps, lr=lr, seed=seed)
    ev = evaluate_on(session, model, x, y)
    return {"width": width, "seed": seed, "params": sum(p.numel() for p in model.parameters()),
            "train_loss": ev["loss"], "train_metric": ev["metric"], "curve": curve[:: max(1, len(curve) // 50)]}


def _fits(session, row, init_loss) -> bool:
    if session.task.higher_is_better:
        return row["train_metric"] >= 0.999 and row["train_loss"] < 0.05
    return init_loss is not None and row["train_loss"] < 0.01 * init_loss


@register(NAME, "II.9", order=130)
def check(session, *, widths: tuple | None = None, steps: int = 150, lr: float = 3e-3, margin: float = 0.02,
          examples: int = 512, seeds: int = 2):
    """Train ``widths`` (default: the factory's width and twice it) for ``steps`` batches; the wider must end
    at least ``margin`` (relative) lower in training loss, measured on ``examples`` training examples, and by
    more than the spread between up to ``seeds`` seeds."""
    if not session.accepts("width"):
        return result(NAME, "skip", "the model is not a factory accepting width=; pass a factory such as "
                      "tiny_cnn(width=...) to test capacity (II.9)")
    if widths is None:
        w0 = default_width(session) or 16
        widths = (w0, 2 * w0)
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2 or list(widths) != sorted(set(widths)):
        return result(NAME, "error", f"widths must be two or more increasing values, got {widths}")
    skip = frozen_skip(NAME, session.new_model(width=widths[0]))
    if skip is not None:
        return skip
    x, y = split_tensors(session, "train", examples)
    init_loss = session.task.expected_init_loss(session.labels("train"))
    rows = [_train(session, w, session.seed, steps, lr, x, y) for w in (widths[0], widths[-1])]
    gains = [_gain(rows[0], rows[1])]
    if gains[0] < 2 * margin and seeds > 1 and not all(_fits(session, r, init_loss) for r in rows):
        rows += [_train(session, w, session.seed + 1, steps, lr, x, y) for w in (widths[0], widths[-1])]
        gains.append(_gain(rows[2], rows[3]))
    return _verdict(session, rows, gains, widths, margin, init_loss)


def _gain(narrow, wide):
    return (narrow["train_loss"] - wide["train_loss"]) / max(abs(narrow["train_loss"]), 1e-12)


def _verdict(session, rows, gains, widths, margin, init_loss):
    narrow, wide = rows[0], rows[1]
    gain = sum(gains) / len(gains)
    spread = 0.0
    if len(rows) == 4:  # the larger of the two widths' seed-to-seed differences, relative to the narrow loss
        spread = max(abs(rows[0]["train_loss"] - rows[2]["train_loss"]),
                     abs(rows[1]["train_loss"] - rows[3]["train_loss"])) / max(abs(narrow["train_loss"]), 1e-12)
    measured = {"train_loss_narrow": narrow["train_loss"], "train_loss_wide": wide["train_loss"],
                "params_narrow": narrow["params"], "params_wide": wide["params"], "widths": list(widths),
                "relative_gain": gain, "seed_spread": spread, "seeds": len(gains)}
    expected = {"relative_gain_above": margin, "and_above_seed_spread": spread}
    details = {"rows": rows, "gains_per_seed": gains}
    if wide["params"] == narrow["params"]:
        return result(NAME, "fail", f"width={widths[-1]} builds the same {wide['params']} parameters as "
                      f"width={widths[0]}: the factory ignores width=", measured=measured, expected=expected,
                      details=details)
    pair = f"{narrow['train_loss']:.3g} → {wide['train_loss']:.3g}"
    if all(_fits(session, r, init_loss) for r in rows):
        return result(NAME, "skip", f"both widths fit the training data (training loss {pair}, "
                      f"{session.task.metric} {narrow['train_metric']:.3g} and {wide['train_metric']:.3g}): these data "
                      "are too easy to tell capacity apart; use a harder subset or fewer steps (steps=).",
                      measured=measured, expected=expected, details=details)
    if gain >= margin and gain > spread:
        return result(NAME, "pass", f"width {widths[0]} → {widths[-1]} lowers the training loss {pair} ({gain:.0%}"
                      + (f", more than the {spread:.0%} spread between seeds" if spread else "") + ").",
                      measured=measured, expected=expected, details=details)
    if abs(gain) <= spread:
        return result(NAME, "skip", f"the widths differ by {gain:+.0%} in training loss ({pair}), within the "
                      f"{spread:.0%} the same width varies between seeds: too close to tell in this budget; give "
                      "capacity more steps (steps=) to decide.", measured=measured,
                      expected=expected, details=details)
    status = "warn" if gain > -margin - spread else "fail"
    return result(NAME, status, f"the wider model (width {widths[-1]}, {wide['params']} parameters) does not train "
                  f"lower ({pair}, {gain:+.0%}; seeds differ by {spread:.0%}): look for a bottleneck that width "
                  "does not reach, or an optimisation problem (learning rate, initialisation).",
                  measured=measured, expected=expected, details=details)
