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


def find_near(scan, E, phashes, dist, ind, reps, ratio: float, out: Findings, blurred=None) -> dict:
    """near_duplicate rows: sets of distinct examples closer than ``ratio`` x the typical neighbour distance.

    ``E``, ``phashes``, ``dist``, ``ind`` are over ``reps`` (one example per exact set);
    ``blurred``: (distance, index) of each blurred example's nearest other example (resized copies).
    Returns what the summary needs: the threshold and the reference distance.
    """
    if len(reps) < 2 or dist.shape[1] == 0:
        return {"threshold": np.nan, "typical": np.nan}
    typical = float(np.median(dist[:, -1]))  # distance to the k-th neighbour: hardly moved by a few copies
    thr = ratio * typical
    rows, cols = np.nonzero(dist < thr)
    edges = [(rows, ind[rows, cols], dist[rows, cols], thr)]
    edges.append((*_hash_tier(E, phashes, 2 * thr), 2 * thr))  # an equal hash earns a looser distance
    if blurred is not None:
        bd, bi = blurred
        close = np.flatnonzero(bd < thr)
        edges.append((close, bi[close], bd[close], thr))
    a, b, d = (np.concatenate([e[i] for e in edges]) for i in range(3))
    rel = np.concatenate([e[2] / max(e[3], 1e-12) for e in edges])  # distance / the tier's limit, in [0, 1)
    if len(a) == 0:
        return {"threshold": thr, "typical": typical}
    n = len(reps)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    ncomp, comp = connected_components(graph, directed=False)
    # Each member's score: how close its nearest fellow member is (0.5 at the tier's limit, 1 for a copy).
    best, best_rel = np.full(n, np.inf), np.full(n, np.inf)
    for x in (a, b):
        np.minimum.at(best, x, d)
        np.minimum.at(best_rel, x, rel)
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
                    f"near copy of {_names(scan, others)}{more} (set of {len(g_members)}, distance "
                    f"{best[j]:.3g} vs typical {typical:.3g}){cross}")
    return {"threshold": thr, "typical": typical}


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
