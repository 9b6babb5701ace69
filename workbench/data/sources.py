"""Any input the audit takes — a Dataset, an (X, Y) pair, an image folder — as chunks the scanner reads (recipe I.2).

Unlike ``workbench.datasets`` these readers never stop at a bad example: an image that cannot be
decoded, a ``__getitem__`` that raises, NaN values — each becomes a reason in the report (recipe I.2).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from workbench.datasets import TensorPairDataset, as_dataset, labels_of, preprocessing_of
from workbench.errors import DataError

from .decode import decode_files
from .files import IMG_EXTENSIONS, list_images, open_image, printable
from .scan import SplitSource

_SPLIT_DIRS = ("train", "val", "valid", "validation", "test")


def sources_of(data, labels=None, *, chunk_size=2048, value_range=None, task=None) -> list[SplitSource]:
    """The splits in ``data``: a dict {split: data}, a folder (with train/test subfolders or not), or one split."""
    if isinstance(data, dict):
        if not data:
            raise DataError("audit: the dict of splits is empty")
        return [source_of(d, name=str(k), chunk_size=chunk_size, value_range=value_range, task=task)
                for k, d in data.items() if d is not None]
    if isinstance(data, (str, Path)):
        root = Path(data)
        if not root.is_dir():
            raise DataError(f"audit: {root} does not exist or is not a directory")
        subs = [root / d for d in _SPLIT_DIRS if (root / d).is_dir()]
        if subs:
            # one class list for all splits, so that label k means the same class in each
            classes = sorted({e.name for d in subs for e in d.iterdir() if e.is_dir()})
            return [folder_source(d, d.name, classes=classes or None) for d in subs]
        return [folder_source(root, "data")]
    return [source_of(data, labels, name="data", chunk_size=chunk_size, value_range=value_range, task=task)]


def source_of(data, labels=None, *, name="data", chunk_size=2048, value_range=None, task=None) -> SplitSource:
    """One split from a Dataset, an (X, Y) pair, a bare X tensor with ``labels``, or a folder path."""
    if isinstance(data, (str, Path)):
        return folder_source(Path(data), name)
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return _tensor_source(_tensor(data, f"{name} X"), labels, name, chunk_size, None, value_range, task)
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data, Dataset):
        X, Y = _tensor(data[0], f"{name} X"), data[1] if labels is None else labels
        return _tensor_source(X, Y, name, chunk_size, None, value_range, task)
    if getattr(data, "reads_files", False):
        # an image folder (or a view of one) is compared on decoded pixels: an identical file in two
        # splits is a leak even when each split was normalised with its own statistics
        return _image_files_source(data, name)
    if isinstance(data, TensorPairDataset):
        # Read the tensor directly, no per-example Python calls.
        return _tensor_source(data.X, data.Y if labels is None else labels, name, chunk_size,
                              preprocessing_of(data), value_range, task)
    return _dataset_source(data, labels, name, chunk_size, value_range, task)


# ------------------------------------------------------------------------------------ tensors
def _tensor_source(X, Y, name, chunk_size, prep, value_range, task) -> SplitSource:
    if X.dim() == 0 or len(X) == 0:
        raise DataError(f"{name} is empty: X has no examples")
    y = _labels_array(Y, len(X), name)
    vr, known, denorm = _range(prep, value_range, X[: min(len(X), 1000)])

    def chunks():
        for s in range(0, len(X), chunk_size):
            yield np.arange(s, min(s + chunk_size, len(X))), X[s:s + chunk_size], {}

    return SplitSource(name, len(X), chunks, y, lambda i: _preview(X[i], vr, denorm),
                       vr, known, denorm, _is_image(X.shape[1:], task))


def _dataset_source(data, labels, name, chunk_size, value_range, task) -> SplitSource:
    ds = as_dataset(data, name)  # a clear DataError when data is no dataset at all
    n = len(ds)
    ys = _labels_array(labels, n, name) if labels is not None else None
    sample = [x for x in (_read(ds, i)[0] for i in range(min(n, 256))) if x is not None]
    if not sample:
        raise DataError(f"{name}: none of the first {min(n, 256)} examples can be read")
    first = sample[0]
    same = [x for x in sample if x.shape == first.shape]
    vr, known, denorm = _range(preprocessing_of(ds), value_range, torch.stack(same))
    found = np.full(n, np.nan) if ys is None else ys

    def chunks():
        for s in range(0, n, chunk_size):
            pos = np.arange(s, min(s + chunk_size, n))
            xs, bad = [], {}
            for i in pos:
                x, y, why = _read(ds, int(i))
                xs.append(x)
                if why:
                    bad[int(i)] = why
                elif ys is None:
                    found[i] = y
            yield pos, xs, bad

    def preview(i):
        x = _read(ds, i)[0]
        return None if x is None else _preview(x, vr, denorm)

    src = SplitSource(name, n, chunks, found, preview, vr, known, denorm, _is_image(first.shape, task))
    if ys is None and (getattr(ds, "targets", None) is not None or isinstance(ds, Subset)):
        try:  # cheap when the dataset keeps its targets; else the chunks fill ``found`` as they go
            src.labels = _labels_array(labels_of(ds), n, name)
        except Exception:  # noqa: BLE001 - labels that cannot be listed are read example by example
            pass
    return src


def _read(ds, i):
    """(x tensor, scalar label or NaN, reason) for one example; never raises."""
    try:
        x, y = ds[i]
    except Exception as e:  # noqa: BLE001 - user code failing on one example is a finding, not a crash
        return None, np.nan, f"reading it raised {type(e).__name__}: {e}"
    if not isinstance(x, torch.Tensor):
        return None, np.nan, f"its input is a {type(x).__name__}, not a tensor"
    try:
        y = float(y) if not isinstance(y, torch.Tensor) or y.numel() == 1 else np.nan
    except (TypeError, ValueError):
        y = np.nan
    return x, y, None


# ------------------------------------------------------------------------------------ folders
def folder_source(root: Path, name: str, workers: int | None = None, classes=None) -> SplitSource:
    """An ImageFolder layout (class subfolders) or a flat folder of images, decoded in worker processes."""
    listing = list_images(root, classes, strict=False)
    if not listing.files:
        raise DataError(f"image folder {root} holds no image files ({', '.join(IMG_EXTENSIONS)})"
                        + (f"; skipped: {_skipped_words(listing.skipped)}" if listing.skipped else ""))
    return files_source(name, listing.root, listing.files, listing.labels, listing.classes, None,
                        listing.skipped, workers)


def files_source(name, root, files, labels, classes, stamps=None, skipped=(), workers=None) -> SplitSource:
    """One split of image files: the decoded pixels are compared (never normalised tensors), in workers."""
    root = Path(root)

    def chunks():
        for s, d in decode_files(files, stamps, workers=workers):
            pos = np.arange(s, s + len(d.sizes))
            d.bad = {k: f"{_shown(files[s + k], root)}: {why}" for k, why in d.bad.items()}
            yield pos, d, {}

    def preview(i):
        try:
            img = open_image(files[i])
        except Exception:  # noqa: BLE001 - an unreadable file has no picture
            return None
        img.thumbnail((96, 96))
        a = np.asarray(img)
        return a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a

    y = np.asarray(labels, float) if labels is not None else None
    src = SplitSource(name, len(files), chunks, y, preview, (0.0, 1.0), True, None, True)
    src.files = [_shown(f, root) for f in files]
    src.classes = list(classes)
    src.notes = [f"{printable(rel)}: {why}" for rel, why in skipped]
    return src


def _shown(path: str, root: Path) -> str:
    """A file's name for people: relative to the split's folder, control characters escaped."""
    return printable(os.path.relpath(path, root))


def _skipped_words(skipped) -> str:
    return "; ".join(f"{printable(rel)} ({why})" for rel, why in skipped[:5]) + (" ..." if len(skipped) > 5 else "")


def _image_files_source(ds, name) -> SplitSource:
    """A ``workbench.datasets`` image-folder split (or a data view of one), read from its files."""
    files = [p for p, _ in ds.samples]
    labels = [int(c) for _, c in ds.samples]
    # stamps taken now, not at loading: a file changed on disk since then is read again, not served from the cache
    return files_source(name, ds.root, files, labels, ds.classes, None, getattr(ds, "skipped", ()))


# ------------------------------------------------------------------------------------ helpers
def _range(prep, override, sample):
    """Expected value range (after undoing normalisation), whether it is known, and the undo function."""
    denorm = prep.denormalize if prep is not None and prep.mean is not None else None
    if override is not None:
        return (float(override[0]), float(override[1])), True, denorm
    if prep is not None and prep.value_range is not None:
        return tuple(map(float, prep.value_range)), True, denorm
    x = sample.float()
    x = denorm(x) if denorm else x
    flat = x.reshape(len(x), -1)
    flat = flat[torch.isfinite(flat).all(1)]
    if len(flat) == 0:
        return (0.0, 1.0), False, denorm
    lo = float(torch.quantile(flat.min(1).values, 0.01))
    hi = float(torch.quantile(flat.max(1).values, 0.99))
    return (lo, hi if hi > lo else lo + 1.0), False, denorm


def _labels_array(Y, n, name) -> np.ndarray | None:
    if Y is None:
        return None
    try:
        y = np.asarray(Y.detach().cpu() if isinstance(Y, torch.Tensor) else Y)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{name}: the labels cannot be turned into an array: {e}") from None
    if len(y) != n:
        raise DataError(f"{name}: X has {n} examples but there are {len(y)} labels")
    if y.ndim > 1:
        # One-hot or sequence targets: only a scalar label per example can be audited.
        return np.argmax(y, 1).astype(float) if y.ndim == 2 and set(np.unique(y)) <= {0, 1} else None
    try:
        return y.astype(float)
    except (TypeError, ValueError):
        raise DataError(f"{name}: labels of type {y.dtype} are not numbers") from None


def _tensor(a, what) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu()
    try:
        return torch.as_tensor(np.asarray(a))
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{what} cannot be turned into a tensor: {e}") from None


def _is_image(shape, task) -> bool:
    if task == "sequence":
        return False
    return len(shape) == 3 or len(shape) == 2


def _preview(x: torch.Tensor, vr, denorm) -> np.ndarray | None:
    """A uint8 picture of one example for the report: (H, W) or (H, W, 3), at most 96 px on a side."""
    x = x.detach().float()
    if denorm is not None:
        x = denorm(x[None])[0]
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3:
        return None
    lo, hi = vr
    x = torch.nan_to_num(x, nan=lo, posinf=hi, neginf=lo)
    x = ((x - lo) / max(hi - lo, 1e-12)).clamp(0, 1)
    if x.shape[0] not in (1, 3):
        x = x.mean(0, keepdim=True)
    if max(x.shape[1:]) > 96:
        s = 96 / max(x.shape[1:])
        x = torch.nn.functional.interpolate(x[None], scale_factor=s, mode="bilinear", antialias=True)[0]
    a = (x * 255).round().byte().permute(1, 2, 0).numpy()
    return a[..., 0] if a.shape[-1] == 1 else a
