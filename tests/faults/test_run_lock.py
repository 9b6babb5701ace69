"""One owner per run: a concurrent resume is refused with the owner's PID; dead and reused PIDs are not owners."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import workbench as wb
from workbench.errors import RunLockedError
from workbench.runlock import owner_alive, process_start

CHILD = textwrap.dedent("""
    import sys, time
    import workbench as wb
    train, test = wb.datasets.digits()
    s = wb.Session(wb.models.linear, train, test, seed=0, root=sys.argv[1])
    s.on("run_start", lambda ev: print("run", ev.run.id, flush=True))
    s.on("step_end", lambda ev: time.sleep(0.05))
    s.on("steps_logged", lambda ev: print("step", ev.records[-1]["step"], flush=True))  # on disk
    s.fit(epochs=500, log_every=1)  # every step's record written as it ends: the owner's file grows
""")


@pytest.fixture
def training_child(tmp_path):
    """A second process training a long run; yields (process, run id) once it has taken a few steps."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs")], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    run_id, deadline = None, time.time() + 180
    for line in proc.stdout:
        kind, value = line.split()
        run_id = value if kind == "run" else run_id
        if kind == "step" and int(value) >= 3 or time.time() > deadline:
            break
    yield proc, run_id
    proc.kill()
    proc.wait(30)


def test_resume_while_another_process_trains_is_refused_with_its_pid(training_child, digits, tmp_path):
    proc, run_id = training_child
    train, test = digits
    s = wb.Session(wb.models.linear, train, test, seed=0, root=tmp_path / "runs")
    assert s.runs().status.tolist() == ["running"]  # its owner is alive
    before = (s.root / run_id / "metrics.jsonl").stat().st_size
    with pytest.raises(RunLockedError, match=f"another process \\(PID {proc.pid}\\)") as e:
        s.resume(run_id, epochs=2)
    assert e.value.pid == proc.pid and "wait for it" in e.value.fix
    time.sleep(0.5)  # the owner keeps training, its records untouched by the refused resume
    assert (s.root / run_id / "metrics.jsonl").stat().st_size > before
    assert json.loads((s.root / run_id / "status.json").read_text())["pid"] == proc.pid

    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    # (the lock file still names the dead owner: the kernel dropped its flock, so the run is taken over)
    assert s.runs().status.tolist() == ["interrupted"]
    (s.root / run_id / "checkpoints").mkdir(exist_ok=True)
    orphans = [s.root / run_id / ".status.json.999.1.tmp", s.root / run_id / "checkpoints" / ".epoch-0001.pt.9.1.tmp"]
    for p in orphans:
        p.write_bytes(b"half a file")
    resumed = s.resume(run_id, epochs=1)
    assert resumed.status == "completed" and not any(p.exists() for p in orphans)


def test_a_second_session_in_the_same_process_cannot_resume_a_training_run(digits, tmp_path):
    train, test = digits
    a = wb.Session(wb.models.linear, train, test, seed=0, root=tmp_path / "runs")
    b = wb.Session(wb.models.linear, train, test, seed=0, root=tmp_path / "runs")
    a.on("step_end", lambda ev: time.sleep(0.01))
    run = a.fit(epochs=50, background=True)
    while not run.step_records:
        time.sleep(0.01)
    with pytest.raises(RunLockedError, match=f"this process \\(PID {os.getpid()}\\)"):
        b.resume(run.id, epochs=2)
    run.stop()
    run.wait()
    assert run.status == "stopped"
    assert b.resume(run.id, epochs=run.metrics.epoch.max() + 1 if len(run.metrics) else 1).status == "completed"


def test_a_reused_pid_is_not_the_owner(finished_run, tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])  # stands for the process the kernel gave the dead owner's PID
    try:
        real_start = process_start(sleeper.pid)
        assert real_start is not None and owner_alive(sleeper.pid, real_start)
        assert not owner_alive(sleeper.pid, real_start - 1)  # same PID, another start time: another process
        status_path = finished_run.dir / "status.json"
        status = json.loads(status_path.read_text())
        store = finished_run.store

        status.update(status="running", pid=sleeper.pid, pid_start=real_start - 100)
        status_path.write_text(json.dumps(status))
        assert store.load(finished_run.id).status == "interrupted"

        status.update(pid_start=real_start)  # the recorded owner really is that live process
        status_path.write_text(json.dumps(status))
        assert store.load(finished_run.id).status == "running"

        # a lock file naming the live PID with another start time is stale: the run is taken over
        (finished_run.dir / "lock").write_text(json.dumps({"pid": sleeper.pid, "pid_start": real_start - 100}))
        run = store.load(finished_run.id)
        run.acquire()
        assert json.loads((finished_run.dir / "lock").read_text())["pid"] == os.getpid()
        run.release()
        assert (finished_run.dir / "lock").read_text() == ""
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not owner_alive(sleeper.pid, real_start)  # reaped: gone


def test_a_dead_pid_is_not_the_owner():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert process_start(proc.pid) is None and not owner_alive(proc.pid)
    assert not owner_alive(None) and not owner_alive("x") and not owner_alive(-1)
    assert owner_alive(os.getpid(), process_start(os.getpid()))
