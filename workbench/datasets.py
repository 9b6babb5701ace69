"""Data in: the embedded digits default, image folders, tensor pairs and any map-style Dataset (recipe I.1).

An image folder is checked file by file when it is read (unreadable files, mixed sizes), and a
test split is read ``like=`` its training split: the same classes, size and normalisation.

Every dataset the Session holds yields ``(x, y)`` tensors. Datasets that yield PIL images or numpy
arrays are wrapped and the conversion is recorded as preprocessing, so the views can show a batch
both as the model sees it and de-normalised (recipe II.10).
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from workbench.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Preprocessing:
    """What happened to the raw data before ``model(x)``: steps in words, normalisation constants."""

    steps: list[str] = field(default_factory=list)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    value_range: tuple[float, float] | None = None  # range of the raw values before normalisation

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The batch as a person would see it: normalisation undone (channel dim 1, or 0 for one image)."""
        if self.mean is None or self.std is None:
            return x
        shape = [1] * x.dim()
        dim = 1 if x.dim() == 4 else 0
        shape[dim] = -1
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return x * std + mean

    def to_dict(self) -> dict:
        return asdict(self)


class TensorPairDataset(Dataset):
    """``(X, Y)`` tensors as a map-style Dataset, with batched fetching and its labels at hand."""

    def __init__(self, X, Y, *, preprocessing: Preprocessing | None = None, classes=None, name=""):
        X = _as_tensor(X, "X")
        Y = _as_tensor(Y, "Y")
        if len(X) == 0:
            raise DataError(f"{name or 'dataset'} is empty: X has no examples")
        if len(X) != len(Y):
            raise DataError(f"{name or 'dataset'}: X has {len(X)} examples but Y has {len(Y)}")
        if X.is_floating_point() and not torch.isfinite(X).all():
            bad = (~torch.isfinite(X.reshape(len(X), -1))).any(1).nonzero().flatten()[:5].tolist()
            raise DataError(f"{name or 'dataset'} holds NaN or inf values (examples {bad} ...)")
        self.X, self.Y = X, Y  # integer inputs (token ids) stay integers
        self.preprocessing = preprocessing or Preprocessing()
        self.classes = classes
        self.name = name

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], self.Y[i]

    @property
    def targets(self) -> torch.Tensor:
        return self.Y


class ConvertedDataset(Dataset):
    """Wraps a dataset yielding PIL images / numpy arrays / numbers so that it yields tensors."""

    def __init__(self, base: Dataset, preprocessing: Preprocessing, name: str = ""):
        self.base = base
        self.preprocessing = preprocessing
        self.name = name
        self.classes = getattr(base, "classes", None)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        item = self.base[i]
        x, y = _split_pair(item, i, self.name)
        return _to_tensor_x(x, i, self.name), _to_tensor_y(y, i, self.name)

    @property
    def targets(self):
        return getattr(self.base, "targets", None)


