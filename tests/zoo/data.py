"""Real-but-small data for the zoo, made in code (no downloads): a character corpus from a tiny grammar,
digits as 3-channel 16x16 images, and noisy sine waves for forecasting."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import workbench as wb

_SUBJECTS = ["the cat", "a dog", "my friend", "the old man", "her sister", "a bird"]
_VERBS = ["sat on", "looked at", "ran to", "sang near", "slept by"]
_OBJECTS = ["the mat", "a tree", "the river", "my house", "the red car", "a big hill"]


def corpus(n_sentences: int = 1200, seed: int = 0) -> str:
    """Sentences from a small grammar: real structure (words, spaces, periods) and real ambiguity after a
    shared prefix ("the " goes on as "cat", "old man", "mat", ...)."""
    g = torch.Generator().manual_seed(seed)

    def pick(words):
        return words[int(torch.randint(len(words), (1,), generator=g))]

    return " ".join(f"{pick(_SUBJECTS)} {pick(_VERBS)} {pick(_OBJECTS)}." for _ in range(n_sentences))


def chars(T: int = 16, n_train: int = 512, n_test: int = 128, seed: int = 0):
    """Next-character prediction: (x, y) windows of length ``T``, y = x shifted by one; the vocabulary."""
    text = corpus(seed=seed)
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(c) for c in text])
    g = torch.Generator().manual_seed(seed + 1)
    starts = torch.randint(0, len(ids) - T - 1, (n_train + n_test,), generator=g)
    X = torch.stack([ids[s:s + T] for s in starts])
    Y = torch.stack([ids[s + 1:s + T + 1] for s in starts])
    train = wb.datasets.TensorPairDataset(X[:n_train], Y[:n_train], name="chars")
    test = wb.datasets.TensorPairDataset(X[n_train:], Y[n_train:], name="chars")
    return train, test, len(vocab)


def digits16():
    """The digits as 3 x 16 x 16 images, the input torchvision's ResNet and ViT expect (3 channels)."""
    out = []
    for ds in wb.datasets.digits():
        x = F.interpolate(ds.X, size=(16, 16), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
        out.append(wb.datasets.TensorPairDataset(x.contiguous(), ds.Y, name="digits16"))
    return tuple(out)


def sines(T: int = 24, n_train: int = 384, n_test: int = 96, seed: int = 0):
    """One-step-ahead forecasting of noisy sine waves with random frequency and phase: x (T, 1), y (T,) real."""
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    freq = 0.15 + 0.35 * torch.rand(n, 1, generator=g)
    phase = 6.283 * torch.rand(n, 1, generator=g)
    t = torch.arange(T + 1).float()
    wave = torch.sin(freq * t + phase) + 0.05 * torch.randn(n, T + 1, generator=g)
    X, Y = wave[:, :-1].unsqueeze(-1), wave[:, 1:]
    return (wb.datasets.TensorPairDataset(X[:n_train], Y[:n_train], name="sines"),
            wb.datasets.TensorPairDataset(X[n_train:], Y[n_train:], name="sines"))
