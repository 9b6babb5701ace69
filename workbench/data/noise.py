"""Pure-noise images: random values in place of a picture, found by their lack of spatial correlation (recipe I.2).

In a picture neighbouring pixels are alike: the correlation of each pixel with the next one is
high (0.53 on 8x8 digits, more on larger pictures). In uniform noise it is zero at the image's own
resolution, and after the resize to the audit's thumbnail exactly what the resize itself makes of
noise, which is computed from the resize matrix (an 8-pixel image upsampled to 16 gains some, a
64-pixel one downsampled hardly any). An image is flagged when its correlation lies at most a
third of the way from that noise level to the typical image's, and its histogram is busy (noise
fills the picture; a stray dot on a blank one is low information, not noise).
"""

from __future__ import annotations

import numpy as np

from .findings import Findings
from .scan import _resize_matrix

CUT = 0.7   # score = 1 - (r - noise level) / (typical - noise level); flagged at or above this
BUSY = 0.5  # ... and a histogram entropy at least this x the typical image's (noise fills the picture)


def neighbour_correlation(thumbs: np.ndarray) -> np.ndarray:
    """(N,) correlation of every pixel with its right and lower neighbour, each image about its own mean."""
    t = thumbs - thumbs.mean((1, 2), keepdims=True)
    num = (t[:, :, 1:] * t[:, :, :-1]).sum((1, 2)) + (t[:, 1:] * t[:, :-1]).sum((1, 2))
    den = 0.5 * ((t[:, :, 1:] ** 2).sum((1, 2)) + (t[:, :, :-1] ** 2).sum((1, 2))
                 + (t[:, 1:] ** 2).sum((1, 2)) + (t[:, :-1] ** 2).sum((1, 2)))
    return num / np.maximum(den, 1e-12)


def at_native(thumbs: np.ndarray, native: tuple[int, int]) -> np.ndarray:
    """Thumbnails upsampled from smaller images, taken back to the images' own size (exactly: the resize is linear).

    Upsampling smooths noise into blobs; at the image's own size noise is plain noise again.
    """
    S = thumbs.shape[1]
    h, w = (min(int(n), S) for n in native)
    if (h, w) == (S, S):
        return thumbs
    back_h = np.linalg.pinv(_resize_matrix(h, S)) if h < S else np.eye(S, dtype=np.float32)
    back_w = np.linalg.pinv(_resize_matrix(w, S)) if w < S else np.eye(S, dtype=np.float32)
    return np.matmul(np.matmul(back_h.astype(np.float32), thumbs), back_w.T.astype(np.float32))


def noise_level(native: tuple[int, int], size: int) -> float:
    """The neighbour correlation that independent pixel noise at ``native`` (H, W) has after the resize to ``size``."""
    levels = []
    for n in native:
        if n <= size:
            levels.append(0.0)  # measured at the image's own size (at_native)
            continue
        R = _resize_matrix(int(n), size).astype(np.float64)
        C = R @ R.T  # covariance of the resized noise, up to the noise's variance
        levels.append(np.diag(C, 1).sum() / (0.5 * (np.diag(C)[1:].sum() + np.diag(C)[:-1].sum())))
    return float(np.mean(levels))


def find_noise(scan, out: Findings, native: dict) -> dict:
    """noise rows; ``native`` maps a split name to its images' (H, W). Returns the summary's threshold and rule."""
    ok = scan.ok
    if not scan.is_image or ok.sum() < 3 or scan.thumbs.ndim != 3:
        return {}
    size = scan.thumbs.shape[1]
    r = np.zeros(scan.n, np.float32)
    for s, name in enumerate(scan.split_names):
        sel = np.flatnonzero(scan.split_id == s)
        r[sel] = neighbour_correlation(at_native(scan.thumbs[sel], native.get(name, (size, size))))
    typical = float(np.median(r[ok]))
    levels = np.array([noise_level(native.get(name, (size, size)), size) for name in scan.split_names])
    level = levels[scan.split_id]
    gap = typical - level
    score = np.where(gap > 0.05, np.clip(1 - (r - level) / np.maximum(gap, 1e-12), 0, 1), 0.0)
    busy = scan.entropy >= BUSY * np.median(scan.entropy[ok])  # a stray dot on blank is not noise
    for g in np.flatnonzero(ok & busy & (score >= CUT)):
        out.add(scan, g, "noise", float(score[g]), None,
                f"neighbouring pixels correlate {r[g]:.2f}: pure noise gives {level[g]:.2f} at this size, "
                f"the typical image {typical:.2f}")
    return {"threshold": CUT, "typical": typical, "level": float(levels.mean())}