def digits(test_size: float = 0.2, seed: int = 0) -> tuple[TensorPairDataset, TensorPairDataset]:
    """scikit-learn's bundled 8x8 digits as (train, test): float images 1x8x8 in [0, 1], no download.

    The split is stratified and fixed (``seed``), so every session sees the same examples.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_size, stratify=d.target, random_state=seed)
    prep = Preprocessing(steps=["sklearn digits: 0-16 counts scaled to [0, 1]"], value_range=(0.0, 1.0))
    classes = [str(c) for c in range(10)]
    return (
        TensorPairDataset(X[tr], y[tr], preprocessing=prep, classes=classes, name="digits-train"),
        TensorPairDataset(X[te], y[te], preprocessing=prep, classes=classes, name="digits-test"),
    )


class ImageFiles(Dataset):
    """Image files with a class per file, read safely (``workbench.data.files``) and transformed to tensors.

    ``samples`` ``(path, class index)``, ``targets``, ``classes``, ``root``; ``skipped`` lists the files
    left out and why (unreadable, FIFOs, symlink loops); ``stamps`` (size, mtime) per file key the
    decode cache the audit shares.
    """

    reads_files = True  # the audit reads the files themselves (decoded pixels), not this dataset's tensors

    def __init__(self, root, samples, classes, transform, *, stamps=None, skipped=(), gray=False,
                 max_pixels=None, size=None, name=""):
        self.root, self.samples, self.classes = Path(root), list(samples), list(classes)
        self.class_to_idx = {c: k for k, c in enumerate(self.classes)}
        self.targets = [c for _, c in self.samples]
        self.transform, self.stamps, self.skipped = transform, stamps, list(skipped)
        self.gray, self.max_pixels, self.size, self.name = gray, max_pixels, size, name
        # a JPEG is decoded straight at the smallest 1/2..1/8 scale still at least ``size`` (then resized)
        self.draft = max(_pair(size)) if size is not None else None
        self.preprocessing = Preprocessing()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        from workbench.data.files import open_image

        path, y = self.samples[i]
        try:
            img = open_image(path, self.max_pixels, draft=self.draft, gray=self.gray)
        except Exception as e:  # noqa: BLE001 - any reading failure names its file
            raise DataError(f"cannot decode image {path}: {type(e).__name__}: {e}") from None
        return (self.transform(img) if self.transform is not None else img), y


def image_folder(path, size: int | tuple[int, int] | None = None, normalize=True, grayscale: bool = False,
                 stats_sample: int = 512, *, like=None, unreadable: str = "raise", max_pixels: int | None = None,
                 workers: int | None = None) -> ImageFiles:
    """A folder of class subfolders as tensors, every file checked before anything trains (recipe I.1, I.2).

    ``normalize``: True (per-channel mean/std measured on up to ``stats_sample`` images), False,
    ``"imagenet"``, or a ``(mean, std)`` pair. ``like=train`` reads a test or validation split with
    the training split's classes, size and normalisation (never the split's own statistics).
    Every file is decoded once at creation, in worker processes (cached by size and modification
    time): unreadable files raise a DataError naming them, or with ``unreadable="skip"`` are left
    out and listed in ``skipped``. Images of different sizes need ``size``.
    """
    from workbench.data.files import MAX_PIXELS, list_images

    if unreadable not in ("raise", "skip"):
        raise DataError(f"image_folder: unreadable must be 'raise' or 'skip', got {unreadable!r}")
    if like is not None:
        size, grayscale, normalize = _like(like, size, grayscale, normalize)
    max_pixels = MAX_PIXELS if max_pixels is None else int(max_pixels)
    root = Path(path)
    listing = list_images(root, classes=getattr(like, "classes", None))
    files, labels = listing.files, listing.labels
    if labels is None:
        raise DataError(f"image folder {root} has no class subfolders; put each class's images in a folder "
                        "named after the class (root/cat/1.png, root/dog/2.png)")
    if not files:
        raise DataError(f"image folder {root} holds no images" + _skipped_words(listing.skipped))
    stamps, bad, sizes = _check_files(files, max_pixels, workers)
    skipped = list(listing.skipped) + [(listing.relative(files[i]), why) for i, why in sorted(bad.items())]
    if bad and unreadable == "raise":
        raise DataError(f"image folder {root}: {len(bad)} of {len(files)} files cannot be read: "
                        + "; ".join(f"{printable(listing.relative(files[i]))} ({why})" for i, why in
                                    sorted(bad.items())[:8]) + (" ..." if len(bad) > 8 else "")
                        + ". Fix or delete them, or pass unreadable='skip' to leave them out (listed in .skipped)")
    keep = [i for i in range(len(files)) if i not in bad]
    if not keep:
        raise DataError(f"image folder {root}: none of its {len(files)} files can be read")
    if size is None:
        _same_size(root, [files[i] for i in keep], sizes[keep], listing)
    base, steps = _transforms(size, grayscale)
    samples = [(files[i], labels[i]) for i in keep]
    ds = ImageFiles(root, samples, listing.classes, v2_compose(base), stamps=[stamps[i] for i in keep],
                    skipped=skipped, gray=grayscale, max_pixels=max_pixels, size=size, name=root.name)
    mean, std = _normalization(ds, normalize, stats_sample)
    if mean is not None:
        ds.transform = v2_compose(base + [_v2().Normalize(mean, std)])
        steps.append(f"normalize mean={_fmt(mean)} std={_fmt(std)}"
                     + (" (the training split's)" if like is not None else ""))
    if skipped:
        steps.append(f"{len(skipped)} file(s) or folder(s) left out (see .skipped)")
    ds.preprocessing = Preprocessing(steps=steps, mean=mean, std=std, value_range=(0.0, 1.0))
    return ds


def _like(like, size, grayscale, normalize):
    """Size, grayscale and normalisation of the split ``like`` was read with (explicit arguments must agree)."""
    if not getattr(like, "reads_files", False):
        raise DataError("image_folder(like=...) takes the training split returned by image_folder()")
    prep = preprocessing_of(like)
    like_size = like.size
    if size is not None and like_size is not None and _pair(size) != _pair(like_size):
        raise DataError(f"image_folder: size={size} differs from the training split's size {like_size}; "
                        "omit size= when passing like=")
    norm = (prep.mean, prep.std) if prep.mean is not None else False
    return (like_size if size is None else size), like.gray, norm


def _check_files(files, max_pixels, workers):
    """(stamps, {index: why unreadable}, (n, 2) sizes): every file decoded once, in worker processes."""
    import os

    from workbench.data.decode import decode_files

    stamps = []
    for f in files:
        try:
            st = os.stat(f)
            stamps.append((st.st_size, st.st_mtime_ns))
        except OSError:  # gone since the listing: the decoder says so
            stamps.append((-1, 0))
    bad, sizes = {}, np.zeros((len(files), 2), np.int64)
    for s, d in decode_files(files, stamps, max_pixels=max_pixels, workers=workers):
        bad.update({s + k: why for k, why in d.bad.items()})
        sizes[s:s + len(d.sizes)] = d.sizes
    return stamps, bad, sizes


def _same_size(root, files, sizes, listing):
    """Images of different sizes cannot form a batch: say so now, not as a model error at the first step."""
    uniq, first, counts = np.unique(sizes, axis=0, return_index=True, return_counts=True)
    if len(uniq) <= 1:
        return
    order = np.argsort(-counts)
    words = ", ".join(f"{uniq[k][0]}x{uniq[k][1]}: {counts[k]} (e.g. {printable(listing.relative(files[first[k]]))})"
                      for k in order[:4])
    raise DataError(f"image folder {root}: the images have {len(uniq)} different sizes ({words}); "
                    "pass size=32 (or (height, width)) to resize them all")


def _transforms(size, grayscale):
    v2 = _v2()
    steps, base = [], []
    if grayscale:
        steps.append("grayscale")
    if size is not None:
        base.append(v2.Resize(_pair(size), antialias=True))
        steps.append(f"resize to {size}")
    base += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    steps.append("to float tensor in [0, 1]")
    return base, steps


def _normalization(ds, normalize, stats_sample):
    if normalize is True:
        return _channel_stats(ds, stats_sample)
    if normalize == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD
    if isinstance(normalize, (tuple, list)) and len(normalize) == 2:
        return tuple(map(float, normalize[0])), tuple(map(float, normalize[1]))
    return None, None


def _v2():
    from torchvision.transforms import v2

    return v2


def v2_compose(ts):
    return _v2().Compose(ts)


def _pair(size):
    return tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))


def _skipped_words(skipped) -> str:
    from workbench.data.files import printable as p

    return ("; skipped: " + "; ".join(f"{p(rel)} ({why})" for rel, why in skipped[:5])) if skipped else ""


def printable(name: str) -> str:
    from workbench.data.files import printable as p

    return p(name)


def as_dataset(data, name: str = "data") -> Dataset | None:
    """Any supported input as a Dataset yielding ``(x, y)`` tensors; a DataError names what is wrong."""
    if data is None:
        return None
    if isinstance(data, (str, Path)):
        return image_folder(data)
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data, Dataset):
        return TensorPairDataset(data[0], data[1], name=name)
    if not isinstance(data, Dataset) and not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise DataError(f"{name}: expected a torch Dataset, an (X, Y) pair or an image folder path, "
                        f"got {type(data).__name__}")
    if isinstance(data, (TensorPairDataset, ConvertedDataset)):
        return data
    try:
        n = len(data)
    except TypeError:
        raise DataError(f"{name}: the dataset has no length; use a map-style Dataset") from None
    if n == 0:
        raise DataError(f"{name} is empty")
    try:
        item = data[0]
    except Exception as e:  # noqa: BLE001 - any failure of user code gets named
        raise DataError(f"{name}: reading example 0 raised {type(e).__name__}: {e}") from None
    x, y = _split_pair(item, 0, name)
    if isinstance(x, torch.Tensor) and isinstance(y, (torch.Tensor, numbers.Integral, numbers.Real)) \
            and not isinstance(y, bool):
        if not hasattr(data, "preprocessing"):
            try:
                data.preprocessing = Preprocessing()
            except AttributeError:
                pass
        return data
    _to_tensor_x(x, 0, name)
    _to_tensor_y(y, 0, name)
    return ConvertedDataset(data, _recorded(data, [_conversion_words(x)]), name)


def labels_of(dataset: Dataset) -> torch.Tensor:
    """All labels of a dataset as a tensor, cheaply when it keeps them (``targets``)."""
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[torch.as_tensor(dataset.indices)]
    targets = getattr(dataset, "targets", None)
    if targets is None and isinstance(dataset, ConvertedDataset):
        targets = getattr(dataset.base, "targets", None)
    if targets is not None:
        return torch.as_tensor(np.asarray(targets))
    return torch.stack([torch.as_tensor(_split_pair(dataset[i], i, "")[1]) for i in range(len(dataset))])


def preprocessing_of(dataset: Dataset | None) -> Preprocessing:
    """The recorded preprocessing of a dataset (empty when nothing was recorded)."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return getattr(dataset, "preprocessing", None) or Preprocessing()


