"""One pass over the data: per example a pixel hash, brightness statistics, a thumbnail, or why it is corrupt.

Every finder works on the arrays gathered here, so each example is decoded exactly once and the
memory held is a small thumbnail per example (``thumb_size`` squared floats), never the full data.
Splits are concatenated: global position ``g`` belongs to ``split_names[split_id[g]]`` at
``index[g]``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from workbench.errors import DataError

from .decode import STAT_SIZE, Decoded, gray_stats

# ITU-R BT.601 luma, the "perceived brightness" cleanvision and PIL use for RGB.
_LUMA = (0.299, 0.587, 0.114)
_STAT_SIZE = STAT_SIZE  # brightness statistics on at most 64x64: the percentiles barely move, the cost does
_BINS = 32       # histogram bins for the information (entropy) measure


@dataclass
class SplitSource:
    """One split as the scanner reads it: a chunk iterator and a way to fetch one example for display."""

    name: str
    n: int
    # chunks() yields (positions, xs, bad): xs a stacked (B, ...) tensor or a list of tensors (None where
    # unreadable) at those positions in the split, bad {position: reason} for the unreadable ones.
    chunks: Callable[[], object]
    labels: np.ndarray | None
    preview: Callable[[int], np.ndarray | None]
    value_range: tuple[float, float] | None = None   # expected range of x (after denormalisation)
    range_known: bool = False
    denormalize: Callable | None = None
    is_image: bool | None = None
    notes: list[str] = field(default_factory=list)   # problems of the split as a whole, e.g. skipped files


@dataclass
class Scan:
    """What one pass over all splits learned, as flat arrays over all examples."""

    split_names: list[str]
    split_id: np.ndarray
    index: np.ndarray
    ok: np.ndarray                    # decoded, finite, in range, not blank: usable by the other finders
    hashes: np.ndarray                # (N, 2) uint64 hash of the decoded values
    p01: np.ndarray                   # 1st percentile of brightness in [0, 1]
    p99: np.ndarray                   # 99th percentile of brightness in [0, 1]
    entropy: np.ndarray               # histogram entropy, 0 (one value) .. 1 (all bins equal)
    thumbs: np.ndarray                # (N, S, S) grayscale thumbnails, or (N, D) for vectors
    labels: np.ndarray | None         # (N,) float, NaN where unknown
    is_image: bool
    corrupt: dict[int, str] = field(default_factory=dict)   # global position -> reason
    previews: dict[str, Callable[[int], np.ndarray | None]] = field(default_factory=dict)
    value_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)  # split -> problems of the split as a whole

    @property
    def n(self) -> int:
        return len(self.index)

    def where(self, g: int) -> tuple[str, int]:
        """(split name, index in the split) of a global position."""
        return self.split_names[self.split_id[g]], int(self.index[g])


def scan(sources: list[SplitSource], thumb_size: int = 16, progress=None) -> Scan:
    """Read every split once, chunk by chunk, and keep only what the finders need."""
    total = sum(s.n for s in sources)
    is_image = _decide_is_image(sources)
    parts, corrupt, offset, done = [], {}, 0, 0
    for src in sources:
        st = _SplitStats(src.n, thumb_size, is_image)
        for pos, xs, bad in src.chunks():
            for i, why in bad.items():
                corrupt[offset + i] = why
            if xs is not None and len(xs):
                for i, why in st.add(np.asarray(pos), xs, src).items():
                    corrupt.setdefault(offset + i, why)
            done += len(pos)
            if progress is not None:
                progress(min(done, total), total, f"read {src.name}")
        parts.append(st)
        offset += src.n
    ok = np.ones(total, bool)
    ok[list(corrupt)] = False
    labels = None
    if any(s.labels is not None for s in sources):
        labels = np.concatenate([np.asarray(s.labels, float) if s.labels is not None else np.full(s.n, np.nan)
                                 for s in sources])
    return Scan(
        split_names=[s.name for s in sources],
        split_id=np.concatenate([np.full(s.n, k, np.int16) for k, s in enumerate(sources)]),
        index=np.concatenate([np.arange(s.n) for s in sources]),
        ok=ok,
        hashes=np.concatenate([p.hashes for p in parts]),
        p01=np.concatenate([p.p01 for p in parts]),
        p99=np.concatenate([p.p99 for p in parts]),
        entropy=np.concatenate([p.entropy for p in parts]),
        thumbs=np.concatenate([p.thumbs for p in parts]),
        labels=labels,
        is_image=is_image,
        corrupt=corrupt,
        previews={s.name: s.preview for s in sources},
        value_ranges={s.name: s.value_range for s in sources if s.value_range is not None},
        notes={s.name: list(s.notes) for s in sources if s.notes},
    )


class _SplitStats:
    """Per-split output arrays, filled chunk by chunk."""

    def __init__(self, n: int, size: int, is_image: bool):
        self.hashes = np.zeros((n, 2), np.uint64)
        self.p01 = np.full(n, np.nan, np.float32)
        self.p99 = np.full(n, np.nan, np.float32)
        self.entropy = np.full(n, np.nan, np.float32)
        self.thumbs = np.zeros((n, size, size) if is_image else (n, size * size), np.float32)
        self.size, self.is_image = size, is_image
        self.shape: tuple | None = None

    def add(self, pos: np.ndarray, xs, src: SplitSource) -> dict[int, str]:
        """Process one chunk; returns {index in split: reason} for the corrupt ones."""
        bad: dict[int, str] = {}
        if isinstance(xs, Decoded):
            return self._add_decoded(pos, xs)
        if not isinstance(xs, torch.Tensor):
            pos, xs = self._stack_usual(pos, xs, bad)
            if xs is None:
                return bad
        # numpy from here on: on CPUs its element-wise kernels beat torch's by far for this work
        x = xs.detach().cpu().float().numpy()
        flat = x.reshape(len(x), -1)
        _hash_rows(flat, x.shape[1:], self.hashes, pos)
        fin = np.isfinite(flat)
        finite = fin.all(1)
        for k in np.flatnonzero(~finite):
            bad[int(pos[k])] = f"holds {int((~fin[k]).sum())} NaN or inf values"
        if not finite.all():
            x = np.where(fin.reshape(x.shape), x, np.float32(0))
        if src.denormalize is not None:
            x = src.denormalize(torch.from_numpy(x)).numpy()
        lo, hi = src.value_range or (0.0, 1.0)
        span = max(hi - lo, 1e-12)
        flat = x.reshape(len(x), -1)
        mn, mx = flat.min(1), flat.max(1)
        # A known range is exact up to rounding; an estimated one only catches gross errors
        # (e.g. 0-255 pixels in a 0-1 dataset), so it gets a whole span of slack.
        tol = 1e-3 * span if src.range_known else span
        for k in np.flatnonzero(finite & ((mn < lo - tol) | (mx > hi + tol))):
            bad[int(pos[k])] = (f"values {mn[k]:.3g} to {mx[k]:.3g} lie outside the "
                                f"{'expected' if src.range_known else 'typical'} range [{lo:.3g}, {hi:.3g}]")
        for k in np.flatnonzero(finite & (mx - mn <= 1e-6 * span)):
            bad.setdefault(int(pos[k]), f"blank: every value is {mn[k]:.3g}")
        v = np.clip((x - np.float32(lo)) / np.float32(span), 0, 1)
        if self.is_image:
            self._image_stats(_brightness(v), pos)
        else:
            self.thumbs[pos] = _vector_thumb(v.reshape(len(v), -1), self.thumbs.shape[1])
        return bad

    def _stack_usual(self, pos, xs, bad):
        """Stack examples of the usual shape; the others are corrupt (wrong channel count or size)."""
        if self.shape is None:
            self.shape = Counter(tuple(x.shape) for x in xs if x is not None).most_common(1)[0][0] \
                if any(x is not None for x in xs) else None
        keep, kept = [], []
        for k, x in enumerate(xs):
            if x is None:
                continue
            if tuple(x.shape) != self.shape:
                bad[int(pos[k])] = f"shape {tuple(x.shape)} differs from the usual {self.shape}"
                continue
            keep.append(x)
            kept.append(int(pos[k]))
        if not keep:
            return None, None
        return np.asarray(kept), torch.stack(keep)

    def _add_decoded(self, pos: np.ndarray, d: Decoded) -> dict[int, str]:
        """A chunk already reduced by the file decoders (decode.py): copy its numbers in place."""
        good = np.ones(len(pos), bool)
        good[list(d.bad)] = False
        p = pos[good]
        self.hashes[p], self.p01[p], self.p99[p] = d.hashes[good], d.p01[good], d.p99[good]
        thumbs = d.thumbs[good]
        if thumbs.shape[1:] != self.thumbs.shape[1:]:  # the decoders make 16x16; another thumb_size was asked
            thumbs = resize(thumbs, self.size, self.size)
        self.entropy[p], self.thumbs[p] = d.entropy[good], thumbs
        return {int(pos[k]): why for k, why in d.bad.items()}

    def _image_stats(self, g: np.ndarray, pos: np.ndarray):
        """Brightness percentiles, histogram entropy and a thumbnail for a chunk of (B, H, W) images."""
        B, H, W = g.shape
        s = resize(g, min(H, _STAT_SIZE), min(W, _STAT_SIZE)) if H * W > _STAT_SIZE ** 2 else g
        self.p01[pos], self.p99[pos], self.entropy[pos] = gray_stats(s.reshape(B, -1), _BINS)
        self.thumbs[pos] = resize(g, self.size, self.size)


def resize(g: np.ndarray, h: int, w: int) -> np.ndarray:
    """(B, H, W) images resized to (B, h, w) exactly as torch's antialiased bilinear, as two matrix products."""
    B, H, W = g.shape
    rh, rw = _resize_matrix(H, h), _resize_matrix(W, w)
    y = (g.reshape(B * H, W) @ rw.T).reshape(B, H, w)
    return np.matmul(rh, y)


