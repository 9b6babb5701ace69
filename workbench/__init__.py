"""Recipe Workbench: the training recipe (know the data, sanity-check the skeleton, iterate and babysit,
squeeze out the juice) as one-call checks, instruments and live views over one shared Session."""

from workbench import datasets, models
from workbench.errors import DataError, ModelError, RunError, WorkbenchError
from workbench.session import Session
from workbench.store import Run
from workbench.watch import watch  # the function: it shadows the submodule of the same name on purpose

__version__ = "0.1.0"


def audit(data, labels=None, **options):
    """Audit a Dataset, an (X, Y) pair or an image folder for the issues of recipe step I.2."""
    from workbench.data.audit import audit as _audit

    return _audit(data, labels=labels, **options)


def __getattr__(name):
    # the UI and the checks pull in Panel / heavier modules: load them on first use only
    if name in ("ui", "checks", "data", "instruments", "tune", "ensemble"):
        import importlib

        return importlib.import_module(f"workbench.{name}")
    if name == "CheckResult":
        from workbench.checks.base import CheckResult

        return CheckResult
    if name == "Verdict":
        from workbench.verdict import Verdict

        return Verdict
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = ["Session", "Run", "audit", "datasets", "models", "CheckResult", "Verdict", "DataError", "ModelError",
           "RunError", "WorkbenchError", "ui", "watch"]
