"""What every sanity check shares: the CheckResult verdict, the registry, and leaving the session as found.

A check is one function ``check(session, **options) -> CheckResult`` registered with ``@register``.
The runner (``workbench.checks.run_check``) wraps it in ``preserved(session)`` so the session's
model, RNG state and last run come back exactly as they were, and turns any exception from the
user's model into an ``error`` verdict (a check never raises because of a bad model).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from workbench.datasets import TensorPairDataset
from workbench.verdict import STATUSES, SYMBOLS, Verdict, fmt, jsonable  # noqa: F401 - re-exported

# the one verdict shape (workbench/verdict.py): a check's result is a Verdict, named CheckResult here
CheckResult = Verdict
_SYMBOL = SYMBOLS


@dataclass
class CheckSpec:
    """A registered check: its function, recipe step, the tasks it applies to and its option defaults."""

    name: str
    fn: Callable
    recipe: str
    tasks: tuple[str, ...] | None = None
    order: int = 100

    @property
    def options(self) -> dict:
        """Option name -> documented default (the keyword-only parameters of the check function)."""
        sig = inspect.signature(self.fn)
        return {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip().split("\n")[0]


REGISTRY: dict[str, CheckSpec] = {}


def register(name: str, recipe: str, tasks=None, order: int = 100):
    """Register ``fn(session, *, option=default, ...) -> CheckResult`` as the check ``name``."""

    def wrap(fn):
        REGISTRY[name] = CheckSpec(name, fn, recipe, tuple(tasks) if tasks else None, order)
        fn.check_name, fn.recipe = name, recipe
        return fn

    return wrap


@contextlib.contextmanager
def preserved(session):
    """Restore the session's model (weights, buffers, train/eval mode, requires_grad) and last run.

    The process's random generators need no restoring: every check trains and draws through its own
    streams (workbench/engine/rng.py), never through a reseed."""
    model = session.model
    state = copy.deepcopy(model.state_dict()) if isinstance(model, nn.Module) else None
    training = [(m, m.training) for m in model.modules()] if isinstance(model, nn.Module) else []
    grads = [(p, p.requires_grad) for p in model.parameters()] if isinstance(model, nn.Module) else []
    last_run = session.last_run
    reg = (session.regularizer, session.reg_strength)
    grad_enabled = torch.is_grad_enabled()
    try:
        yield
    finally:
        torch.set_grad_enabled(grad_enabled)
        session.model = model
        if state is not None:
            model.load_state_dict(state)
            for m, t in training:
                m.training = t
            for p, rg in grads:
                p.requires_grad_(rg)
        session.last_run = last_run
        session.regularizer, session.reg_strength = reg


# ------------------------------------------------------------------------------------------ helpers
def result(name: str, status: str, message: str, *, measured=None, expected=None, recipe="", details=None):
    """Shorthand for the checks: a CheckResult with the check's recipe step."""
    return CheckResult(name, status, measured or {}, expected, message, recipe or REGISTRY[name].recipe,
                       details or {})


