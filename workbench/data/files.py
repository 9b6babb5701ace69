"""Image files as a person keeps them, read safely: the listing and the opening every reader shares (recipe I.1, I.2).

Real folders hold hostile files: symlink loops that would list a class forever (or under another
class), FIFOs named ``*.png`` that block the first ``open``, decompression bombs, 16-bit PNGs,
CMYK JPEGs, palettes with transparency, EXIF-rotated photos. ``list_images`` walks a folder once,
follows a symlink only to a file or folder not listed yet (``realpath``), keeps regular files only
(``stat.S_ISREG``) and says why it skipped anything; ``open_image`` decodes one file to 8-bit RGB
or L the same way for the audit and for training, with a pixel cap checked before decoding.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.errors import DataError

# torchvision's IMG_EXTENSIONS, without importing torchvision (seconds) for a tuple.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# PIL's own guard (89.5 M pixels): a larger image is refused before its pixels are decoded.
MAX_PIXELS = 89_478_485
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


@dataclass
class Listing:
    """The image files under a folder: paths, class index per file, class names, and what was skipped why."""

    root: Path
    files: list[str]                       # absolute paths as listed (a symlink keeps its own name)
    labels: list[int] | None               # class index per file; None for a flat folder
    classes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path relative to root, reason)

    def relative(self, path: str) -> str:
        return os.path.relpath(path, self.root)


def list_images(root, classes: list[str] | None = None, strict: bool = True) -> Listing:
    """Every image file under ``root``: class subfolders (ImageFolder layout) or a flat folder.

    ``classes`` fixes the class names and their order (a test split read like its training split);
    a subfolder not among them is a DataError, a missing one an empty class (noted when ``strict``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a directory")
    found = sorted(e.name for e in _entries(root) if _is_dir(e))
    if classes is not None:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise DataError(f"image folder {root} has class folder(s) {', '.join(map(printable, extra))} that the "
                            f"training split does not have ({', '.join(map(printable, classes))}); "
                            "move them out or read both splits with the same classes")
    names = list(classes) if classes is not None else found
    out = Listing(root, [], [] if names else None, names)
    seen_files: dict[str, str] = {}
    seen_dirs = {os.path.realpath(root)}
    if not names:
        _walk(root, root, None, out, seen_files, seen_dirs, recurse=False)
    for k, c in enumerate(names):
        d = root / c
        if not d.is_dir():
            if strict:
                out.skipped.append((c, "class folder is missing: the class has no examples"))
            continue
        before = len(out.files)
        _walk(d, root, k, out, seen_files, seen_dirs, recurse=True)
        if len(out.files) == before:
            out.skipped.append((c, "class folder holds no images: the class has no examples"))
    return out


def _walk(folder: Path, root: Path, label, out: Listing, seen_files, seen_dirs, recurse: bool):
    """Files of one folder (sorted), then its subfolders; symlinks only to what was not listed yet."""
    real = os.path.realpath(folder)
    seen_dirs.add(real)
    entries = sorted(_entries(folder), key=lambda e: e.name)
    for e in entries:
        rel = os.path.relpath(e.path, root)
        if _is_dir(e):
            continue
        if not e.name.lower().endswith(IMG_EXTENSIONS):
            continue
        why = _not_a_file(e)
        if why:
            out.skipped.append((rel, why))
            continue
        target = os.path.realpath(e.path)
        if target in seen_files:
            out.skipped.append((rel, f"the same file as {seen_files[target]} (a symlink): listed once"))
            continue
        seen_files[target] = rel
        out.files.append(e.path)
        if out.labels is not None:
            out.labels.append(label)
    if not recurse:
        return
    for e in entries:
        if not _is_dir(e):
            continue
        target = os.path.realpath(e.path)
        if target in seen_dirs:
            # a loop (a link to an ancestor) or a second way to reach a folder: listing it again would
            # duplicate its files, under this class's label when it points into another class
            out.skipped.append((os.path.relpath(e.path, root), "a symlink to a folder already listed "
                                f"({printable(os.path.relpath(target, root))}): not followed"))
            continue
        _walk(Path(e.path), root, label, out, seen_files, seen_dirs, recurse=True)


def _entries(folder: Path):
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as e:
        raise DataError(f"cannot list {folder}: {e.strerror or e}") from None


def _is_dir(e: os.DirEntry) -> bool:
    try:
        return e.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _not_a_file(e: os.DirEntry) -> str | None:
    """Why an entry named like an image is not a readable regular file, or None."""
    try:
        st = e.stat(follow_symlinks=True)
    except OSError as err:
        return f"cannot be read ({'a dangling symlink' if e.is_symlink() else err.strerror})"
    if stat.S_ISREG(st.st_mode):
        return None
    kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) \
        else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file"
    return f"{kind}, not an image file: opening it could block forever"


