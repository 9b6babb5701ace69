"""Runs on disk: round trip, atomic checkpoints loadable with weights_only=True, kill -9 and resume."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import workbench as wb
from workbench.store import RunStore, read_jsonl


def test_run_store_round_trip(session, tmp_path):
    run = session.fit(epochs=2)
    fresh = wb.Session(wb.models.tiny_cnn, session.train, session.test, root=session.root)  # "after a restart"
    table = fresh.runs()
    assert table.id.tolist() == [run.id]
    row = table.iloc[0]
    assert row.status == "completed" and row.epochs == 2 and row.steps == len(run.steps)
    back = fresh.load_run(run.id)
    assert back.steps.data_loss.tolist() == run.steps.data_loss.tolist()
    assert back.metrics.val_loss.tolist() == run.metrics.val_loss.tolist()
    assert back.config == json.loads((run.dir / "config.json").read_text())
    for k, v in run.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[k], v)
    from workbench.train import evaluate

    assert evaluate(fresh, back.model)["loss"] == pytest.approx(run.metrics.val_loss.iloc[-1], rel=1e-6)
    assert (run.dir / "metrics.csv").exists() and (run.dir / "steps.csv").exists()


def test_checkpoints_load_with_weights_only(session):
    run = session.fit(epochs=2)
    paths = run.checkpoints()
    assert [p.name for p in paths] == ["epoch-0001.pt", "epoch-0002.pt"]
    state = torch.load(paths[-1], weights_only=True)
    assert state["epoch"] == 2 and state["step"] == len(run.steps)
    assert set(state) >= {"model", "optimizer", "rng", "meta"}
    assert not list(run.dir.glob("**/*.tmp"))  # atomic: no temp files left behind


def test_truncated_metrics_line_is_skipped(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"kind": "step", "step": 1}\n{"kind": "step", "st')
    assert read_jsonl(p) == [{"kind": "step", "step": 1}]


def test_unknown_run_is_a_clear_error(tmp_path):
    with pytest.raises(wb.RunError, match="no run 'nope'"):
        RunStore(tmp_path).load("nope")


def test_resume_continues_to_the_same_losses(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.tiny_cnn, train, test, root=tmp_path / "a")
    full = s.fit(epochs=3)
    s2 = wb.Session(wb.models.tiny_cnn, train, test, root=tmp_path / "b")
    part = s2.fit(epochs=1)
    resumed = s2.resume(part.id, epochs=3)
    assert resumed.id == part.id and resumed.status == "completed"
    assert resumed.metrics.epoch.tolist() == [1, 2, 3]
    # checkpoints carry optimizer and RNG state, so the continuation is the uninterrupted run
    assert resumed.steps.data_loss.tolist() == full.steps.data_loss.tolist()


CHILD = textwrap.dedent("""
    import sys, time
    import workbench as wb
    train, test = wb.datasets.digits()
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=sys.argv[1])
    def slow(ev):
        print(ev.step, flush=True)
        time.sleep(0.02)
    s.on("step_end", slow)
    s.fit(epochs=50)
