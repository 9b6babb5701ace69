"""regularization (recipe L.2): adding the regularizer raises the loss, and more strength raises it more.

Measured at initialisation (small weights) on a fixed batch: data loss alone, then with the
regularizer at strength k and 10k. A regularizer with the wrong sign lowers the loss — training
would then grow the weights instead of shrinking them. Without a user regularizer the session's
built-in L2 (what ``reg_strength`` switches on) is checked.
"""

from __future__ import annotations

import torch

from workbench.checks.base import register, result, split_tensors

NAME = "regularization"


@register(NAME, "L.2", order=50)
def check(session, *, strength: float = 1e-3, factor: float = 10.0, examples: int = 256):
    """Data loss vs data + regularizer at the session's strength (``strength`` when it has none) and
    ``factor`` times it, on ``examples`` training examples of a fresh model."""
    k = session.reg_strength if session.reg_strength > 0 else float(strength)
    if k <= 0 or factor <= 1:
        return result(NAME, "error", f"strength must be > 0 and factor > 1 (got {k}, {factor})")
    x, y = split_tensors(session, "train", examples)
    model = session.new_model()
    model.eval()
    with torch.no_grad():
        data = float(session.data_loss(model(x), y))
    terms = []
    for s in (k, k * factor):
        term = session.reg_loss(model, s)
        if not isinstance(term, torch.Tensor) or term.numel() != 1:
            return result(NAME, "error", f"the regularizer must return a scalar tensor, got "
                          f"{type(term).__name__} {getattr(term, 'shape', '')}")
        terms.append(term.reshape(()))
    touched = []
    if terms[0].requires_grad:  # which weights the regularizer acts on: a non-zero gradient
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # frozen ones have no gradient
        grads = torch.autograd.grad(terms[0], [p for _, p in named], allow_unused=True)
        touched = [n for (n, _), g in zip(named, grads, strict=True) if g is not None and bool(g.abs().sum() > 0)]
    r1, r2 = (float(t.detach()) for t in terms)
    which = getattr(session.regularizer, "__name__", "the regularizer") if session.regularizer else "built-in L2"
    measured = {"data_loss": data, "loss_with_reg": data + r1, f"loss_with_reg_x{factor:g}": data + r2,
                "reg_term": r1, f"reg_term_x{factor:g}": r2, "strength": k}
    expected = {"reg_term_above": 0.0, f"reg_term_x{factor:g}_above": r1}
    details = {"regularizer": which, "regularized_tensors": touched,
               "unregularized_tensors": [n for n, _ in model.named_parameters() if n not in touched]}
    if r1 < 0 or r2 < 0:
        return result(NAME, "fail", f"{which} lowers the loss ({data:.4g} → {data + r1:.4g} at strength {k:g}): it "
                      "has the wrong sign — training would grow the weights instead of shrinking them.",
                      measured=measured, expected=expected, details=details)
    if r1 == 0:
        return result(NAME, "fail", f"{which} adds nothing to the loss at strength {k:g} with the initial weights: "
                      "it does not reach the model's parameters.", measured=measured, expected=expected,
                      details=details)
    if not r2 > r1:
        return result(NAME, "fail", f"more strength does not raise the loss ({r1:.3g} at {k:g} vs {r2:.3g} at "
                      f"{k * factor:g}): the strength is not applied to the term.", measured=measured,
                      expected=expected, details=details)
    return result(NAME, "pass", f"{which} raises the loss {data:.4g} by {r1:.3g} at strength {k:g} and by {r2:.3g} "
                  f"at {k * factor:g}.", measured=measured, expected=expected, details=details)
