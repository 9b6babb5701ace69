"""The files of a run, written so that a crash or a full disk never leaves half of one.

Atomic writes (a temp file renamed into place, removed when the write fails), a failed write
turned into a StorageError that says "the disk is full" and what to do, JSON objects and
checkpoints read back with the damaged file named (``torch.load(weights_only=True)`` always).
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from pathlib import Path

import torch

from workbench.errors import DamagedRunError, RunError, StorageError

CHECKPOINT_NAME = re.compile(r"^(?:epoch-(\d+)|step-(\d+)-epoch-(\d+))\.pt$")


def storage_error(path: Path, e: OSError) -> StorageError:
    return StorageError.from_os_error(path, e)


def tmp_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = tmp_for(path)
    try:
        with open(tmp, "wb") as f:  # rename makes it atomic for a killed process; no fsync on the hot path
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise storage_error(path, e) from e


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=jsonable, allow_nan=True).encode())


def atomic_torch_save(path: Path, obj) -> None:
    path = Path(path)
    tmp = tmp_for(path)
    try:
        with open(tmp, "wb") as f:  # through a Python file, so the OSError behind torch's RuntimeError is kept
            torch.save(obj, f)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        tmp.unlink(missing_ok=True)
        cause = _os_error_in(e)
        if cause is None:
            raise  # not a storage problem (e.g. an object torch cannot save): torch's own error says it
        raise storage_error(path, cause) from e


def _os_error_in(e: BaseException) -> OSError | None:
    while e is not None and not isinstance(e, OSError):
        e = e.__cause__ or e.__context__
    return e


def write_in_place(path: Path, data: bytes) -> None:
    """Overwrite a small existing file in its own blocks: works on a full disk where a temp file cannot."""
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate(len(data))


def read_json_object(path: Path, what: str) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DamagedRunError(f"{path} is missing", fix=f"restore the run's {what} or delete the folder") from None
    except (OSError, ValueError) as e:
        raise DamagedRunError(f"{path} is not valid JSON ({e})",
                              fix=f"restore the run's {what} from a backup or delete the folder") from None
    if not isinstance(obj, dict):
        raise DamagedRunError(f"{path} holds a JSON {type(obj).__name__}, not an object",
                              fix=f"restore the run's {what} from a backup or delete the folder")
    return obj


def checkpoint_key(p: Path) -> tuple[int, int]:
    m = CHECKPOINT_NAME.match(p.name)
    if m.group(1) is not None:
        return int(m.group(1)), -1  # the end of epoch N comes before any step taken after it
    return int(m.group(3)), int(m.group(2))


def load_checkpoint_file(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"no checkpoint {path}", fix="pick one of run.checkpoints()") from None
    except Exception as e:  # noqa: BLE001 - truncated zip, bad pickle, unsafe global: all "damaged"
        raise DamagedRunError(f"checkpoint {path} is damaged ({type(e).__name__}: {str(e)[:200]})",
                              fix="delete it; resume falls back to the checkpoint before it") from None
    if not isinstance(state, dict):
        raise DamagedRunError(f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint dict",
                              fix="delete it; resume falls back to the checkpoint before it")
    return state


def jsonable(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return repr(o)