# ---------------------------------------------------------------------------------------- opening
def open_image(path, max_pixels: int | None = MAX_PIXELS, draft: int | None = None, gray: bool = False):
    """One file as an 8-bit PIL image, mode "RGB" (or "L" with ``gray``), upright; raises on anything else.

    ``draft``: decode a JPEG straight to the smallest 1/2, 1/4 or 1/8 scale at least this many pixels
    on each side (libjpeg's DCT scaling: far less work than decoding and resizing). A file of more
    than ``max_pixels`` pixels raises a DataError before its pixels are decoded.
    """
    return open_sized(path, max_pixels, draft, gray)[0]


def open_sized(path, max_pixels: int | None = MAX_PIXELS, draft: int | None = None, gray: bool = False):
    """``open_image`` and the image's full (width, height), upright."""
    from PIL import Image, ImageOps

    with open(path, "rb") as f:
        img = Image.open(f)
        w, h = img.size
        if max_pixels and w * h > max_pixels:
            raise DataError(f"{w}x{h} = {w * h / 1e6:.0f} M pixels exceeds the cap of {max_pixels / 1e6:.0f} M "
                            "(a decompression bomb, or a huge image): shrink it or raise max_pixels=")
        if draft and img.format == "JPEG":
            img.draft("L" if gray else "RGB", (draft, draft))
        img.load()  # decoding happens here: truncated data raises now, not later
    before = img.size
    img = _upright(img, ImageOps)
    if img.size != before:  # a quarter turn: the picture is h wide and w high
        w, h = h, w
    return to_8bit(img, gray), (w, h)


def to_8bit(img, gray: bool = False):
    """8-bit RGB or L: 16-bit scaled (not clipped), transparency composited on white, CMYK and palettes converted."""
    from PIL import Image

    if img.mode in _SIXTEEN_BIT or img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(a / _full_scale(img.mode, a) * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info or img.mode in ("PA", "LA", "RGBA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    want = "L" if gray else "RGB"
    if img.mode == "L" and not gray:
        return img.convert("RGB")
    return img if img.mode == want else img.convert(want)


def _full_scale(mode: str, a: np.ndarray) -> float:
    """The value that means white: 65535 for 16-bit files (PIL's own conversion clips them at 255)."""
    top = float(a.max()) if a.size else 0.0
    if mode.startswith("I;16") or (mode == "I" and top > 255):
        return 65535.0
    if mode == "F":
        return top if top > 1 else 1.0
    return 255.0


def _upright(img, ImageOps):
    """The image as the camera meant it (EXIF orientation applied); cheap when there is no EXIF."""
    if "exif" not in img.info and not hasattr(img, "tag_v2"):
        return img
    try:
        if img.getexif().get(0x0112, 1) in (1, None):
            return img
    except Exception:  # noqa: BLE001 - unreadable EXIF: the pixels as stored
        return img
    return ImageOps.exif_transpose(img)


def printable(name: str) -> str:
    """A file name safe to print to a terminal: control characters (escape codes) shown as ``\\x1b``."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
