"""Near-duplicate candidates confirmed on the pixels, in colour: a person's test of "is this a copy?" (recipe I.2).

The embedding that proposes candidates is grayscale, centred and standardised on purpose (so a
shifted, brightened or re-encoded copy lands on its original), which also makes a red circle and a
blue circle at the same place, or two similar drawings, look alike. A candidate pair is kept only
when the two pictures themselves agree: after matching brightness and contrast (one gain and one
offset shared by all channels, so a change of colour is not forgiven), allowing a one-pixel shift
and a little blur on either side (resized copies are blurred), the largest difference of any pixel
and channel stays under a limit. Measured on digits: injected copies (JPEG, brightness, resize,
1-pixel shift) differ by at most 0.13; the closest distinct drawings by 0.19 or more.
"""

from __future__ import annotations

import numpy as np

from .embed import blurred
from .scan import resize

MAX_SIZE = 16           # compared at most at 16 x 16 (the thumbnail's size): averages away JPEG's blocks
CHUNK = 2048            # pairs compared at a time (bounds memory)
SHIFTS = (-1, 0, 1)     # pixels, at the compared size
BLURS = (0.0, 0.5, 0.8, 1.1)  # Gaussian sigma applied to one side: a resized copy is a blurred one


def largest_difference(pictures: dict, pairs_a: np.ndarray, pairs_b: np.ndarray, enough: float = 0.0):
    """For each pair, the largest |pixel difference| after the best brightness match, alignment and blur.

    Pairs that differ by at most ``enough`` as they are (or at some shift) are not searched further:
    the caller only needs to know they match. ``pictures`` maps an id to a uint8 (H, W) or (H, W, 3)
    picture (or None: unreadable, never a match).
    Returns (difference, correlation) arrays, one value per pair; difference is in [0, 1] units.
    """
    n = len(pairs_a)
    diff, corr = np.full(n, np.inf, np.float32), np.full(n, -1.0, np.float32)
    if n == 0:
        return diff, corr
    ok = np.array([pictures.get(a) is not None and pictures.get(b) is not None
                   for a, b in zip(pairs_a, pairs_b, strict=True)])
    kinds = [_kind(pictures[a], pictures[b]) for a, b in zip(pairs_a[ok], pairs_b[ok], strict=True)]
    idx = np.flatnonzero(ok)
    # Pairs are compared in groups of one size and colour mode, each chunk as one batch of array operations.
    for kind in set(kinds):
        group = idx[[k == kind for k in kinds]]
        arrays = _arrays(pictures, np.union1d(pairs_a[group], pairs_b[group]), *kind)
        for s in range(0, len(group), CHUNK):
            sel = group[s:s + CHUNK]
            A = np.stack([arrays[k] for k in pairs_a[sel].tolist()])
            B = np.stack([arrays[k] for k in pairs_b[sel].tolist()])
            diff[sel], corr[sel] = _best_match(A, B, enough)
    return diff, corr


def _best_match(A: np.ndarray, B: np.ndarray, enough: float = 0.0):
    """(P, C, S, S) pairs: the residual of the best-correlated variant (shift first, then blur on one side).

    A pair whose residual is already at most ``enough`` is not searched further (it is a match).
    """
    best_m, best_c = (v.astype(np.float32) for v in _fit(A, B)[::-1])
    shift = np.zeros((len(A), 2), np.int64)
    todo = np.flatnonzero(best_m > enough)
    for dy in SHIFTS:
        for dx in SHIFTS:
            if (dy, dx) == (0, 0) or len(todo) == 0:
                continue
            c, m = _fit(_crop(A[todo], dy, dx), _crop(B[todo], -dy, -dx))
            better = c > best_c[todo]
            rows = todo[better]
            best_c[rows], best_m[rows], shift[rows] = c[better], m[better], (dy, dx)
    todo = todo[best_m[todo] > enough]
    # Blur only at each remaining pair's best shift: 6 more comparisons instead of 6 x 9.
    for dy, dx in {tuple(v) for v in shift[todo].tolist()}:
        rows = todo[(shift[todo, 0] == dy) & (shift[todo, 1] == dx)]
        a, b = A[rows], B[rows]
        for sigma in BLURS[1:]:
            for x, y in ((_blur(a, sigma), b), (a, _blur(b, sigma))):
                c, m = _fit(_crop(x, dy, dx), _crop(y, -dy, -dx))
                better = c > best_c[rows]
                best_c[rows[better]], best_m[rows[better]] = c[better], m[better]
    return best_m, best_c


def _fit(a: np.ndarray, b: np.ndarray):
    """Correlation and the largest |b - (gain * a + offset)| per pair, one gain and offset for all channels."""
    x = a.reshape(len(a), -1)
    y = b.reshape(len(b), -1)
    x = x - x.mean(1, keepdims=True)
    y = y - y.mean(1, keepdims=True)
    xy, xx, yy = (x * y).sum(1), (x * x).sum(1), (y * y).sum(1)
    gain = xy / np.maximum(xx, 1e-9)
    c = xy / np.maximum(np.sqrt(xx * yy), 1e-9)
    m = np.abs(y - gain[:, None] * x).max(1)
    return c, m


def _crop(t: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The part of (P, C, S, S) images that overlaps a copy shifted by (dy, dx)."""
    S = t.shape[-1]
    return t[..., max(0, dy):S + min(0, dy), max(0, dx):S + min(0, dx)]


def _blur(t: np.ndarray, sigma: float) -> np.ndarray:
    P, C, S, _ = t.shape
    return blurred(t.reshape(P * C, S, S), sigma).reshape(t.shape)


def _kind(a: np.ndarray, b: np.ndarray) -> tuple[int, bool]:
    """The size two pictures are compared at, and whether in colour (either of them is)."""
    return int(min(MAX_SIZE, *a.shape[:2], *b.shape[:2])), a.ndim == 3 or b.ndim == 3


def _arrays(pictures, ids, size: int, colour: bool) -> dict:
    """{id: (C, size, size) float32 in [0, 1]}; C = 3 in colour (grayscale fills all three), else 1."""
    by_shape = {}
    for k in ids.tolist():
        p = np.asarray(pictures[k])
        by_shape.setdefault(p.shape, []).append((k, p))
    out = {}
    for shape, items in by_shape.items():
        p = np.stack([q for _, q in items]).astype(np.float32) / 255
        if p.ndim == 3:
            p = np.repeat(p[:, None], 3 if colour else 1, 1)
        else:
            p = np.moveaxis(p[..., :3], -1, 1)
        n, c = p.shape[:2]
        if shape[:2] != (size, size):
            p = resize(np.ascontiguousarray(p.reshape(n * c, *shape[:2])), size, size).reshape(n, c, size, size)
        out.update(zip([k for k, _ in items], p, strict=True))
    return out