def batches(session, split: str = "train", batch_size: int | None = None, seed: int | None = None,
            transform=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An endless, seeded stream of shuffled batches on the session's device (epoch after epoch).

    Tensor datasets are indexed directly (much faster than a DataLoader for tiny models); any
    other dataset goes through ``session.loader``, seeded the same way.
    """
    ds = session.split(split)
    bs = int(batch_size or session.batch_size)
    g = torch.Generator().manual_seed(session.seed if seed is None else int(seed))
    epoch = 0
    while True:
        if isinstance(ds, TensorPairDataset):
            perm = torch.randperm(len(ds), generator=g)
            chunks = ((ds.X[perm[i:i + bs]], ds.Y[perm[i:i + bs]]) for i in range(0, len(ds), bs))
        else:
            chunks = iter(session.loader(split, shuffle=True, batch_size=bs, seed=int(g.initial_seed()) + epoch))
        for x, y in chunks:
            x, y = x.to(session.device), y.to(session.device)
            yield (transform(x), y) if transform is not None else (x, y)
        epoch += 1


def train_steps(session, model: nn.Module, stream, steps: int, lr: float = 1e-3, reg: bool = False,
                record: bool = True, stop: Callable[[int, list[float]], bool] | None = None, on_step=None,
                seed: int | None = None, mode=None) -> list[float]:
    """Adam on ``steps`` batches from ``stream`` (an iterator, or a fixed (x, y) pair); the data losses.

    Runs on the engine (the package's one training loop) with no events and no run on disk, drawing
    from its own stream seeded with ``seed`` (the session's by default). Regularization stays off
    unless ``reg`` (recipe II.2, L.3); stops at a NaN/inf loss, and when ``stop(step, losses)`` says
    the verdict is already clear (``steps`` is then only the budget's cap). ``on_step(engine, x, y,
    out, loss)`` may also return True to stop; ``mode(model)`` runs after ``model.train()``.
    """
    from workbench.engine.loop import Engine

    engine = Engine.quiet(session, model, torch.optim.Adam(model.parameters(), lr=lr), seed=seed,
                          reg_strength=None if reg else 0.0)
    hook = on_step
    if stop is not None:
        def hook(eng, x, y, out, loss):
            if on_step is not None and on_step(eng, x, y, out, loss):
                return True
            eng.steplog.flush()  # the stop rule reads every loss so far: a check may afford the read
            return bool(eng.steplog.values) and stop(eng.step, eng.steplog.values)
    return engine.run_steps(stream, steps, on_step=hook, mode=mode)


def smoothed(losses: list[float], n: int = 20) -> float:
    """The mean of the last ``n`` losses (batch noise averaged out)."""
    tail = losses[-n:]
    return sum(tail) / max(len(tail), 1)


def plateaued(losses: list[float], n: int = 20, rel: float = 0.01) -> bool:
    """True when the mean of the last ``n`` losses is within ``rel`` of the ``n`` before (no more progress)."""
    if len(losses) < 2 * n:
        return False
    now, before = smoothed(losses, n), sum(losses[-2 * n:-n]) / n
    return before - now < rel * abs(before)


def zero_weight_layers(model: nn.Module) -> list[str]:
    """Weight tensors (matrices, kernels) that are all zero: a zero-initialised head blocks every gradient
    upstream of it (torchvision's ViT, many fine-tuning recipes)."""
    return [n for n, p in model.named_parameters() if p.dim() >= 2 and p.requires_grad and not bool(p.detach().any())]


@torch.no_grad()
def perturb_zero_layers(model: nn.Module, seed: int, scale: float = 0.1) -> list[str]:
    """Give every all-zero weight tensor small random values (std ``scale``/sqrt(fan_in), drawn from a local
    generator); returns their names. Used by checks that need gradients to flow through a zero head."""
    names = zero_weight_layers(model)
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(int(seed))
    for n in names:
        p = params[n]
        fan_in = max(p[0].numel(), 1)
        p.copy_((torch.randn(p.shape, generator=g) * scale / fan_in ** 0.5).to(p.device, p.dtype))
    return names


def eval_subset(n_total: int, limit: int | None, default: int = 1024) -> int | None:
    """How many held-out examples a budgeted check evaluates: ``limit`` when given, else all of them up to
    ``default`` (the first ones; a verdict on more than ~1000 examples does not change)."""
    if limit is not None:
        return int(limit)
    return None if n_total <= default else default


def evaluate_on(session, model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 512) -> dict:
    """Eval-mode data loss and metric of ``model`` on the tensors ``x``/``y`` (all of them)."""
    from workbench.engine.evaluate import evaluate

    return evaluate(session, model, (x, y), batch_size=chunk)


def split_tensors(session, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` examples (all when None) of a split as tensors on the session's device."""
    ds = session.split(split)
    n = len(ds) if limit is None else min(int(limit), len(ds))
    if isinstance(ds, TensorPairDataset):
        x, y = ds.X[:n], ds.Y[:n]
    else:
        x, y = session.batch(split, n)
    return x.to(session.device), y.to(session.device)


def output_layer(model: nn.Module, x: torch.Tensor) -> tuple[str, nn.Module] | None:
    """The (path, module) whose output IS the model's output, found with forward hooks; else the last
    Linear/Conv in the module tree."""
    outs = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: outs.__setitem__(name, o))
             for name, m in model.named_modules() if name and not list(m.children())]
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            out = model(x)
            model.train(was)
    finally:
        for h in hooks:
            h.remove()
    modules = dict(model.named_modules())
    for name, o in outs.items():
        if o is out:
            return name, modules[name]
    last = [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and m.bias is not None]
    return last[-1] if last else None


def frozen_skip(name: str, model: nn.Module):
    """A ``skip`` verdict for a check that trains, when no parameter of ``model`` requires grad; else None."""
    if any(p.requires_grad for p in model.parameters()):
        return None
    return result(name, "skip", "no parameter of the model requires grad, so nothing can train: see gradient_flow; "
                  "set requires_grad=True on the layers to train")
