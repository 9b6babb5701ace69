"""bias_init (recipe II.5): start the output bias where the data says — the target mean, or the log class priors.

Regression with targets around 50 should start predicting 50, not 0; classification with
imbalanced classes should start predicting the class priors (bias = log p), so the first
iterations are not spent learning the bias ("hockey stick" loss curves).
"""

from __future__ import annotations

import torch

from workbench.checks.base import output_layer, register, result, split_tensors
from workbench.errors import ModelError

NAME = "bias_init"


def suggestion(session) -> dict:
    """The output layer (path) and the bias it should start with: target mean or centred log priors."""
    model = session.model
    x, _ = split_tensors(session, "train", 2)
    found = output_layer(model, x)
    if found is None or getattr(found[1], "bias", None) is None:
        raise ModelError("the model's output does not come from a layer with a bias (Linear/Conv with bias=True), "
                         "as in GPT-style heads; there is no output bias to initialise")
    path, layer = found
    y = session.labels("train")
    if session.task.real_valued:
        # a sequence model shares its output bias over the time steps: one mean per output feature
        yf = y.float().reshape(-1, layer.bias.numel()) if session.task.name == "sequence" else \
            y.float().reshape(len(y), -1)
        target, spread = yf.mean(0), yf.std(0).clamp_min(1e-12)
    else:
        counts = torch.bincount(y.reshape(-1).long(), minlength=session.num_classes).double()
        prior = (counts + 1e-3) / (counts + 1e-3).sum()  # tiny pseudo-count: an empty class gets a finite bias
        logp = prior.log()
        target = (logp - logp.mean()).float()  # softmax ignores a shared shift; centring keeps the bias small
        spread = None
    if layer.bias.numel() != target.numel():
        raise ModelError(f"the output layer {path!r} has {layer.bias.numel()} biases but the targets need "
                         f"{target.numel()}")
    return {"path": path, "layer": layer, "bias": target, "spread": spread}


@register(NAME, "II.5", order=40)
def check(session, *, imbalance: float = 1.5, warn_at: float = 0.5, fail_at: float = 5.0):
    """Is the output bias where it should start? ``imbalance``: largest/smallest class frequency from
    which log-prior biases are suggested; regression: distance of bias to the target mean in target
    standard deviations, warn beyond ``warn_at``, fail beyond ``fail_at``."""
    try:
        sug = suggestion(session)
    except ModelError as e:
        return result(NAME, "skip", f"{e}; the initial loss is checked by init_loss instead")
    bias = sug["layer"].bias.detach().float().cpu().reshape(-1)
    target = sug["bias"].cpu().reshape(-1)
    details = {"layer": sug["path"], "current_bias": bias.tolist(), "suggested_bias": target.tolist()}
    if session.task.real_valued:
        d = float(((bias - target).abs() / sug["spread"].cpu()).max())
        measured = {"max_distance_in_std": d, "bias": float(bias.mean()), "target_mean": float(target.mean())}
        status = "pass" if d <= warn_at else "warn" if d <= fail_at else "fail"
        msg = (f"the output bias of layer '{sug['path']}' is within {d:.2g} target std of the target mean."
               if status == "pass" else
               f"the output bias of layer '{sug['path']}' is {d:.3g} target std away from the target mean "
               f"{float(target.mean()):.4g}: set it to the mean (session.apply_bias_init()).")
        return result(NAME, status, msg, measured=measured, expected={"bias": target.tolist()}, details=details)
    y = session.labels("train").reshape(-1)
    counts = torch.bincount(y.long(), minlength=session.num_classes).float()
    ratio = float(counts.max() / counts.clamp_min(1).min())
    measured = {"imbalance": ratio, "max_bias_gap": float((bias - bias.mean() - target).abs().max())}
    details["class_counts"] = counts.tolist()
    if ratio < imbalance:
        return result(NAME, "pass", f"classes are balanced (largest/smallest {ratio:.2f}); a zero output bias "
                      "is right.", measured=measured, expected={"imbalance_below": imbalance}, details=details)
    # the loss a model gets by predicting the priors vs the current bias alone: how much a fix would gain
    prior_loss = float(torch.nn.functional.cross_entropy(target.expand(len(y), -1), y.long()))
    bias_loss = float(torch.nn.functional.cross_entropy(bias.expand(len(y), -1), y.long()))
    measured.update(bias_only_loss=bias_loss, prior_bias_loss=prior_loss)
    if bias_loss - prior_loss <= 0.02 * prior_loss:
        return result(NAME, "pass", f"classes are imbalanced ({ratio:.1f}x) and the output bias already "
                      "matches the log priors.", measured=measured, expected={"bias": target.tolist()},
                      details=details)
    return result(NAME, "warn", f"classes are imbalanced ({ratio:.1f}x): start the output bias of "
                  f"layer '{sug['path']}' at the log class priors (session.apply_bias_init()) so the initial loss "
                  f"starts at {prior_loss:.3g} instead of {bias_loss:.3g}.", measured=measured,
                  expected={"bias": target.tolist()}, details=details)


def apply_bias_init(session) -> dict:
    """Set the output bias to the suggested value (recipe II.5) on ``session.model`` and on every
    model the session builds from now on (``fit`` runs, checks); returns what was set."""
    sug = suggestion(session)
    bias, path = sug["bias"].detach().cpu(), sug["path"]

    def set_output_bias(model):
        layer = model.get_submodule(path)
        layer.bias.copy_(bias.to(layer.bias.device).reshape(layer.bias.shape))

    with torch.no_grad():
        set_output_bias(session.model)
    session.init_hooks["bias_init"] = set_output_bias
    return {"layer": path, "bias": bias.tolist(), "recipe": "II.5"}
