"""architecture (recipe III.R7 and common slips): wiring mistakes read from one traced forward, before training.

One forward pass (eval mode, no gradients) on two examples records which layer feeds which:
leaf modules through forward hooks, functional ops between them (``F.relu``, ``x.view``...)
through a TorchFunctionMode. Four slips are looked for, each located by module path:
- dropout feeding batch norm (III.R7): dropout changes the variance batch norm learns its statistics on;
- a softmax output while the loss applies its own log-softmax (cross-entropy) or expects log-probabilities
  (nll_loss); a log-softmax before cross-entropy is exact, so it is only a note;
- two linear/conv layers with no non-linearity between (they collapse into one linear map);
- a bias just before batch norm (batch norm subtracts the mean: the bias is dead weight).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from workbench.checks.base import register, result, split_tensors

NAME = "architecture"
_SHAPE = {"view", "reshape", "flatten", "unflatten", "permute", "transpose", "t", "squeeze", "unsqueeze",
          "contiguous", "__getitem__", "clone", "to", "float", "double", "half", "type", "expand", "expand_as",
          "view_as", "reshape_as", "detach", "__get__"}
_DROPOUT = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"}
_AVG = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
        "adaptive_avg_pool3d"}
_LINEAR = {"linear", "conv1d", "conv2d", "conv3d"}
_SOFTMAX = {"softmax", "log_softmax"}


class Node:
    """One layer or functional op in the traced graph."""

    def __init__(self, kind: str, path: str, category: str, parents, module=None):
        self.kind, self.path, self.category, self.parents, self.module = kind, path, category, parents, module

    def __repr__(self):
        return f"{self.path} ({self.kind})"


def _category(module: nn.Module | None = None, func_name: str | None = None) -> str:
    if module is not None:
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            return "linear"
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return "batchnorm"
        if isinstance(module, nn.modules.dropout._DropoutNd):
            return "dropout"
        if isinstance(module, (nn.Flatten, nn.Unflatten, nn.Identity)):
            return "shape"
        if isinstance(module, (nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd)):
            return "avgpool"
        if isinstance(module, (nn.Softmax, nn.LogSoftmax)):
            return "softmax"
        return "other"
    name = func_name or ""
    for cat, names in (("shape", _SHAPE), ("dropout", _DROPOUT), ("avgpool", _AVG), ("linear", _LINEAR),
                       ("softmax", _SOFTMAX)):
        if name in names:
            return cat
    return "other"


class GraphTracer(TorchFunctionMode):
    """Which layer or op produced each tensor of one forward pass."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.producer, self.keep, self.stack, self.leaf_depth = model, {}, [], [""], 0
        self.nodes: list[Node] = []
        self.hooks = []
        for path, m in model.named_modules():
            leaf = not list(m.children())
            self.hooks.append(m.register_forward_pre_hook(lambda mod, args, p=path, lf=leaf: self._enter(p, lf)))
            self.hooks.append(m.register_forward_hook(
                lambda mod, args, out, p=path, lf=leaf: self._leave(mod, p, lf, args, out)))

    def close(self):
        for h in self.hooks:
            h.remove()

    def parents_of(self, args) -> list[Node]:
        flat = [a for a in args if isinstance(a, torch.Tensor)]
        for a in args:
            if isinstance(a, (list, tuple)):
                flat += [t for t in a if isinstance(t, torch.Tensor)]
        return [self.producer[id(t)] for t in flat if id(t) in self.producer]

    def _mark(self, out, node):
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.producer[id(t)] = node
                self.keep.append(t)  # ids stay unique while the tensor lives

    def _enter(self, path, leaf):
        self.stack.append(path)
        if leaf:
            self.leaf_depth += 1

    def _leave(self, module, path, leaf, args, out):
        self.stack.pop()
        if leaf:
            self.leaf_depth -= 1
            cat = _category(module)
            parents = self.parents_of(args)
            if cat == "shape" and parents:
                self._mark(out, parents[0])
                return
            node = Node(type(module).__name__, path or "(model)", cat, parents, module)
            self.nodes.append(node)
            self._mark(out, node)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.leaf_depth:
            return out
        name = getattr(func, "__name__", "")
        cat = _category(func_name=name)
        parents = self.parents_of(list(args) + list((kwargs or {}).values()))
        if cat == "shape":
            if parents:
                self._mark(out, parents[0])
            return out
        if parents or cat == "linear":
            node = Node(name, f"{self.stack[-1] or '(model)'}: {name}()", cat, parents)
            self.nodes.append(node)
            self._mark(out, node)
        return out


def _upstream(node: Node | None, through: set[str]) -> list[Node]:
    """The nodes reached walking up from ``node`` through categories in ``through`` (inclusive of the stop)."""
    found, todo, seen = [], [node] if node else [], set()
    while todo:
        n = todo.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        found.append(n)
        if n.category in through:
            todo.extend(n.parents)
    return found


def trace(model: nn.Module, x: torch.Tensor):
    """(output, nodes, output node) of one eval-mode forward pass."""
    tracer = GraphTracer(model)
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), tracer:
            out = model(x)
    finally:
        tracer.close()
        model.train(was)
    return out, tracer.nodes, tracer.producer.get(id(out))


