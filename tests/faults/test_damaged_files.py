"""Garbage in status.json and config.json: the run is listed as damaged, the listing never crashes."""

import json

import pytest

import workbench as wb
from workbench.cli import main
from workbench.errors import DamagedRunError
from workbench.store import RunStore

GARBAGE = {
    "binary": b"\x00\x01\x02\xff",
    "empty": b"",
    "truncated JSON": b'{"status": "compl',
    "a JSON list": b'["completed"]',
    "a JSON string": b'"completed"',
    "null": b"null",
}


def _statuses(table, runs):
    by_id = dict(zip(table.id, table.status, strict=True))
    assert len(by_id) == len(runs)
    return [by_id[r.id] for r in runs]


@pytest.fixture
def three_runs(linear_session):
    runs = [linear_session.fit(epochs=1, parent=False) for _ in range(3)]
    return linear_session, runs


@pytest.mark.parametrize("garbage", GARBAGE)
def test_a_damaged_status_is_listed_as_damaged_and_the_run_still_loads(three_runs, garbage):
    s, runs = three_runs
    bad = runs[1]
    (bad.dir / "status.json").write_bytes(GARBAGE[garbage])
    table = s.store.table()
    assert _statuses(table, runs) == ["completed", "damaged", "completed"]
    assert "status.json" in table.set_index("id").loc[bad.id, "error"]
    back = s.store.load(bad.id)  # the config, metrics and checkpoints are fine: still usable
    assert back.status == "damaged" and back.metrics.epoch.tolist() == [1]
    assert s.load_run(bad.id).model is not None
    fresh = wb.Session(wb.models.linear, s.train, s.test, root=s.root)  # after a restart
    assert _statuses(fresh.runs(), runs) == ["completed", "damaged", "completed"]


def test_an_unknown_status_value_is_damaged(three_runs):
    s, runs = three_runs
    (runs[0].dir / "status.json").write_text(json.dumps({"status": "exploded"}))
    assert _statuses(s.store.table(), runs) == ["damaged", "completed", "completed"]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_a_damaged_config_is_named_and_does_not_hide_the_other_runs(three_runs, garbage, capsys):
    s, runs = three_runs
    bad = runs[2]
    (bad.dir / "config.json").write_bytes(GARBAGE[garbage])
    with pytest.raises(DamagedRunError, match="config.json") as e:
        s.store.load(bad.id)
    assert e.value.fix and "backup" in e.value.fix
    table = wb.Session(wb.models.linear, s.train, s.test, root=s.root).runs()  # after a restart
    assert _statuses(table, runs) == ["completed", "completed", "damaged"]
    assert str(bad.dir / "config.json") in table.set_index("id").loc[bad.id, "error"]
    assert main(["runs", "--root", str(s.root)]) == 0  # `workbench runs` lists all three
    out = capsys.readouterr().out
    assert out.count("completed") == 2 and "damaged" in out


def test_a_resume_of_a_run_with_a_damaged_config_is_refused_by_name(three_runs):
    s, runs = three_runs
    (runs[0].dir / "config.json").write_text("[1, 2]")
    with pytest.raises(DamagedRunError, match="holds a JSON list, not an object"):
        s.resume(runs[0].id, epochs=2)


def test_a_resume_of_a_run_with_a_damaged_status_works_and_repairs_it(three_runs):
    s, runs = three_runs
    (runs[0].dir / "status.json").write_bytes(b"\x00")
    resumed = s.resume(runs[0].id, epochs=2)
    assert resumed.status == "completed" and resumed.metrics.epoch.tolist() == [1, 2]
    assert json.loads((runs[0].dir / "status.json").read_text())["status"] == "completed"


def test_run_ids_that_point_outside_the_root_are_refused(tmp_path):
    store = RunStore(tmp_path / "runs")
    (tmp_path / "config.json").write_text("{}")
    for bad in ("..", "../runs", "/etc", "", None, 5):
        with pytest.raises(wb.RunError, match="not a run id"):
            store.load(bad)
