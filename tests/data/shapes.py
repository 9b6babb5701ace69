"""Synthetic colour shapes written as PNG files: a clean image folder, and the same with known defects.

Circles, squares and triangles (the three classes, ImageFolder layout) at random positions and
sizes in random colours on a random background colour. Shapes of one class at the same place in
other colours are distinct images, not copies: an audit that flags them as near-duplicates, or the
small shapes as outliers, flags what a person would not.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")


def draw(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One shape of ``kind`` at a random place and size, random colours, on a ``size`` x ``size`` canvas."""
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    fg = tuple(int(v) for v in rng.integers(0, 256, 3))
    while abs(_luma(fg) - _luma(bg)) < 40:  # a shape visible in grayscale too
        fg = tuple(int(v) for v in rng.integers(0, 256, 3))
    r = int(rng.integers(size // 10, size // 3))
    cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
    im = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(im)
    if kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif kind == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    return im


def _luma(rgb) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def shapes_folder(root, n: int = 360, size: int = 64, seed: int = 0) -> dict:
    """Write ``n`` clean shape images to ``root/<class>/NNNN.png``; returns {(class, file stem): image}."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    out = {}
    for i in range(n):
        kind = CLASSES[i % len(CLASSES)]
        (root / kind).mkdir(parents=True, exist_ok=True)
        im = draw(kind, size, rng)
        im.save(root / kind / f"{i:04d}.png")
        out[(kind, f"{i:04d}")] = im
    return out


def dirty_shapes_folder(root, n: int = 360, size: int = 64, seed: int = 0) -> dict:
    """The clean folder plus 7 known defects; returns {issue: set of file names relative to root}.

    Defects: 2 near copies (JPEG re-encoded; brightened), 1 exact copy, 2 pure-noise images,
    1 mislabelled image (a circle filed as a square), 1 nearly black image.
    """
    images = shapes_folder(root, n, size, seed)
    root = Path(root)
    rng = np.random.default_rng(seed + 1)
    keys = list(images)
    truth = {"near_duplicate": set(), "exact_duplicate": set(), "noise": set(), "label_issue": set(), "dark": set()}

    def put(kind, name, im):
        im.save(root / kind / name)
        return f"{kind}/{name}"

    (k1, s1), (k2, s2), (k3, s3) = keys[0], keys[1], keys[2]
    buf = io.BytesIO()
    images[keys[0]].save(buf, "JPEG", quality=80)
    truth["near_duplicate"] |= {f"{k1}/{s1}.png", put(k1, "copy-jpeg.png", Image.open(buf).convert("RGB"))}
    bright = np.clip(np.asarray(images[keys[1]], np.int16) + 30, 0, 255).astype(np.uint8)
    truth["near_duplicate"] |= {f"{k2}/{s2}.png", put(k2, "copy-bright.png", Image.fromarray(bright))}
    truth["exact_duplicate"] |= {f"{k3}/{s3}.png", put(k3, "copy-exact.png", images[keys[2]])}
    for j in range(2):
        noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        truth["noise"].add(put(CLASSES[j], f"noise-{j}.png", Image.fromarray(noise)))
    truth["label_issue"].add(put("square", "mislabelled.png", draw("circle", size, rng)))
    dark = (np.asarray(draw("triangle", size, rng), np.float32) * 0.08).astype(np.uint8)
    truth["dark"].add(put("triangle", "dark.png", Image.fromarray(dark)))
    return truth
