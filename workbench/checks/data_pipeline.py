"""data_pipeline (recipe II.10): look at the batch exactly as it reaches ``model(x)``.

A forward pre-hook captures what the model receives from the session's own training DataLoader.
Checked: finite values, the shape and channels the session expects, a sane range and scale
(normalised, or at least not raw 0-255 pixels, not constant), labels in range. The batch's
per-channel statistics and a small preview go to ``details`` for the batch view.
"""

from __future__ import annotations

import itertools

import torch

from workbench.checks.base import register, result

NAME = "data_pipeline"


def _capture(session, n_batches):
    model = session.new_model()
    seen = []
    h = model.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    ys = []
    try:
        model.eval()
        with torch.no_grad():
            for x, y in itertools.islice(session.loader("train", shuffle=True, seed=session.seed), n_batches):
                model(x.to(session.device))
                ys.append(y)
    finally:
        h.remove()
    return torch.cat(seen), torch.cat(ys)


def channel_stats(x: torch.Tensor) -> dict:
    """Mean, std, min and max per channel (dim 1) for images, over everything for other inputs."""
    xf = x.detach().double()
    flat = xf.transpose(0, 1).reshape(xf.shape[1], -1) if xf.dim() == 4 else xf.reshape(1, -1)
    return {"mean": flat.mean(1).tolist(), "std": flat.std(1).tolist(), "min": flat.min(1).values.tolist(),
            "max": flat.max(1).values.tolist()}


@register(NAME, "II.10", order=20)
def check(session, *, batches: int = 2, max_abs: float = 20.0, preview: int = 16):
    """Inspect ``batches`` training batches at the model's input: values finite and within ``max_abs``,
    per-example shape as the dataset's, labels valid; keeps ``preview`` examples for the batch view."""
    x, y = _capture(session, batches)
    problems, warnings = [], []
    measured = {"examples": len(x), "shape": list(x.shape[1:]), "dtype": str(x.dtype).replace("torch.", "")}
    if tuple(x.shape[1:]) != tuple(session.input_shape):
        problems.append(f"the model receives examples of shape {tuple(x.shape[1:])} but the dataset's are "
                        f"{tuple(session.input_shape)}")
    details = {"labels": y[:preview].tolist()}
    if x.is_floating_point():
        bad = ~torch.isfinite(x)
        measured["non_finite"] = int(bad.sum())
        if bad.any():
            rows = bad.reshape(len(x), -1).any(1).nonzero().flatten()[:5].tolist()
            problems.append(f"{int(bad.sum())} NaN/inf values reach the model (batch rows {rows})")
        xs = torch.where(bad, torch.zeros_like(x), x)
        stats = channel_stats(xs)
        lo, hi = float(xs.min()), float(xs.max())
        std = float(xs.double().std())
        measured.update(min=lo, max=hi, mean=float(xs.double().mean()), std=std)
        details["channel_stats"] = stats
        prep = session.preprocessing
        if hi - lo == 0:
            problems.append(f"every input value is {lo:g}: the batch is constant")
        elif max(abs(lo), abs(hi)) > max_abs:
            what = "raw 0-255 pixel values: scale to [0, 1] and normalise" if 100 < hi <= 255 and lo >= 0 \
                else "values this large slow or break training: normalise the inputs"
            warnings.append(f"inputs range over [{lo:.3g}, {hi:.3g}]: {what}")
        elif std < 1e-2:
            warnings.append(f"inputs barely vary (std {std:.2g}): is the scaling applied twice?")
        if prep.mean is not None:
            off = max(abs(m) for m in stats["mean"])
            if off > 1.0:
                warnings.append(f"the preprocessing says normalised but channel means are {stats['mean']}: "
                                "the normalisation is missing or applied with the wrong constants")
        if len(x) > 1 and bool((xs == xs[:1]).all()):
            problems.append("every example in the batch is identical")
        if x[0].numel() <= 4096:
            details["preview"] = x[:preview].tolist()
            details["preview_denormalized"] = prep.denormalize(x[:preview].cpu()).tolist()
    else:
        measured.update(min=int(x.min()), max=int(x.max()))
        emb = next((m for m in session.model.modules() if isinstance(m, torch.nn.Embedding)), None)
        if emb is not None and (int(x.min()) < 0 or int(x.max()) >= emb.num_embeddings):
            problems.append(f"token ids range over [{int(x.min())}, {int(x.max())}] but the embedding has "
                            f"{emb.num_embeddings} rows")
    if not session.task.real_valued:
        c = session.num_classes
        lo_y, hi_y = int(y.min()), int(y.max())
        measured.update(label_min=lo_y, label_max=hi_y)
        if lo_y < 0 or hi_y >= c:
            problems.append(f"labels range over [{lo_y}, {hi_y}] but there are {c} classes")
        details["label_counts"] = torch.bincount(y.reshape(-1).clamp(0, c - 1).long(), minlength=c).tolist()
    elif not torch.isfinite(y.float()).all():
        problems.append("regression targets hold NaN/inf")
    expected = {"shape": list(session.input_shape), "finite": True, "abs_max_below": max_abs}
    if problems:
        return result(NAME, "fail", "; ".join(problems) + ".", measured=measured, expected=expected, details=details)
    if warnings:
        return result(NAME, "warn", "; ".join(warnings) + ".", measured=measured, expected=expected, details=details)
    return result(NAME, "pass", f"the batch reaching the model is finite, shaped {tuple(x.shape[1:])}, in "
                  f"[{measured.get('min', 0):.3g}, {measured.get('max', 0):.3g}], labels in range.",
                  measured=measured, expected=expected, details=details)
