"""gradient_check (recipe II.G, rules G.1-G.5, G.P1, G.P2): analytic gradients against centered differences.

Every rule of the recipe, in order:
- G.1 centered differences (f(x+h) - f(x-h)) / 2h on a float64 copy of the model; relative error
  |a - n| / max(eps, |a| + |n|) with eps = 1e-8.
- G.2 dropout and other torch randomness stay on: the RNG is reseeded before every evaluation, so
  each sees the same mask. Batch norm stays in train mode on one fixed batch of ``examples``
  examples: a batch-coupled but deterministic function of the weights, so its gradient is checked too.
- G.3 first the data loss alone, then with the regularizer (when the session has one), optionally
  again after a short warm-up training (``warmup_steps``).
- G.4 a sample of coordinates from EVERY parameter tensor (half the largest analytic gradients,
  half at random), so the cost grows with the coordinates, not with the parameter count.
- G.5 thresholds by depth and kinks: ~1e-7 good (below 1e-6); with kinks (ReLU, max-pool, ...) or more than 10
  layers up to 1e-4 passes and up to 1e-2 warns; a smooth shallow net above 1e-4 fails.
- G.P1 tensors whose gradients are all below ``tiny`` (~1e-10) are reported and re-checked with the
  loss scaled up so their gradients are ~1.
- G.P2 kinks are detected, not guessed: every ReLU-like op (output == input mask), max-pool and
  max/maximum (argmax) is recorded through a TorchFunctionMode during f(x+h) and f(x-h); a
  coordinate whose branch pattern differs between the two is reported apart, not as an error.
  ``h`` is never shrunk to hide errors; differences below double precision's resolution of f
  (|a - n| < 4 eps_64 max|f| / h) are counted as "below precision" and not judged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from workbench.checks.base import (
    batches,
    perturb_zero_layers,
    register,
    result,
    split_tensors,
    train_steps,
    zero_weight_layers,
)
from workbench.engine.rng import seeded

NAME = "gradient_check"
EPS = 1e-8


def _funcs(owner, names):
    return {getattr(owner, n) for n in names if hasattr(owner, n)}


# piecewise-linear ops whose branch is "output equals input" (relu: x >= 0, clamp: inside the bounds)
_IDENTITY_BRANCH = (_funcs(F, ["relu", "relu_", "leaky_relu", "leaky_relu_", "hardtanh", "hardtanh_", "relu6",
                               "threshold", "threshold_"])
                    | _funcs(torch, ["relu", "relu_", "clamp", "clamp_", "clip", "clip_", "abs", "abs_",
                                     "threshold"])
                    | _funcs(torch.Tensor, ["relu", "relu_", "clamp", "clamp_", "clip", "clip_", "abs", "abs_"]))
# the public max-pool functions (what a TorchFunctionMode sees) -> their variant that also returns the argmax
_POOL = {getattr(F, f"max_pool{d}d"): (getattr(F, f"max_pool{d}d_with_indices"), 6) for d in (1, 2, 3)}
_POOL.update({getattr(F, f"adaptive_max_pool{d}d"): (getattr(F, f"adaptive_max_pool{d}d_with_indices"), 2)
              for d in (1, 2, 3)})
_POOL_WITH_INDICES = {v[0] for v in _POOL.values()}
_ARG_MAX = _funcs(torch, ["max", "min"]) | _funcs(torch.Tensor, ["max", "min"])
_PAIR_MAX = _funcs(torch, ["maximum", "minimum", "fmax", "fmin"]) | _funcs(torch.Tensor, ["maximum", "minimum"])


class KinkRecorder(TorchFunctionMode):
    """Records, in call order, which branch every kinked op took (G.P2)."""

    def __init__(self):
        super().__init__()
        self.signatures: list[torch.Tensor] = []
        self.ops: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _IDENTITY_BRANCH and args and isinstance(args[0], torch.Tensor):
            before = args[0].detach().clone()  # in-place variants overwrite their input
            out = func(*args, **kwargs)
            self._add(func, (out.detach() == before) if out.shape == before.shape else before > 0)
            return out
        if func in _POOL:
            with_indices, pos = _POOL[func]
            pooled, idx = with_indices(*args, **kwargs)
            self._add(func, idx)
            wanted = kwargs.get("return_indices", args[pos] if len(args) > pos else False)
            return (pooled, idx) if wanted else pooled
        out = func(*args, **kwargs)
        if func in _POOL_WITH_INDICES:
            self._add(func, out[1])
        elif func in _ARG_MAX and isinstance(out, tuple) and len(out) == 2:
            self._add(func, out[1])
        elif func in _ARG_MAX and args and isinstance(args[0], torch.Tensor) and len(args) == 1 and not kwargs:
            self._add(func, args[0].detach().argmax() if func.__name__ == "max" else args[0].detach().argmin())
        elif func in _PAIR_MAX and len(args) >= 2 and isinstance(args[1], torch.Tensor):
            self._add(func, args[0].detach() > args[1].detach())
        return out

    def _add(self, func, sig):
        self.signatures.append(sig)
        self.ops.append(getattr(func, "__name__", str(func)))


def _same_branches(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b, strict=True))


def depth_of(model: nn.Module) -> int:
    """Layers with a weight matrix or kernel (Linear, Conv, attention, each recurrent layer): the depth of G.5.

    Embedding lookups and bare tensors added to the activations (position embeddings, class tokens, shaped
    (1, ...)) are parameters, not layers, and do not count."""
    depth = 0
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            continue
        own = [p for p in m.parameters(recurse=False) if p.dim() >= 2 and p.shape[0] > 1]
        if own:
            depth += int(getattr(m, "num_layers", 1)) if isinstance(m, nn.RNNBase) else 1
    return depth


def thresholds(kinks: bool, depth: int) -> tuple[float, float, str]:
    """(pass up to, warn up to, why) by the rules of G.5."""
    if depth > 10:
        return 1e-4, 1e-2, f"{depth} layers (> 10): errors up to 1e-2 may be fine"
    if kinks:
        return 1e-4, 1e-2, "kinks (ReLU/max): < 1e-4 acceptable"
    # "~1e-7" is an order of magnitude: centered differences with h = 1e-5 leave O(h^2) truncation error that
    # softmax attention and layer norm push to a few 1e-7 in a correct float64 transformer
    return 1e-6, 1e-4, "smooth network: ~1e-7 good (below 1e-6), 1e-4 too high"


class _Objective:
    """f(weights) on a fixed batch with the RNG reseeded before every forward (G.2)."""

    def __init__(self, session, model, x, y, reg_strength, seed, scale=1.0):
        self.session, self.model, self.x, self.y = session, model, x, y
        self.reg_strength, self.seed, self.scale = reg_strength, seed, scale

    def __call__(self):
        with seeded(self.seed):  # the same dropout mask at every evaluation of f (G.2)
            loss = self.session.data_loss(self.model(self.x), self.y).double()
        if self.reg_strength:
            loss = loss + self.session.reg_loss(self.model, self.reg_strength).double()
        return loss * self.scale


def _coordinates(p: torch.Tensor, k: int, gen: torch.Generator) -> list[int]:
    n = p.numel()
    if n <= k:
        return list(range(n))
    top = p.grad.detach().abs().reshape(-1).topk(k // 2).indices.tolist() if p.grad is not None else []
    rand = torch.randperm(n, generator=gen)[: k].tolist()
    return list(dict.fromkeys(top + rand))[:k]


def _check_phase(f: _Objective, model, coords: int, h: float, gen, only=None) -> list[dict]:
    """Per parameter tensor: max relative error (kinks apart), kinks, coordinates below precision."""
    model.zero_grad(set_to_none=True)
    loss = f()
    loss.backward()
    rows = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad or (only is not None and name not in only):
                continue
            if not p.is_contiguous():
                p.data = p.data.contiguous()
            grad = p.grad.detach().reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype)
            flat = p.data.view(-1)
            row = {"tensor": name, "shape": list(p.shape), "coords": 0, "max_rel_error": 0.0, "max_judged_error": 0.0,
                   "kinks": 0,
                   "max_kink_error": 0.0, "below_precision": 0, "grad_scale": float(grad.abs().max()),
                   "worst": None}
            for i in _coordinates(p, coords, gen):
                old = float(flat[i])
                rec_p, rec_m = KinkRecorder(), KinkRecorder()
                flat[i] = old + h
                with rec_p:
                    fp = float(f())
                flat[i] = old - h
                with rec_m:
                    fm = float(f())
                flat[i] = old
                a, num = float(grad[i]), (fp - fm) / (2 * h)
                err = abs(a - num) / max(EPS, abs(a) + abs(num))
                row["coords"] += 1
                if not _same_branches(rec_p.signatures, rec_m.signatures):
                    row["kinks"] += 1
                    row["max_kink_error"] = max(row["max_kink_error"], err)
                    continue
                row["max_rel_error"] = max(row["max_rel_error"], err)
                if abs(a - num) < 4 * 2.2e-16 * max(abs(fp), abs(fm), 1e-300) / h:
                    row["below_precision"] += 1  # the difference is below what f's float64 rounding resolves
                elif err > row["max_judged_error"]:
                    row["max_judged_error"] = err
                    row["worst"] = {"index": [int(t) for t in torch.unravel_index(torch.tensor(i), p.shape)],
                                    "analytic": a, "numerical": num}
            rows.append(row)
    return rows


def _phase(session, model, x, y, reg_strength, seed, coords, h, tiny, gen) -> dict:
    f = _Objective(session, model, x, y, reg_strength, seed)
    rows = _check_phase(f, model, coords, h, gen)
    small = [r["tensor"] for r in rows if 0 < r["grad_scale"] < tiny]
    rescaled = {}
    for r in rows:  # G.P1: re-check a tensor of tiny gradients with the loss scaled so they are ~1
        if r["tensor"] in small:
            fs = _Objective(session, model, x, y, reg_strength, seed, scale=1.0 / r["grad_scale"])
            again = _check_phase(fs, model, coords, h, gen, only={r["tensor"]})[0]
            rescaled[r["tensor"]] = {"scale": 1.0 / r["grad_scale"], "max_rel_error": again["max_rel_error"]}
            r.update(max_rel_error=again["max_rel_error"], max_judged_error=again["max_judged_error"],
                     kinks=again["kinks"], rescaled=True)
    with torch.no_grad():
        loss = float(f())
    return {"tensors": rows, "tiny_gradient_tensors": small, "rescaled": rescaled, "loss": loss}


def _blocked(session, model, x, y) -> bool:
    """True when an all-zero weight leaves other tensors with an all-zero gradient (a zero-initialised head)."""
    if not zero_weight_layers(model):
        return False
    model.zero_grad(set_to_none=True)
    with seeded(session.seed):
        session.data_loss(model(x), y).backward()
    zero = [p for p in model.parameters() if p.requires_grad and (p.grad is None or not bool(p.grad.any()))]
    model.zero_grad(set_to_none=True)
    return bool(zero)


@register(NAME, "II.G", order=90)
def check(session, *, examples: int = 3, coords: int = 10, h: float = 1e-5, warmup_steps: int = 0,
          reg_strength: float = 1e-2, tiny: float = 1e-10, lr: float = 1e-3, max_coords: int = 128):
    """Compare analytic and numerical gradients on ``examples`` training examples (2-3 make kinks rare, G.P2)
    at ``coords`` coordinates of every parameter tensor (fewer, at least 1, when the tensors times ``coords``
    exceed ``max_coords``: the cost is two forward passes per coordinate), step ``h``. A weight tensor that
    starts all zero and blocks the gradients upstream is first given small random values. Phases: data loss;
    data + regularizer (the session's strength, else ``reg_strength``, when the session has a regularizer or
    a strength); after ``warmup_steps`` Adam steps at ``lr`` when > 0 (G.3)."""
    x, y = split_tensors(session, "train", examples)
    base = session.new_model()
    # a zero-initialised weight (a ViT head) zeroes every gradient upstream and would hide a wrong backward
    perturbed = perturb_zero_layers(base, session.seed) if _blocked(session, base, x, y) else []
    phases = [("data", base, 0.0)]
    if session.regularizer is not None or session.reg_strength > 0:
        phases.append(("data+reg", base, session.reg_strength or reg_strength))
    if warmup_steps > 0:
        warm = session.new_model()
        train_steps(session, warm, batches(session), warmup_steps, lr=lr)
        phases.append((f"after {warmup_steps} warm-up steps", warm, 0.0))
    x64 = x.double() if x.is_floating_point() else x
    y64 = y.double() if y.is_floating_point() else y
    gen = torch.Generator().manual_seed(session.seed)
    n_tensors = sum(1 for p in base.parameters() if p.requires_grad)
    per_tensor = max(1, min(int(coords), int(max_coords) // max(n_tensors, 1)))
    report, kink_ops = {}, set()
    depth = depth_of(base)
    for label, src, k in phases:
        # in place, not a deep copy: submodules captured by closures in the forward are converted too
        model = src.double().train()  # train mode: dropout on, fixed by the seed (G.2)
        rec = KinkRecorder()
        try:
            with rec, torch.no_grad(), seeded(session.seed):
                model(x64)
        except RuntimeError as e:
            if "dtype" not in str(e) and "Double" not in str(e) and "Float" not in str(e):
                raise
            return result(NAME, "skip", "the float64 model mixes dtypes: its forward calls modules it does not own "
                          "(a closure over another copy, a module kept outside the model) or makes float32 tensors "
                          "itself; see gradient_flow, or create new tensors with the input's dtype",
                          details={"exception": str(e)})
        kink_ops |= set(rec.ops)
        report[label] = _phase(session, model, x64, y64, k, session.seed, per_tensor, h, tiny, gen)
    kinks = bool(kink_ops)
    ok_at, warn_at, why = thresholds(kinks, depth)
    worst_phase, worst = max(((lbl, r) for lbl, ph in report.items() for r in ph["tensors"]),
                             key=lambda t: t[1]["max_judged_error"])
    max_err = worst["max_judged_error"]
    n_coords = sum(r["coords"] for ph in report.values() for r in ph["tensors"])
    n_kinks = sum(r["kinks"] for ph in report.values() for r in ph["tensors"])
    tiny_tensors = sorted({t for ph in report.values() for t in ph["tiny_gradient_tensors"]})
    max_all = max(r["max_rel_error"] for ph in report.values() for r in ph["tensors"])
    # judged: coordinates whose |a - n| float64 can resolve; all: every coordinate off a kink
    measured = {"max_rel_error": max_all, "max_judged_error": max_err, "coords": n_coords, "kinks": n_kinks,
                "depth": depth,
                "tensors": len(report["data"]["tensors"]), "phases": len(report),
                "below_precision": sum(r["below_precision"] for ph in report.values() for r in ph["tensors"])}
    expected = {"pass_below": ok_at, "warn_below": warn_at, "rule": why}
    details = {"phases": report, "kink_ops": sorted(kink_ops), "h": h, "examples": len(y), "perturbed": perturbed,
               "coords_per_tensor": per_tensor,
               "per_tensor": {f"{lbl}/{r['tensor']}": r["max_judged_error"]
                              for lbl, ph in report.items() for r in ph["tensors"]},
               "batch_norm": "checked in train mode on one fixed batch (batch statistics are part of f)"}
    where = f"{worst['tensor']} ({worst_phase})"
    zero = [r["tensor"] for r in report["data"]["tensors"] if r["grad_scale"] == 0]
    measured["zero_gradient_tensors"] = len(zero)
    done = (f" The weights {', '.join(perturbed[:3])} start at zero, which zeroes every gradient upstream; they were "
            "given small random values first." if perturbed else "")
    if zero:
        done += (f" {len(zero)} tensors have an all-zero gradient on these examples ({', '.join(zero[:3])}): "
                 "their check says nothing.")
    if max_err > warn_at:
        w = worst["worst"] or {}
        return result(NAME, "fail", f"analytic and numerical gradients disagree: relative error {max_err:.2g} at "
                      f"{where}, index {w.get('index')}: analytic {w.get('analytic', 0):.4g} vs numerical "
                      f"{w.get('numerical', 0):.4g} — a backward pass (custom autograd Function, in-place op, "
                      "detach) is wrong." + done, measured=measured, expected=expected, details=details)
    if max_err > ok_at:
        return result(NAME, "warn", f"largest relative error {max_err:.2g} at {where} is above {ok_at:g} ({why}); "
                      "look at that tensor's backward." + done, measured=measured, expected=expected, details=details)
    if tiny_tensors:
        return result(NAME, "warn", f"gradients agree (max relative error {max_err:.2g}) but {len(tiny_tensors)} "
                      f"tensors have gradients below {tiny:g} ({', '.join(tiny_tensors[:3])}); they were re-checked "
                      "with the loss scaled up (G.P1) — consider a loss that is not divided down so far." + done,
                      measured=measured, expected=expected, details=details)
    kinks_note = f"; {n_kinks} coordinates crossed a kink and were judged apart" if n_kinks else ""
    return result(NAME, "pass", f"analytic gradients match numerical ones: max relative error {max_all:.2g} over "
                  f"{n_coords} coordinates of {len(report['data']['tensors'])} tensors ({why}){kinks_note}." + done,
                  measured=measured, expected=expected, details=details)