@lru_cache(maxsize=64)
def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    # Resizing is linear and separable: resizing each unit vector gives the matrix's columns.
    # (The identity as one image resized along its height: R @ I = R.)
    eye = torch.eye(n_in)[None, None]
    out = F.interpolate(eye, size=(n_out, n_in), mode="bilinear", antialias=True, align_corners=False)
    return out[0, 0].contiguous().numpy()


def _brightness(v: np.ndarray) -> np.ndarray:
    """(B, H, W) perceived brightness of (B, C, H, W) or (B, H, W) values in [0, 1]."""
    if v.ndim == 3:
        return v
    if v.shape[1] == 3:
        return np.tensordot(np.asarray(_LUMA, np.float32), v, axes=([0], [1]))
    return v[:, 0] if v.shape[1] == 1 else v.mean(1)


def _vector_thumb(v: np.ndarray, d: int) -> np.ndarray:
    if v.shape[1] == d:
        return v
    if v.shape[1] < d:
        return np.pad(v, ((0, 0), (0, d - v.shape[1])))
    return F.adaptive_avg_pool1d(torch.from_numpy(np.ascontiguousarray(v))[:, None], d)[:, 0].numpy()


def _hash_rows(flat: np.ndarray, shape: tuple, out: np.ndarray, pos: np.ndarray):
    """128-bit hash of each example's decoded values and shape (not the file bytes: re-saved copies match)."""
    a = np.ascontiguousarray(flat)
    salt = repr(shape).encode()
    for k in range(len(a)):
        h = hashlib.blake2b(salt, digest_size=16)
        h.update(a[k].tobytes())
        out[pos[k]] = np.frombuffer(h.digest(), np.uint64)


def _decide_is_image(sources: list[SplitSource]) -> bool:
    for s in sources:
        if s.is_image is not None:
            return s.is_image
    raise DataError("cannot tell whether the data are images")  # pragma: no cover - sources always say
