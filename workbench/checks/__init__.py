"""The sanity checks of recipe part II, by name: ``run_check(session, "init_loss")`` -> CheckResult.

Each check is one file in this folder, registered with ``@register(name, recipe)``. ``run_check``
leaves the session as it found it (model weights, RNG, last run), records the verdict in the
session's result book (``session.book``, read as ``session.results[name]``) and emits
``check_done``. A model that raises gives an ``error`` verdict saying what to pass (the exception
itself goes to the verdict's details); a check that cannot run on a model (a ModelError: no
embedding to differentiate through, ...) skips with what it needs; a wrong check name or option
raises a WorkbenchError (that is the caller's mistake, not the model's). Checks run as jobs of the
session's runner, off any page's thread.
"""

from __future__ import annotations

import importlib
import time
import traceback

from workbench import validate
from workbench.checks.base import REGISTRY, CheckResult, preserved, register
from workbench.errors import ConfigError, ModelError, WorkbenchError

_MODULES = ("architecture", "data_pipeline", "init_loss", "bias_init", "determinism", "regularization",
            "dependency", "gradient_flow", "gradcheck", "overfit", "baselines", "capacity")

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
        raise ConfigError(f"no check named {name!r}; checks are: {', '.join(names())}")
    return REGISTRY[name]


def run_check(session, name: str, **opts) -> CheckResult:
    """Run one check on ``session``; the verdict is recorded in the session's book (``session.results[name]``)."""
    spec = _spec(name)
    unknown = sorted(set(opts) - set(spec.options))
    if unknown:
        raise ConfigError(f"check {name!r} has no option {', '.join(map(repr, unknown))}; "
                          f"its options are: {spec.options}")
    validate.check_options(name, opts)  # batches=0 or steps<0 would give a verdict on nothing
    return session.runner.call("check", _run_check, session, spec, name, opts)


def _run_check(session, spec, name: str, opts: dict) -> CheckResult:
    start = time.perf_counter()
    if spec.tasks is not None and session.task.name not in spec.tasks:
        res = CheckResult(name, "skip", {}, None, f"applies to task {' or '.join(spec.tasks)}, "
                          f"not {session.task.name!r}", spec.recipe)
    else:
        with preserved(session):
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
    session.book.record("checks", res, name=name)
    session.emit("check_done", result=res)
    return res


def _stopped(name: str, e: Exception) -> str:
    """The sentence for a check the model stopped: where it stopped and what to pass, not the raw exception text
    (which stays in the verdict's details)."""
    return (f"{name} could not run this model: it raised {type(e).__name__} while the check called it (the exception "
            "and traceback are in details). If the model needs extra inputs pass Session(forward_kwargs={...}); if it "
            "returns a tuple or dict pass Session(output=0 or 'logits'); if it is time-first pass "
            "Session(time_first=True); otherwise run the check's steps by hand to find the failing call.")


def run_checks(session, names=None, **per_check) -> list[CheckResult]:
    """Run every check (or ``names``) in order; options per check as ``overfit_batch={"steps": 200}``."""
    chosen = globals()["names"]() if names is None else [names] if isinstance(names, str) else list(names)
    for n in chosen:
        _spec(n)
    bad = sorted(set(per_check) - set(chosen))
    if bad:
        raise ConfigError(f"options given for checks that do not run: {bad}; pass them as "
                          f"check_name={{option: value}} for one of {chosen}")
    for k, v in per_check.items():
        if not isinstance(v, dict):
            raise ConfigError(f"options for {k!r} must be a dict like {{'steps': 100}}, got {v!r}")
    # one job for the whole list: a second request queues behind it, not between its checks
    return session.runner.call("checks", lambda: [run_check(session, n, **per_check.get(n, {})) for n in chosen])


def table(results):
    """The verdicts as a pandas DataFrame: name, status, measured, expected, recipe, message, seconds."""
    import pandas as pd

    from workbench.checks.base import fmt

    return pd.DataFrame([{"name": r.name, "status": r.status, "measured": r.summary(),
                          "expected": fmt(r.expected), "recipe": r.recipe, "message": r.message,
                          "seconds": r.seconds} for r in results])


__all__ = ["CheckResult", "REGISTRY", "register", "preserved", "run_check", "run_checks", "names", "options",
           "table"]