def _loss_kind(session) -> str | None:
    """"ce" when the loss applies its own log-softmax, "nll" when it expects log-probabilities, else None."""
    loss = session.task.custom_loss
    if session.task.real_valued:
        return None
    if loss is None or isinstance(loss, nn.CrossEntropyLoss) or loss is F.cross_entropy:
        return "ce"
    if isinstance(loss, nn.NLLLoss) or loss is F.nll_loss:
        return "nll"
    return None


def _output_slip(kind: str, loss: str | None, where: str) -> dict | None:
    """The slip (or note) of a softmax-like output ``kind`` ("softmax"/"log_softmax") before the loss."""
    base = {"where": [where], "recipe": "II.8"}
    if kind == "softmax" and loss == "ce":
        return {**base, "slip": "softmax_output_with_cross_entropy", "severity": "fail",
                "fix": f"return raw logits: remove the softmax at {where}; cross-entropy applies log-softmax itself"}
    if kind == "softmax" and loss == "nll":
        return {**base, "slip": "softmax_output_with_nll_loss", "severity": "fail",
                "fix": f"nll_loss expects log-probabilities: use log_softmax at {where}, not softmax"}
    if kind == "log_softmax" and loss == "ce":
        return {**base, "slip": "log_softmax_output_with_cross_entropy", "severity": "note",
                "fix": "harmless: cross-entropy of log-softmax outputs equals cross-entropy of the logits "
                       "(log-softmax is idempotent); nll_loss would say the same with one op less"}
    return None


def find_slips(session, model: nn.Module, x: torch.Tensor) -> list[dict]:
    """Every wiring slip in ``model``, each with where it sits, the recipe step and the fix."""
    out, nodes, out_node = trace(model, x)
    slips = []
    for n in nodes:
        if n.category == "batchnorm":
            for p in n.parents:
                for up in _upstream(p, {"shape"}):
                    if up.category == "dropout":
                        slips.append({"slip": "dropout_before_batchnorm", "where": [up.path, n.path], "severity":
                                      "warn", "recipe": "III.R7", "fix": f"move the dropout {up.path} after the "
                                      f"batch norm {n.path} (or drop one of them)"})
                    if up.category == "linear" and getattr(up.module, "bias", None) is not None:
                        slips.append({"slip": "bias_before_batchnorm", "where": [up.path, n.path], "severity":
                                      "warn", "recipe": "III.R7", "fix": f"build {up.path} with bias=False: "
                                      f"{n.path} subtracts the mean and cancels it"})
        if n.category == "linear":
            for p in n.parents:
                for up in _upstream(p, {"shape", "dropout", "avgpool"}):
                    if up.category == "linear" and up is not n:
                        slips.append({"slip": "linear_without_nonlinearity", "where": [up.path, n.path],
                                      "severity": "warn", "recipe": "II.9", "fix": f"put a non-linearity (ReLU) "
                                      f"between {up.path} and {n.path}; two linear maps are one linear map"})
    outs = _upstream(out_node, {"shape"})
    soft = next((n for n in outs if n.category == "softmax"), None)
    looks = None
    if isinstance(out, torch.Tensor) and out.is_floating_point() and out.dim() >= 2 and not session.task.real_valued:
        rows = out.reshape(-1, out.shape[-1]) if session.task.name == "sequence" else out
        one, zero = torch.ones_like(rows[:, 0]), torch.zeros_like(rows[:, 0])
        if bool((rows >= 0).all()) and torch.allclose(rows.sum(-1), one, atol=1e-4):
            looks = "softmax"
        elif bool((rows <= 0).all()) and torch.allclose(rows.logsumexp(-1), zero, atol=1e-4):
            looks = "log_softmax"
    if soft is not None or looks:
        kind = looks or ("log_softmax" if "log" in soft.kind.lower() else "softmax")
        slip = _output_slip(kind, _loss_kind(session), soft.path if soft is not None else "(model output)")
        if slip is not None:
            slips.append(slip)
    unique, seen = [], set()
    for s in slips:
        key = (s["slip"], tuple(s["where"]))
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique


@register(NAME, "III.R7", order=10)
def check(session, *, examples: int = 2):
    """Trace one forward pass of a fresh model on ``examples`` examples and list the wiring slips."""
    x, _ = split_tensors(session, "train", examples)
    model = session.new_model()
    slips = find_slips(session, model, x)
    notes = [s for s in slips if s["severity"] == "note"]
    slips = [s for s in slips if s["severity"] != "note"]
    measured = {"slips": len(slips), "layers_traced": sum(1 for _ in model.modules())}
    details = {"slips": slips}
    note = " Note: " + "; ".join(f"{s['slip'].replace('_', ' ')} at {' → '.join(s['where'])}: {s['fix']}"
                                  for s in notes) + "." if notes else ""
    details["notes"] = notes
    if not slips:
        return result(NAME, "pass", "no wiring slip found (dropout→BN, softmax+cross-entropy, linear→linear, "
                      "bias→BN)." + note, measured=measured, expected="no slips", details=details)
    status = "fail" if any(s["severity"] == "fail" for s in slips) else "warn"
    text = "; ".join(f"{s['slip'].replace('_', ' ')} at {' → '.join(s['where'])}" for s in slips[:4])
    return result(NAME, status, f"{text}. Fix: {slips[0]['fix']}." + note, measured=measured, expected="no slips",
                  details=details)
