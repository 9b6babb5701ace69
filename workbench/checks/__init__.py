"""The sanity checks of recipe part II, by name: ``run_check(session, "init_loss")`` -> CheckResult.

Each check is one file in this folder, registered with ``@register(name, recipe)``. ``run_check``
leaves the session as it found it (model weights, RNG, last run), stores the verdict in
``session.results[name]`` and emits ``check_done``. A model that raises gives an ``error`` verdict
saying what to pass (the exception itself goes to the verdict's details); a check that cannot run on
a model (a ModelError: no embedding to differentiate through, ...) skips with what it needs; a wrong
check name or option raises a WorkbenchError (that is the caller's mistake, not the model's).
"""

from __future__ import annotations

import contextlib
import importlib
import time
import traceback

import torch

from workbench.checks.base import REGISTRY, CheckResult, preserved, register
from workbench.errors import ModelError, WorkbenchError

_MODULES = ("architecture", "data_pipeline", "init_loss", "bias_init", "determinism", "regularization",
            "dependency", "gradient_flow", "gradcheck", "overfit", "baselines", "capacity")

THREADS = 1  # torch threads while a check runs on CPU (None: leave torch's setting)

for _m in _MODULES:
    importlib.import_module(f"workbench.checks.{_m}")


def names() -> list[str]:
    """Every registered check, in the order ``run_checks`` runs them (cheap, static ones first)."""
    return [s.name for s in sorted(REGISTRY.values(), key=lambda s: s.order)]


def options(name: str) -> dict:
    """A check's options and their defaults."""
    return _spec(name).options


def _spec(name: str):
    if name not in REGISTRY:
        raise WorkbenchError(f"no check named {name!r}; checks are: {', '.join(names())}")
    return REGISTRY[name]


def run_check(session, name: str, **opts) -> CheckResult:
    """Run one check on ``session``; the verdict also lands in ``session.results[name]``."""
    spec = _spec(name)
    unknown = sorted(set(opts) - set(spec.options))
    if unknown:
        raise WorkbenchError(f"check {name!r} has no option {', '.join(map(repr, unknown))}; "
                             f"its options are: {spec.options}")
    start = time.perf_counter()
    if spec.tasks is not None and session.task.name not in spec.tasks:
        res = CheckResult(name, "skip", {}, None, f"applies to task {' or '.join(spec.tasks)}, "
                          f"not {session.task.name!r}", spec.recipe)
    else:
        with preserved(session), _threads(session):
            try:
                res = spec.fn(session, **opts)
            except ModelError as e:  # the check cannot run on this model: say what it needs, do not blame it
                res = CheckResult(name, "skip", {}, None, str(e), spec.recipe)
            except WorkbenchError as e:
                res = CheckResult(name, "error", {}, None, str(e), spec.recipe)
            except Exception as e:  # noqa: BLE001 - a bad model gives an error verdict, never a crash
                res = CheckResult(name, "error", {}, None, _stopped(name, e), spec.recipe,
                                  {"exception": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=6)})
    res.seconds = round(time.perf_counter() - start, 4)
    session.results[name] = res
    session.emit("check_done", result=res)
    return res


def _stopped(name: str, e: Exception) -> str:
    """The sentence for a check the model stopped: where it stopped and what to pass, not the raw exception text
    (which stays in the verdict's details)."""
    return (f"{name} could not run this model: it raised {type(e).__name__} while the check called it (the exception "
            "and traceback are in details). If the model needs extra inputs pass Session(forward_kwargs={...}); if it "
            "returns a tuple or dict pass Session(output=0 or 'logits'); if it is time-first pass "
            "Session(time_first=True); otherwise run the check's steps by hand to find the failing call.")


@contextlib.contextmanager
def _threads(session):
    # the checks train tiny models: on a shared CPU, intra-op threads only contend (measured 70x slower
    # per step with 2 threads than 1 on a loaded 2-core machine), so a check runs single-threaded
    before = torch.get_num_threads()
    if session.device.type == "cpu" and THREADS:
        torch.set_num_threads(THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_checks(session, names=None, **per_check) -> list[CheckResult]:
    """Run every check (or ``names``) in order; options per check as ``overfit_batch={"steps": 200}``."""
    chosen = globals()["names"]() if names is None else [names] if isinstance(names, str) else list(names)
    for n in chosen:
        _spec(n)
    bad = sorted(set(per_check) - set(chosen))
    if bad:
        raise WorkbenchError(f"options given for checks that do not run: {bad}; pass them as "
                             f"check_name={{option: value}} for one of {chosen}")
    for k, v in per_check.items():
        if not isinstance(v, dict):
            raise WorkbenchError(f"options for {k!r} must be a dict like {{'steps': 100}}, got {v!r}")
    return [run_check(session, n, **per_check.get(n, {})) for n in chosen]


def table(results):
    """The verdicts as a pandas DataFrame: name, status, measured, expected, recipe, message, seconds."""
    import pandas as pd

    from workbench.checks.base import fmt

    return pd.DataFrame([{"name": r.name, "status": r.status, "measured": r.summary(),
                          "expected": fmt(r.expected), "recipe": r.recipe, "message": r.message,
                          "seconds": r.seconds} for r in results])


__all__ = ["CheckResult", "REGISTRY", "register", "preserved", "run_check", "run_checks", "names", "options",
           "table"]
