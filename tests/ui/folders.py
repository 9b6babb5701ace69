"""A folder of real PNG images made from digits, with the defects people's folders have (I.2).

``train/<class>/*.png`` and ``test/<class>/*.png`` (digits 0-2 scaled to 16x16), plus on request: a
truncated PNG in train, an exact duplicate pair in train, and a train image copied into test (a leak).
Used by the view tests and by the browser walk on "a folder of their own images".

``image_folder`` decodes every file when it is read and refuses an unreadable one by name (tested in
tests/data/test_hostile_files.py). To exercise what the views do with a file that goes bad later
(a crossed tile, a run that fails naming the file), ``damaged=False`` writes the PNG whole and
returns ``damage()``, which truncates it once the session exists: a file changed on disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("zero", "one", "two")


def _png(a: np.ndarray, path: Path) -> None:
    img = Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8), "L").resize((16, 16), Image.NEAREST)
    img.save(path, "PNG")


def digits_folder(root, per_class: int = 24, test_per_class: int = 8, defects: bool = True,
                  damaged: bool = True) -> dict:
    """Write the folders; returns paths and the planted defects (``truncated``, ``duplicate``, ``leak``)."""
    import workbench as wb

    train, _ = wb.datasets.digits()
    x, y = train.X.numpy().reshape(len(train.X), 8, 8), train.Y.numpy()
    root = Path(root)
    out = {"train": root / "train", "test": root / "test"}
    for c, name in enumerate(CLASSES):
        idx = np.flatnonzero(y == c)[:per_class + test_per_class]
        for split, part in (("train", idx[:per_class]), ("test", idx[per_class:])):
            folder = out[split] / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in part:
                _png(x[i], folder / f"{i:04d}.png")
    if defects:
        first = sorted((out["train"] / "zero").glob("*.png"))
        bad = out["train"] / "one" / "truncated.png"
        whole = first[1].read_bytes()
        bad.write_bytes(whole[:60] if damaged else whole)  # the header survives, the pixels do not
        out["damage"] = lambda: bad.write_bytes(whole[:60])
        dup = out["train"] / "two" / "copy_of_zero.png"  # the same pixels twice, one labelled wrongly
        dup.write_bytes(first[2].read_bytes())
        leak = out["test"] / "zero" / "leaked.png"
        leak.write_bytes(first[3].read_bytes())
        out.update(truncated=bad, duplicate=(first[2], dup), leak=(first[3], leak))
    return out


def folder_session(root, runs):
    """A session on the folder (16x16 RGB, not normalised: a truncated file must not stop the loading)."""
    from functools import partial

    import workbench as wb

    paths = digits_folder(root, damaged=False)
    train = wb.datasets.image_folder(paths["train"], size=16, normalize=False)
    test = wb.datasets.image_folder(paths["test"], size=16, normalize=False)
    model = partial(wb.models.tiny_cnn, num_classes=len(CLASSES), in_channels=3)
    session = wb.Session(model, train, test, seed=0, root=runs, name="my images")
    paths["damage"]()  # the file goes bad after it was read: the views meet it later
    return session, paths
