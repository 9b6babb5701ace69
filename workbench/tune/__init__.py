"""Part III tuning (recipe III.B, III.M3, III.R): LR range test, random search on Optuna, curve
diagnosis, run comparison and the regularization toolkit.

``session.lr_find()`` (B.1), ``session.search()`` (B.2, B.3), ``session.diagnose(run)`` (B.4) and
``session.compare(a, b)`` (III.M3) call into this package; the names below are loaded on first use,
so importing the workbench does not import Optuna.
"""

import importlib

_EXPORTS = {
    "lr_find": "lr_find", "LRFindResult": "lr_find", "coarse_test": "lr_find",
    "search": "search", "default_space": "search", "make_storage": "search", "results": "search",
    "diagnose": "diagnose", "Diagnosis": "diagnose", "Finding": "diagnose", "THRESHOLDS": "diagnose",
    "compare": "compare", "Comparison": "compare", "annotate_runs": "compare", "config_diff": "compare",
    "augmentation": "regularize", "Augmentation": "regularize", "downsample": "regularize",
    "dropout_before_batchnorm": "regularize", "toolkit": "regularize",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"workbench.tune.{_EXPORTS[name]}"), name)
    if name in ("regularize", "cli"):  # submodules whose names no function takes
        return importlib.import_module(f"workbench.tune.{name}")
    raise AttributeError(f"module 'workbench.tune' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
