"""Model adapter: train and check a model as its community writes it (recipe II, every step that calls ``model(x)``).

The workbench calls ``model(x)`` with a batch-first tensor and expects one tensor back. Real model
code often differs: nanoGPT returns ``(logits, loss)``, Hugging Face models return a dict, the
pytorch/examples word language model is time-first ``(T, B)``, some models need extra keyword
inputs. ``Adapted`` wraps such a model without touching it:

- ``output``: which part of the return value is the prediction — an index (``0`` for
  ``(logits, loss)``), a key (``"logits"``), or a callable ``output(ret) -> tensor``;
- ``forward_kwargs``: extra keyword inputs for every call (``{"targets": None}``);
- ``time_first``: the model takes ``(T, B, ...)`` and returns ``(T, B, ...)``; the adapter transposes
  in and out, so every check sees the batch on dimension 0.

``Session(model, ..., output=0, forward_kwargs={...}, time_first=True)`` applies it to every model
the session builds. The wrapped model stays reachable as ``adapted.model``; its parameters are the
adapter's parameters, under the prefix ``model.``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from workbench.errors import ModelError


class Adapted(nn.Module):
    """``model`` called with ``forward_kwargs``, its prediction picked by ``output``, batch-first in and out."""

    def __init__(self, model: nn.Module, output=None, forward_kwargs: Mapping | None = None,
                 time_first: bool = False):
        super().__init__()
        check_output_selector(output)
        self.model = model
        self.output = output
        self.forward_kwargs = dict(forward_kwargs or {})
        self.time_first = bool(time_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_first:
            x = x.transpose(0, 1)
        out = select(self.model(x, **self.forward_kwargs), self.output)
        return out.transpose(0, 1) if self.time_first else out

    def extra_repr(self) -> str:
        return f"output={self.output!r}, forward_kwargs={sorted(self.forward_kwargs)}, time_first={self.time_first}"


def check_output_selector(output) -> None:
    """Raise a ModelError unless ``output`` is None, an int, a str or a callable."""
    if output is not None and not isinstance(output, (int, str)) and not callable(output):
        raise ModelError(f"output= must be an index (0 for (logits, loss)), a key ('logits') or a callable "
                         f"ret -> tensor; got {type(output).__name__}")


def select(ret, output):
    """The prediction tensor inside a model's return value ``ret``, as ``output`` says."""
    if output is None:
        if isinstance(ret, torch.Tensor):
            return ret
        raise ModelError(f"the model returned {describe(ret)}, not a tensor: tell the session which part is the "
                         f"prediction with {suggest(ret)}")
    try:
        out = output(ret) if callable(output) else ret[output]
    except (IndexError, KeyError, TypeError) as e:
        raise ModelError(f"output={output!r} does not select a prediction from {describe(ret)} ({e}); "
                         f"try {suggest(ret)}") from None
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"output={output!r} selects {describe(out)}, not a tensor, from {describe(ret)}")
    return out


def describe(ret) -> str:
    """A short description of a return value: its type and, for tuples and dicts, what they hold."""
    if isinstance(ret, torch.Tensor):
        return f"a tensor of shape {tuple(ret.shape)}"
    if isinstance(ret, Mapping):
        return "a dict with keys " + ", ".join(map(repr, list(ret)[:6]))
    if isinstance(ret, (tuple, list)):
        parts = [f"shape {tuple(r.shape)}" if isinstance(r, torch.Tensor) else type(r).__name__ for r in ret[:4]]
        return f"a {type(ret).__name__} of {len(ret)} ({', '.join(parts)})"
    return f"a {type(ret).__name__}"


def suggest(ret) -> str:
    """What to pass for a return value: ``output=0``, ``output='logits'`` or a callable."""
    if isinstance(ret, Mapping):
        keys = [k for k, v in ret.items() if isinstance(v, torch.Tensor)]
        key = "logits" if "logits" in keys else (keys[0] if keys else None)
        return f"Session(..., output={key!r})" if key is not None else "Session(..., output=lambda ret: ...)"
    if isinstance(ret, (tuple, list)):
        first = next((i for i, r in enumerate(ret) if isinstance(r, torch.Tensor) and r.dim() >= 2), 0)
        return f"Session(..., output={first})"
    return "Session(..., output=lambda ret: ...)"


def adapt(model: nn.Module, output=None, forward_kwargs: Mapping | None = None,
          time_first: bool = False) -> nn.Module:
    """``model`` itself when nothing needs adapting, else ``Adapted(model, ...)``."""
    if output is None and not forward_kwargs and not time_first:
        return model
    return Adapted(model, output, forward_kwargs, time_first)


def adapter(output=None, forward_kwargs: Mapping | None = None, time_first: bool = False) -> Callable:
    """``adapt`` with these options, as a one-argument function the Session applies to each new model."""
    check_output_selector(output)
    return lambda model: adapt(model, output, forward_kwargs, time_first)
