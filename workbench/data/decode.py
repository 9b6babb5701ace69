"""Image files decoded in worker processes, straight to what the audit keeps: a hash, brightness and a thumbnail (I.2).

A 128x128 JPEG decodes in well under a millisecond, and libjpeg decodes it straight to 1/2, 1/4
or 1/8 of its size (PIL's draft mode), which is all the audit's 16-64 px views need. So each worker
decodes a chunk of files at reduced size and returns per file a few numbers and a 16x16 thumbnail
(about 1 KB): memory is bounded by the chunk and the pixel cap, never by the folder or the image
size. Results are cached by (path, size, modification time), so the check at session creation and
a later audit decode each file once.

Exact duplicates are judged on the pixels decoded this way: a byte copy of a JPEG, or a PNG saved
again, matches; a JPEG and a PNG of its full-size pixels differ at reduced scale, and are left to
the near-duplicate finder.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

from .files import MAX_PIXELS, open_sized

STAT_SIZE = 64      # brightness statistics on at most 64x64 (scan.py's _STAT_SIZE): what draft mode decodes to
CHUNK = 256         # files per task: large enough to hide the pool's overhead, small enough to bound memory
IN_PROCESS = 512    # fewer files than this are decoded in this process (a pool costs more than it saves)
_CACHE: OrderedDict = OrderedDict()
_CACHE_MAX = 50_000  # records (about 1.2 KB each)


@dataclass
class Decoded:
    """What the workers learned about a run of files; ``bad`` maps a position in the run to the reason."""

    hashes: np.ndarray    # (n, 2) uint64: sha256 of the decoded pixels and the image size, first 128 bits
    p01: np.ndarray
    p99: np.ndarray
    entropy: np.ndarray
    thumbs: np.ndarray    # (n, S, S) float32 grayscale in [0, 1]
    sizes: np.ndarray     # (n, 2) width, height as stored (0 where unreadable)
    bad: dict

    def __len__(self) -> int:
        return len(self.sizes)


def decode_files(paths: list[str], stamps=None, *, thumb_size: int = 16, max_pixels: int | None = MAX_PIXELS,
                 workers: int | None = None, chunk: int = CHUNK):
    """Yield ``(start, Decoded)`` for consecutive runs of ``paths``, in order, decoded in worker processes.

    ``stamps``: (size in bytes, mtime_ns) per path, the cache key; files whose stamp is cached are
    not decoded again. At most two chunks per worker are in flight, so memory stays bounded.
    """
    n = len(paths)
    stamps = stamps if stamps is not None else [_stamp(p) for p in paths]
    opts = (thumb_size, max_pixels)
    keys = [(p, st[0], st[1], opts) for p, st in zip(paths, stamps, strict=True)]
    hits = [_CACHE.get(k) for k in keys]
    todo = [i for i in range(n) if hits[i] is None]
    fresh = _decode_missing([paths[i] for i in todo], [stamps[i][0] for i in todo], opts, workers, chunk)
    for s in range(0, n, chunk):
        recs = []
        for i in range(s, min(s + chunk, n)):
            if hits[i] is None:
                hits[i] = next(fresh)
                _remember(keys[i], hits[i])
            recs.append(hits[i])
            hits[i] = None  # the scan keeps what it needs; the record stays only in the (bounded) cache
        yield s, _stack(recs, thumb_size)


def workers_for(n: int, workers: int | None) -> int:
    """Worker processes for ``n`` files: the CPUs this process may use, none for few files."""
    if workers is not None:
        return max(0, int(workers))
    import multiprocessing as mp

    if n < IN_PROCESS or mp.current_process().daemon:  # a daemonic process may not start workers
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 0


def _decode_missing(paths, sizes, opts, workers, chunk):
    """Records for ``paths`` in order: in a pool of forked workers, or here when that does not pay."""
    k = workers_for(len(paths), workers)
    if k == 0:
        for s in range(0, len(paths), chunk):
            yield from decode_chunk(paths[s:s + chunk], sizes[s:s + chunk], opts)
        return
    import multiprocessing as mp

    # fork: a worker starts in milliseconds and needs only PIL and numpy (spawn would import torch).
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    done = 0
    try:
        with ProcessPoolExecutor(k, mp_context=ctx) as pool:
            window = deque()
            for s in range(0, len(paths), chunk):
                window.append(pool.submit(decode_chunk, paths[s:s + chunk], sizes[s:s + chunk], opts))
                while len(window) >= 2 * k or (window and s + chunk >= len(paths)):
                    for rec in window.popleft().result():
                        done += 1
                        yield rec
    except BrokenProcessPool:
        # A decoder crashed a worker (a native library bug on one file): finish the rest here.
        for s in range(done, len(paths), chunk):
            yield from decode_chunk(paths[s:s + chunk], sizes[s:s + chunk], opts)


def decode_chunk(paths, sizes, opts) -> list[tuple]:
    """Per file ``(hash, p01, p99, entropy, thumb, (w, h))``, or ``(reason,)`` when it cannot be read.

    Files are decoded one by one; the statistics are computed for the whole chunk at once.
    """
    thumb_size = opts[0]
    got = [_decode_one(p, n, opts) for p, n in zip(paths, sizes, strict=True)]
    by_shape: dict[tuple, list[int]] = {}
    for k, r in enumerate(got):
        if len(r) > 1:
            by_shape.setdefault(r[1].shape, []).append(k)
    out = list(got)
    for ks in by_shape.values():
        g = np.stack([got[k][1] for k in ks]).astype(np.float32) / np.float32(255)
        p01, p99, ent = gray_stats(g.reshape(len(ks), -1))
        for j, k in enumerate(ks):
            out[k] = (got[k][0], float(p01[j]), float(p99[j]), float(ent[j]), _thumb(g[j], thumb_size), got[k][2])
    return out


def _decode_one(path: str, nbytes: int, opts) -> tuple:
    """(hash, gray uint8 at most 64x64, (w, h)) of one file, or ``(reason,)``."""
    from PIL import Image, UnidentifiedImageError

    max_pixels = opts[1]
    if nbytes == 0:
        return ("empty file (0 bytes)",)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's bomb warning: the cap refuses those files anyway
            img, size = open_sized(path, max_pixels, draft=STAT_SIZE)
    except UnidentifiedImageError:
        return ("cannot be decoded: not an image file PIL can identify",)
    except Exception as e:  # noqa: BLE001 - every decoder failure is a 'corrupt' finding
        return (f"cannot be decoded ({type(e).__name__}: {e})",)
    a = np.asarray(img)
    # sha256 runs on the CPU's SHA instructions: the fastest 128 bits hashlib offers here
    h = hashlib.sha256(repr((size, a.shape)).encode())
    h.update(a.tobytes())
    g = img.convert("L")
    if g.width > STAT_SIZE or g.height > STAT_SIZE:
        g = g.resize((min(g.width, STAT_SIZE), min(g.height, STAT_SIZE)), Image.BILINEAR)
    return np.frombuffer(h.digest()[:16], np.uint64), np.asarray(g), size


def _thumb(g: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(g, "F").resize((size, size), Image.BILINEAR), np.float32)


def gray_stats(s: np.ndarray, bins: int = 32):
    """1st and 99th brightness percentiles and histogram entropy (0..1) of (B, n) gray values in [0, 1]."""
    B, n = s.shape
    lo_k, hi_k = int(round(0.01 * (n - 1))), int(round(0.99 * (n - 1)))
    part = np.partition(s, [lo_k, hi_k], axis=1)
    idx = np.minimum((s * bins).astype(np.int64), bins - 1)
    hist = np.bincount((idx + bins * np.arange(B)[:, None]).ravel(), minlength=B * bins)
    p = hist.reshape(B, bins) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log2(p), 0).sum(1) / np.log2(bins)
    return part[:, lo_k], part[:, hi_k], ent


def _stack(recs, thumb_size) -> Decoded:
    n = len(recs)
    out = Decoded(np.zeros((n, 2), np.uint64), np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32),
                  np.full(n, np.nan, np.float32), np.zeros((n, thumb_size, thumb_size), np.float32),
                  np.zeros((n, 2), np.int64), {})
    for k, r in enumerate(recs):
        if len(r) == 1:
            out.bad[k] = r[0]
            continue
        out.hashes[k], out.p01[k], out.p99[k], out.entropy[k], out.thumbs[k], out.sizes[k] = r
    return out


def _stamp(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return -1, 0


def _remember(key, rec) -> None:
    if key[1] >= 0:  # only a file with a real stamp: one that could not be stat'ed is read every time
        _CACHE[key] = rec
        if len(_CACHE) > _CACHE_MAX:
            _CACHE.popitem(last=False)


def clear_cache() -> None:
    """Forget every decoded file (the cache is per process)."""
    _CACHE.clear()
