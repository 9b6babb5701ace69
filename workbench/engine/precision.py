"""Training precision (recipe III, speed on a GPU): ``"32"``, ``"bf16"`` or ``"fp16"`` through torch.autocast.

bf16 keeps float32's exponent range, so it needs no loss scaling; fp16 does (a GradScaler). Checks that
need float64 or bit-exact results (gradient_check, determinism) never take these paths.
"""

from __future__ import annotations

import contextlib

import torch

from workbench.errors import WorkbenchError

PRECISIONS = ("32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision) -> str:
    p = str(precision).lower().replace("float", "").replace("-mixed", "")
    p = {"32": "32", "bf16": "bf16", "16": "fp16", "fp16": "fp16"}.get(p)
    if p is None:
        raise WorkbenchError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return p


def autocast(device: torch.device, precision: str):
    """The autocast context for ``precision`` on ``device`` (nothing for "32")."""
    if precision == "32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str):
    """A GradScaler for fp16 (small gradients underflow in half precision), else None."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)
