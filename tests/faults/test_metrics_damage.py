"""Damaged lines anywhere in metrics.jsonl: every good record survives reading, resuming and the CSVs."""

import csv
import json

import pytest

from workbench.records import read_records
from workbench.store import RunStore

DAMAGE = {
    "garbage": b"\x00\xff not json at all\n",
    "half a record": b'{"kind": "step", "st\n',
    "a JSON list": b"[1, 2, 3]\n",
    "a JSON number": b"42\n",
    "bad utf-8": b'{"kind": "step", "step": "\xc3\x28"}\n',
}


def _damage(path, line_no: int, payload: bytes) -> list[bytes]:
    lines = path.read_bytes().splitlines(keepends=True)
    original = lines[line_no - 1]
    lines[line_no - 1] = payload
    path.write_bytes(b"".join(lines))
    return original


@pytest.mark.parametrize("kind", DAMAGE)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_reading_skips_a_damaged_line_anywhere_and_names_it(tmp_path, kind, where):
    path = tmp_path / "metrics.jsonl"
    records = [{"kind": "step", "step": i, "loss": 1.0 / i} for i in range(1, 11)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    n = {"first": 1, "middle": 6, "last": 10}[where]
    _damage(path, n, DAMAGE[kind])
    good, bad = read_records(path)
    assert bad == [n]
    assert good == [r for r in records if r["step"] != n]  # nothing after the damage is lost


def test_a_half_written_last_line_is_skipped_and_reported(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"kind": "step", "step": 1}\n{"kind": "step", "step": 2}\n{"kind": "st')
    assert read_records(path) == ([{"kind": "step", "step": 1}, {"kind": "step", "step": 2}], [3])


def test_loading_a_run_keeps_the_records_after_a_damaged_line(finished_run):
    path = finished_run.dir / "metrics.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3 * 24  # 23 steps and one epoch row per epoch
    _damage(path, 30, DAMAGE["garbage"])  # step 29 of epoch 2
    back = RunStore(finished_run.store.root).load(finished_run.id)
    assert back.bad_lines == [30]
    assert len(back.step_records) == 3 * 23 - 1
    assert back.metrics.epoch.tolist() == [1, 2, 3]
    assert back.steps.step.tolist() == [s for s in range(1, 70) if s != 29]


def test_resume_keeps_every_good_record_and_says_which_lines_it_dropped(linear_session, digits):
    s = linear_session
    run = s.fit(epochs=2)
    full = run.steps.data_loss.tolist()
    path = run.dir / "metrics.jsonl"
    _damage(path, 5, DAMAGE["half a record"])   # step 5 of epoch 1
    _damage(path, 40, DAMAGE["a JSON list"])    # step 39 of epoch 2
    with pytest.warns(RuntimeWarning, match=r"line\(s\) 5, 40 were damaged and dropped"):
        resumed = s.resume(run.id, epochs=3)
    assert resumed.status == "completed"
    steps = resumed.steps
    # every good record is kept: only the two damaged steps are missing, the third epoch follows
    assert steps.step.tolist() == [i for i in range(1, 3 * 23 + 1) if i not in (5, 39)]
    kept = [v for i, v in enumerate(full, 1) if i not in (5, 39)]
    assert steps.data_loss.tolist()[:len(kept)] == kept
    assert resumed.metrics.epoch.tolist() == [1, 2, 3]
    status = json.loads((run.dir / "status.json").read_text())
    assert status["dropped_lines"] == [5, 40] and status["status"] == "completed"
    with open(run.dir / "steps.csv") as f:  # the CSVs are rebuilt from every good record
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == steps.step.tolist()
    assert read_records(path)[1] == []  # the rewritten file is clean


def test_truncation_for_resume_is_atomic_and_reports(finished_run):
    store, run = finished_run.store, finished_run
    _damage(run.dir / "metrics.jsonl", 2, DAMAGE["garbage"])
    loaded = store.load(run.id)
    with pytest.warns(RuntimeWarning, match="line"):
        report = store.truncate_after(loaded, step=46, epoch=2)
    assert report == {"kept": 46 - 1 + 2, "past_checkpoint": 23 + 1, "dropped_lines": [2]}
    assert not list(run.dir.glob(".*.tmp"))
    again = store.load(run.id)
    assert len(again.step_records) == 45 and again.metrics.epoch.tolist() == [1, 2] and again.bad_lines == []
