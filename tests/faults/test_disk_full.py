"""A full disk mid-training: a clear StorageError, the run marked failed, no temp files left behind.

Two real ways to run out of room: a 160 KiB tmpfs (needs root to mount; skipped otherwise) and a
per-file size limit (RLIMIT_FSIZE, any user) in a child process; both make the kernel refuse writes.
"""

import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

import workbench as wb
from workbench.errors import StorageError
from workbench.records import read_records


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _leftovers(root):
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_a_full_disk_fails_the_run_clearly_and_cleanly(tiny_disk, digits):
    train, test = digits
    s = wb.Session(wb.models.linear, train, test, seed=0, root=tiny_disk / "runs")
    with pytest.raises(StorageError, match="the disk is full") as e, \
            pytest.warns(RuntimeWarning, match="CSV export skipped"):
        s.fit(epochs=100)  # ~8 KiB of checkpoint and 4 KiB of metrics an epoch: the disk fills in epoch ~12
    assert "free space" in e.value.fix and e.value.errno == 28
    (run_dir,) = (tiny_disk / "runs").iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "disk is full" in status["error"]
    assert _leftovers(tiny_disk) == []
    # what was written is readable: the listing works and the last good checkpoint loads
    table = s.runs()
    assert table.status.tolist() == ["failed"] and table.epochs.iloc[0] >= 3
    run = s.store.load(run_dir.name)
    assert run.load_checkpoint()["epoch"] >= 3


CHILD = textwrap.dedent("""
    import resource, signal, sys
    import workbench as wb
    from workbench.errors import StorageError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # the write then fails with EFBIG instead of killing
    train, test = wb.datasets.digits()
    s = wb.Session(wb.models.linear, train, test, seed=0, root=sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (24_000, 24_000))
    try:
        s.fit(epochs=100)
    except StorageError as e:
        print("STORAGE", e.errno, e)
    else:
        print("NO ERROR")
""")


def test_a_file_size_limit_fails_the_run_clearly_and_cleanly(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    root = tmp_path / f"runs-{uuid.uuid4().hex[:6]}"
    out = subprocess.run([sys.executable, str(script), str(root)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.stdout.startswith("STORAGE 27 could not write"), out.stdout + out.stderr[-2000:]
    assert "the file size limit is reached" in out.stdout
    (run_dir,) = root.iterdir()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"
    assert _leftovers(root) == []
    # the first checkpoint (~30 KB with the RNG states) is over the limit: refused whole, records intact
    assert "epoch-0001.pt" in out.stdout and list((run_dir / "checkpoints").iterdir()) == []
    records, bad = read_records(run_dir / "metrics.jsonl")
    # checkpoints are written off the training thread: the failure reaches the training at its next
    # checkpoint (or the run's end); the records up to then are whole epochs, none damaged
    assert bad == [] and len(records) >= 23 + 1 and len(records) % (23 + 1) == 0


def test_a_run_that_cannot_even_be_created_leaves_nothing(tiny_disk, digits):
    fd = os.open(tiny_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk to the last block
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    train, test = digits
    s = wb.Session(wb.models.linear, train, test, seed=0, root=tiny_disk / "runs")
    with pytest.raises(StorageError, match="could not write"):
        s.fit(epochs=1)
    assert list((tiny_disk / "runs").iterdir()) == [] and _leftovers(tiny_disk) == []