# ---------------------------------------------------------------------------------------- helpers
def _channel_stats(ds, n: int):
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(ds), generator=g)[:n].tolist()
    s = s2 = cnt = 0
    for i in idx:
        x = ds[i][0].double().flatten(1)
        s = s + x.sum(1)
        s2 = s2 + (x * x).sum(1)
        cnt += x.shape[1]
    mean = s / cnt
    std = (s2 / cnt - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(round(float(v), 4) for v in mean), tuple(round(max(float(v), 1e-3), 4) for v in std)


def _recorded(data, steps):
    prev = preprocessing_of(data)
    return Preprocessing(steps=list(prev.steps) + steps, mean=prev.mean, std=prev.std,
                         value_range=prev.value_range)


def _split_pair(item, i, name):
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise DataError(f"{name}: example {i} is a {type(item).__name__}, expected an (x, y) pair")
    return item[0], item[1]


def _conversion_words(x) -> str:
    if isinstance(x, np.ndarray):
        return f"numpy {x.dtype} array to float tensor" + (" scaled /255" if x.dtype == np.uint8 else "")
    return f"{type(x).__name__} to float tensor in [0, 1]"


def _to_tensor_x(x, i, name) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
        if x.dtype == np.uint8:
            if t.dim() == 3 and t.shape[-1] in (1, 3, 4):
                t = t.permute(2, 0, 1)
            elif t.dim() == 2:
                t = t.unsqueeze(0)
            return t.float() / 255.0
        return t.float()
    if isinstance(x, numbers.Real) and not isinstance(x, bool):
        return torch.tensor([float(x)])
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    if Image is not None and isinstance(x, Image.Image):
        from torchvision.transforms.v2 import functional as F

        return F.to_dtype(F.pil_to_tensor(x), torch.float32, scale=True)
    raise DataError(f"{name}: example {i} has an input of type {type(x).__name__}; "
                    "expected a tensor, a numpy array or a PIL image")


def _to_tensor_y(y, i, name) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        return y
    if isinstance(y, np.ndarray):
        return torch.from_numpy(y)
    if isinstance(y, numbers.Integral) and not isinstance(y, bool):
        return torch.tensor(int(y))
    if isinstance(y, numbers.Real) and not isinstance(y, bool):
        return torch.tensor(float(y))
    raise DataError(f"{name}: example {i} has a label of type {type(y).__name__}; expected a number or tensor")


def _as_tensor(a, what) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    try:
        return torch.as_tensor(np.asarray(a))
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{what} cannot be turned into a tensor: {e}") from None


def _fmt(v):
    return "(" + ", ".join(f"{x:.3g}" for x in v) + ")"
