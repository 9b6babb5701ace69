"""The configuration the recipe settled on, and where it came from (B.1-B.3, used by IV.1 and IV.5).

Ensembles and distillation start from what the person found, not from a default: the LR the LR
finder picked (B.1), else the best trial of the search (B.2/B.3), else the last completed run the
person trained. Epochs, optimizer, weight decay and batch size come from that run when there is
one. A configuration set by hand (the Ensembles view, ``session.choose_config``) wins over all.
"""

from __future__ import annotations

import math

from workbench.errors import WorkbenchError

KEYS = ("lr", "epochs", "optimizer", "weight_decay", "batch_size")
DEFAULTS = {"lr": 1e-3, "epochs": 5, "optimizer": "adam", "weight_decay": 0.0}
# tags that mark a run the workbench trained for itself (search trials, ensemble members, baselines)
INTERNAL_TAGS = ("study", "trial", "ensemble", "distill_baseline", "internal")


def is_user_run(config: dict) -> bool:
    """Whether a run's config is one the person trained (not a search trial, member, student or baseline)."""
    tags = config.get("tags") or {}
    return config.get("kind") != "distill" and not any(t in tags for t in INTERNAL_TAGS)


def last_user_run(session, completed: bool = True):
    """The newest run the person trained (completed ones only unless ``completed=False``), or None."""
    run = session.last_run
    if run is not None and is_user_run(run.config) and (not completed or run.status == "completed"):
        return run
    for rid in reversed(session.store.ids()):
        try:
            run = session.run(rid)
        except Exception:  # noqa: BLE001 - an unreadable run folder is skipped, not fatal
            continue
        if is_user_run(run.config) and (not completed or run.status == "completed"):
            return run
    return None


def chosen_config(session) -> dict:
    """``{"lr", "epochs", "optimizer", "weight_decay", "batch_size", "source", "run_id"}``: what to train with.

    ``source`` says in words where each part came from.
    """
    manual = session.book.get("chosen_config") or {}
    base = last_user_run(session)
    cfg = {k: base.config.get(k) for k in KEYS} if base is not None else {}
    cfg = {k: v for k, v in cfg.items() if v is not None}
    sources = [f"run {base.id}"] if base is not None else []
    picked = _lr_finder(session) or _best_trial(session)
    if picked:  # a trial's short budget (B.2) does not replace the epochs of a run the person trained
        cfg.update({k: v for k, v in picked.items() if k != "source" and not (k == "epochs" and base is not None)})
        sources.insert(0, picked["source"])
    if manual:
        cfg.update({k: manual[k] for k in KEYS if manual.get(k) is not None})
        sources.insert(0, manual.get("source") or "set by hand")
    for k, v in DEFAULTS.items():
        if k not in cfg:
            cfg[k] = v
    if not sources:
        sources = ["the defaults (no LR finder, search or completed run yet)"]
    return {**cfg, "source": "; ".join(sources), "run_id": base.id if base is not None else None}


def choose_config(session, **values) -> dict:
    """Set parts of the configuration by hand (lr, epochs, optimizer, weight_decay, batch_size)."""
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise WorkbenchError(f"choose_config: unknown key(s) {unknown}; choose among {', '.join(KEYS)}")
    for k in ("lr", "epochs", "batch_size"):
        v = values.get(k)
        if v is not None and not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise WorkbenchError(f"choose_config: {k} must be a positive number, got {v!r}")
    current = dict(session.book.get("chosen_config") or {})
    current.update({k: v for k, v in values.items() if v is not None})
    current["source"] = "set by hand: " + ", ".join(f"{k} {current[k]}" for k in KEYS if k in current)
    return session.book.record("chosen_config", current)


def _lr_finder(session) -> dict | None:
    found = session.book.get("lr_find")
    lr = getattr(found, "suggestion", None)
    if lr is None:
        return None
    return {"lr": float(lr), "source": f"LR {lr:.3g} from the LR finder (B.1, {found.method})"}


def _best_trial(session) -> dict | None:
    table = session.book.get("search")
    if table is None or not len(table) or "lr" not in table.columns:
        return None
    rows = table
    if "state" in rows.columns:
        rows = rows[rows["state"].astype(str).str.upper().str.contains("COMPLETE")]
    rows = rows.dropna(subset=[c for c in ("lr", "value") if c in rows.columns])
    if rows.empty:
        return None
    best = rows.iloc[0]  # the search table is sorted best first
    out = {"lr": float(best["lr"])}
    if "weight_decay" in rows.columns and best["weight_decay"] == best["weight_decay"]:
        out["weight_decay"] = float(best["weight_decay"])
    if "epochs" in rows.columns and best["epochs"] == best["epochs"]:
        out["epochs"] = int(best["epochs"])
    trial = best.get("trial", "?")
    out["source"] = f"LR {out['lr']:.3g} from the best search trial {trial} (B.2)"
    return out
