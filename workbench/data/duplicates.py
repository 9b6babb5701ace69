"""Duplicate sets: identical pixels (exact), the same across splits (leak), and near-duplicates (recipe I.2).

Tiers, cheapest first: a hash of the decoded values groups exact copies; a perceptual hash groups
candidates that a short embedding distance confirms; the k nearest neighbours in embedding space
catch the rest. Sets are the connected components of the "is a copy of" graph (scipy), so a set of
fifty copies costs fifty edges, not 1,225 pairs.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from . import pixel_match
from .findings import Findings


def exact_sets(scan) -> np.ndarray:
    """For every example, the global position of the first example with identical values (-1: unusable)."""
    rep = np.full(scan.n, -1, np.int64)
    ok = np.flatnonzero(scan.ok)
    if len(ok) == 0:
        return rep
    _, first, inv = np.unique(scan.hashes[ok], axis=0, return_index=True, return_inverse=True)
    rep[ok] = ok[first[inv.ravel()]]
    return rep


def find_exact(scan, rep: np.ndarray, out: Findings) -> None:
    """exact_duplicate rows for copies within a split, train_test_leak rows for copies across splits."""
    ok = rep >= 0
    counts = np.bincount(rep[ok], minlength=scan.n)
    members = np.flatnonzero(ok & (counts[np.maximum(rep, 0)] > 1))
    order = members[np.lexsort((members, rep[members]))]
    for set_members in np.split(order, np.flatnonzero(np.diff(rep[order])) + 1):
        if len(set_members) < 2:
            continue
        gid = out.new_group()
        sp = scan.split_id[set_members]
        crosses = len(np.unique(sp)) > 1
        for g, s in zip(set_members, sp, strict=True):
            same = set_members[(sp == s) & (set_members != g)]
            if len(same):
                more = " ..." if len(same) > 5 else ""
                out.add(scan, g, "exact_duplicate", 1.0, gid,
                        f"identical pixels to {_names(scan, same)}{more} (set of {len(set_members)})")
            if crosses:
                out.add(scan, g, "train_test_leak", 1.0, gid,
                        f"identical pixels also in {_names(scan, set_members[sp != s])}: "
                        "the evaluation sees training data")


def find_near(scan, E, phashes, dist, ind, reps, ratio: float, out: Findings, blurred=None,
              max_diff: float = 0.15) -> dict:
    """near_duplicate rows: sets of distinct examples close in embedding space and confirmed on the pixels.

    ``E``, ``phashes``, ``dist``, ``ind`` are over ``reps`` (one example per exact set);
    ``blurred``: (distance, index) of each blurred example's nearest other example (resized copies).
    A candidate pair becomes an edge only when its pictures differ by at most ``max_diff`` in any
    pixel and channel after matching brightness (pixel_match.py): colour and structure must agree.
    Returns what the summary needs: the threshold, the reference distance and the pairs rejected.
    """
    if len(reps) < 2 or dist.shape[1] == 0:
        return {"threshold": np.nan, "typical": np.nan, "rejected": 0}
    typical = float(np.median(dist[:, -1]))  # distance to the k-th neighbour: hardly moved by a few copies
    thr = ratio * typical
    a, b, d, rel = _candidates(E, phashes, dist, ind, thr, blurred)
    diff, corr = pixel_match.largest_difference(_Pictures(scan, reps), a, b, enough=0.5 * max_diff)
    keep = (diff <= max_diff) & (corr >= 0.9)
    stats = {"threshold": thr, "typical": typical, "rejected": int((~keep).sum()), "candidates": len(a)}
    a, b, d, rel, diff = a[keep], b[keep], d[keep], rel[keep], diff[keep]
    if len(a) == 0:
        return stats
    n = len(reps)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    ncomp, comp = connected_components(graph, directed=False)
    # Each member's score: how close its nearest fellow member is, in the embedding and on the
    # pixels (0.5 at either limit, 1 for an identical picture).
    best, best_rel, best_diff = np.full(n, np.inf), np.full(n, np.inf), np.full(n, np.inf)
    worst = np.maximum(rel, diff / max_diff)
    for x in (a, b):
        np.minimum.at(best, x, d)
        np.minimum.at(best_rel, x, worst)
        np.minimum.at(best_diff, x, diff)
    sizes = np.bincount(comp, minlength=ncomp)
    in_set = np.flatnonzero(sizes[comp] > 1)
    for c_members in _groups(comp, in_set):
        gid = out.new_group()
        g_members = reps[c_members]
        splits = set(scan.split_id[g_members].tolist())
        cross = " — spans " + " and ".join(scan.split_names[s] for s in sorted(splits)) if len(splits) > 1 else ""
        for j, g in zip(c_members, g_members, strict=True):
            others = g_members[:6][g_members[:6] != g]
            score = float(np.clip(1 - 0.5 * best_rel[j], 0.5, 1.0))
            more = " ..." if len(g_members) > 6 else ""
            out.add(scan, g, "near_duplicate", score, gid,
                    f"near copy of {_names(scan, others)}{more} (set of {len(g_members)}): embedding distance "
                    f"{best[j]:.3g} vs typical {typical:.3g}; pictures differ by at most {best_diff[j]:.2f} "
                    f"per pixel after matching brightness (limit {max_diff:g}){cross}")
    return stats


def _candidates(E, phashes, dist, ind, thr, blurred):
    """Candidate pairs (a < b, each once) from the neighbour, hash and blur tiers: a, b, distance, distance/limit."""
    rows, cols = np.nonzero(dist < thr)
    edges = [(rows, ind[rows, cols], dist[rows, cols], thr)]
    edges.append((*_hash_tier(E, phashes, 2 * thr), 2 * thr))  # an equal hash earns a looser distance
    if blurred is not None:
        bd, bi = blurred
        close = np.flatnonzero(bd < thr)
        edges.append((close, bi[close], bd[close], thr))
    a, b, d = (np.concatenate([e[i] for e in edges]) for i in range(3))
    rel = np.concatenate([e[2] / max(e[3], 1e-12) for e in edges])  # distance / the tier's limit, in [0, 1)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((rel, hi, lo))
    lo, hi, d, rel = lo[order], hi[order], d[order], rel[order]
    first = np.ones(len(lo), bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])  # the closest tier's record of each pair
    return lo[first], hi[first], d[first], rel[first]


class _Pictures:
    """Picture of a rep row (uint8, as the report shows it), read once and only when asked."""

    def __init__(self, scan, reps):
        self.scan, self.reps, self.cache = scan, reps, {}

    def get(self, j):
        if j not in self.cache:
            split, index = self.scan.where(self.reps[j])
            try:
                self.cache[j] = self.scan.previews[split](index)
            except Exception:  # noqa: BLE001 - an unreadable picture confirms nothing
                self.cache[j] = None
        return self.cache[j]

    __getitem__ = get


def _hash_tier(E, phashes, limit):
    """Pairs with an equal perceptual hash whose embeddings are within ``limit``: each to its bucket's first."""
    if phashes is None or len(phashes) < 2:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    _, first, inv = np.unique(phashes, return_index=True, return_inverse=True)
    head = first[inv]
    cand = np.flatnonzero(head != np.arange(len(phashes)))
    d = np.linalg.norm(E[cand] - E[head[cand]], axis=1)
    keep = d < limit
    return cand[keep], head[cand[keep]], d[keep]


def _groups(comp, members):
    order = members[np.argsort(comp[members], kind="stable")]
    return np.split(order, np.flatnonzero(np.diff(comp[order])) + 1) if len(order) else []


def _names(scan, gs, most: int = 5) -> str:
    return ", ".join(f"{s} #{i}" for s, i in (scan.where(g) for g in gs[:most]))
