"""The digits demo session, optionally with known defects added so the data views have something to show."""

from __future__ import annotations

import torch

from workbench import datasets, models
from workbench.datasets import TensorPairDataset
from workbench.session import Session


def add_defects(train: TensorPairDataset, test: TensorPairDataset, seed: int = 0):
    """Digits with known defects (recipe I.2): duplicates, a train/test leak, blank and noisy images,
    flipped labels. Returns (train, test, truth) where ``truth`` maps issue type -> train indices."""
    g = torch.Generator().manual_seed(seed)
    X, Y = train.X.clone(), train.Y.clone()
    n = len(X)
    perm = torch.randperm(n, generator=g)
    dup_src = perm[:20]
    flip = perm[20:40]
    blank_at = perm[40:45]
    X = torch.cat([X, X[dup_src]])                       # exact duplicates appended
    Y = torch.cat([Y, Y[dup_src]])
    Y[flip] = (Y[flip] + 1 + torch.randint(0, 9, (len(flip),), generator=g)) % 10
    X[blank_at] = 0.0
    leak = torch.arange(10)                              # first test images copied into train
    X = torch.cat([X, test.X[leak]])
    Y = torch.cat([Y, test.Y[leak]])
    truth = {"exact_duplicate": list(range(n, n + len(dup_src))), "label_issue": flip.tolist(),
             "corrupt": blank_at.tolist(), "train_test_leak": list(range(n + len(dup_src), len(X)))}
    prep = train.preprocessing
    return (TensorPairDataset(X, Y, preprocessing=prep, classes=train.classes, name="digits-defects-train"),
            test, truth)


def demo_session(root="runs", defects: bool = False, model=models.tiny_cnn, seed: int = 0, **kwargs) -> Session:
    """A Session on the embedded digits with ``tiny_cnn`` (no download)."""
    train, test = datasets.digits()
    if defects:
        train, test, _ = add_defects(train, test, seed=seed)
    return Session(model, train, test, seed=seed, root=root, name="digits" + (" + defects" if defects else ""),
                   **kwargs)
