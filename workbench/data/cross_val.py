"""Out-of-sample class probabilities from the session's own model, by k-fold cross-validation (recipe I.2).

A trained run has seen every training example, so its predictions on them cannot judge their
labels. Here the session's model is trained k times with the configuration of its latest finished
run, each time on k-1 folds, and predicts the fold it did not see; cleanlab then reads those
probabilities (``labels.py``). Each fold is the engine (the package's one training loop) with the run's
optimizer, regularization and augmentation, drawing from its own random stream.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from workbench.engine.loop import Engine
from workbench.train import OPTIMIZERS, make_augment, make_optimizer


def latest_run_config(session) -> dict | None:
    """The configuration of the session's latest completed classification run, or None."""
    try:
        table = session.runs()
    except Exception:  # noqa: BLE001 - a stand-in session without a run store has no runs
        return None
    if table is None or not len(table) or "status" not in table:
        return None
    for run_id in reversed(table[table["status"] == "completed"]["id"].tolist()):
        config = session.run(run_id).config
        if config.get("task", "classification") == "classification":
            return {**config, "id": run_id}
    return None


@torch.no_grad()
def _predict(session, model, dataset) -> np.ndarray:
    model.eval()
    out = []
    # a loader with no generator of its own draws its worker seed from torch's global one: give it one
    for x, _ in DataLoader(dataset, batch_size=512, shuffle=False, generator=torch.Generator()):
        out.append(torch.softmax(model(x.to(session.device)).float(), 1).cpu())
    return torch.cat(out).numpy()


def session_pred_probs(session, folds: int = 5, max_epochs: int = 5, config: dict | None = None,
                       progress=None) -> tuple[dict, str] | None:
    """``({"train": (N, C) probabilities}, words saying how)`` or None when the session has no finished run.

    Each fold trains ``min(run epochs, max_epochs)`` epochs with the run's optimizer, learning rate,
    weight decay, batch size and model arguments.
    """
    from sklearn.model_selection import StratifiedKFold

    config = config or latest_run_config(session)
    if config is None:
        return None
    y = session.labels("train").numpy().astype(int)
    counts = np.bincount(y, minlength=session.num_classes)
    folds = int(min(folds, counts[counts > 0].min()))
    if folds < 2:
        return None
    epochs = int(min(config.get("epochs", 1), max_epochs))
    seed = int(config.get("seed", session.seed))
    probs = np.zeros((len(y), session.num_classes))
    correct = 0
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for k, (fit_idx, held_idx) in enumerate(splitter.split(np.zeros(len(y)), y)):
        if progress is not None:
            progress(k, folds, f"labels: cross-validation fold {k + 1}/{folds}")
        model = _train_fold(session, config, fit_idx, seed + k, epochs)
        probs[held_idx] = _predict(session, model, Subset(session.train, held_idx))
        correct += int((probs[held_idx].argmax(1) == y[held_idx]).sum())
    acc = correct / len(y)
    words = (f"{folds}-fold cross-validation of the session's model ({session.model_name}) with the configuration "
             f"of run {config['id']} ({epochs} epochs a fold; out-of-sample accuracy {acc:.1%})")
    return {"train": probs}, words


def _train_fold(session, config: dict, fit_idx, seed: int, epochs: int):
    """The session's model trained on one fold's training part, as the run's configuration says."""
    model = session.new_model(seed=seed, **config.get("model_kwargs", {}))
    name = config.get("optimizer", "adam")
    opt = make_optimizer(name if name in OPTIMIZERS else "adam", model.parameters(), config.get("lr", 1e-3),
                         config.get("weight_decay", 0.0))
    engine = Engine.quiet(session, model, opt, seed=seed, reg_strength=config.get("reg_strength") or 0.0)
    augment = config.get("augment", False)
    engine.augment = make_augment(augment) if isinstance(augment, bool) else None  # a custom one is not on disk
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(Subset(session.train, fit_idx), batch_size=config.get("batch_size", 64), shuffle=True,
                        generator=g)
    engine.run_steps(itertools.chain.from_iterable(itertools.repeat(loader, epochs)), epochs * len(loader))
    return model