""")


def test_killed_run_is_listed_loses_at_most_one_step_and_resumes(tmp_path):
    root = tmp_path / "runs"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    last = 0
    deadline = time.time() + 120
    for line in proc.stdout:  # kill mid-epoch 3: 23 steps an epoch on digits
        last = int(line)
        if last >= 2 * 23 + 7 or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert last >= 2 * 23 + 7

    train, test = wb.datasets.digits()
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=root)
    table = s.runs()
    assert len(table) == 1 and table.status.iloc[0] == "interrupted"
    run_id = table.id.iloc[0]
    on_disk = s.run(run_id)
    steps = on_disk.steps.step.tolist()
    assert steps == list(range(1, len(steps) + 1))
    # step losses are read off the device every log_every=32 steps (and at each epoch end): a kill loses at
    # most the unread ones, never a step before the last read
    assert last - 32 < len(steps) <= last + 1 and len(steps) >= 2 * 23
    assert on_disk.metrics.epoch.tolist() == [1, 2]

    resumed = s.resume(run_id, epochs=3)
    assert resumed.status == "completed"
    assert resumed.metrics.epoch.tolist() == [1, 2, 3]
    assert resumed.steps.step.tolist() == list(range(1, 3 * 23 + 1))
    assert s.runs().status.iloc[0] == "completed"


def test_resume_asks_for_a_custom_augmentation_again(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.linear, train, test, root=tmp_path)
    flip = lambda x: x.flip(-1)  # noqa: E731
    run = s.fit(epochs=1, augment=flip)
    with pytest.raises(wb.RunError, match="cannot be rebuilt from disk"):
        s.resume(run.id, epochs=2)
    assert s.resume(run.id, epochs=2, augment=flip).metrics.epoch.tolist() == [1, 2]


def test_parent_false_starts_from_nothing(session):
    first = session.fit(epochs=1)
    assert session.fit(epochs=1).config["parent"] == first.id
    assert session.fit(epochs=1, parent=False).config["parent"] is None


def test_log_many_appends_records_in_one_write(session):
    run = session.store.create({"model": "x"})
    run.log_many([{"kind": "step", "step": i, "loss": 1.0 / i} for i in range(1, 6)])
    run.log({"kind": "epoch", "epoch": 1, "step": 5, "val_loss": 0.5})
    run.log_many([])
    run.close()
    assert [r["step"] for r in read_jsonl(run.dir / "metrics.jsonl")] == [1, 2, 3, 4, 5, 5]
    back = session.store.load(run.id)
    assert back.steps.loss.tolist() == [1.0, 0.5, 1 / 3, 0.25, 0.2] and back.metrics.epoch.tolist() == [1]


def test_step_records_keep_a_bounded_window_and_read_the_rest_from_disk(session, monkeypatch):
    import tracemalloc

    from workbench import records

    monkeypatch.setattr(records, "WINDOW", 100)
    run = session.store.create({"model": "x"})
    tracemalloc.start()
    for i in range(1, 2001):
        run.log({"kind": "step", "step": i, "epoch": i / 100, "loss": 1.0 / i, "hist": list(range(50))})
    _, bounded_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    w = run.step_records
    assert len(w) == 2000 and w.dropped == 1900
    assert w[-1]["step"] == 2000 and w[0]["step"] == 1 and w[1500]["step"] == 1501  # old ones from disk
    assert [r["step"] for r in w[1950:1953]] == [1951, 1952, 1953]  # a view's "since n" slice
    assert [r["step"] for r in w[5:8]] == [6, 7, 8]
    assert run.steps.step.tolist() == list(range(1, 2001)) and len(list(w)) == 2000
    # the same records kept in a list (the old behaviour) hold 20x more memory
    tracemalloc.start()
    kept = [{"kind": "step", "step": i, "epoch": i / 100, "loss": 1.0 / i, "hist": list(range(50))}
            for i in range(1, 2001)]
    _, list_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(kept) == 2000 and list_peak > 5 * bounded_peak
    run.close()
    back = session.store.load(run.id)  # loading keeps the window bounded too
    assert len(back.step_records) == 2000 and back.step_records.dropped == 1900


def test_a_completed_run_whose_last_epoch_is_nan_is_recorded_diverged(session):
    run = session.store.create({"model": "x"})
    run.log({"kind": "epoch", "epoch": 1, "train_loss": 0.3, "val_loss": float("nan")})
    run.set_status("completed")
    assert run.status == "diverged" and "NaN" in run.info["reason"]
    assert json.loads((run.dir / "status.json").read_text())["status"] == "diverged"
    assert not run.owned  # a finished run gives up its lock


def test_a_run_that_fails_at_start_is_marked_failed_not_running(session):
    def broken_optimizer(params, lr, weight_decay):
        raise RuntimeError("no such optimizer today")

    with pytest.raises(RuntimeError, match="no such optimizer today"):
        session.fit(epochs=1, optimizer=broken_optimizer)
    (row,) = session.store.table().itertuples()
    assert row.status == "failed"
    status = json.loads((session.root / row.id / "status.json").read_text())
    assert "no such optimizer today" in status["error"]
    session.store.load(row.id).acquire()  # and its lock was released


def test_lr_inf_and_lr_zero_are_refused_before_a_run_exists(session):
    for lr in (float("inf"), 0):
        with pytest.raises(wb.errors.ConfigError, match="lr"):
            session.fit(epochs=1, lr=lr)
    assert session.store.ids() == []
