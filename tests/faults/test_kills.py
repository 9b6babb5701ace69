"""SIGKILL at random moments, 52 times: no finished step is ever lost, and resuming reproduces the run.

One "zygote" process imports the workbench and builds the session once, then forks a fresh trainer
per attempt (fit the first time, resume after), so each kill costs training time, not start-up.
Four lanes run side by side; each kills its trainer 13 times at a random moment (while starting,
resuming, truncating, training, evaluating or writing a checkpoint). After every kill the run on
disk is read back: every step the trainer had reported finished is there, steps and epochs are
contiguous, only the line in flight may be damaged. At the end each run is resumed to completion
and its step losses must equal those of an uninterrupted run, exactly.
"""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from workbench.runlock import process_start
from workbench.store import RunStore

LANES, KILLS_PER_LANE = 4, 13
STEPS_PER_EPOCH = 23  # digits: 1,437 examples in batches of 64

ZYGOTE = textwrap.dedent("""
    import json, os, signal, sys
    import torch
    import workbench as wb

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed trainers are reaped at once, never zombies
    train, test = wb.datasets.digits()
    s = wb.Session(wb.models.linear, train, test, seed=0, root=sys.argv[1])
    torch.optim.Adam(s.model.parameters())  # the first optimizer imports torch._dynamo (seconds): once, here
    out = None

    def report(text):  # written after the step's record: a reported step is a finished step
        os.write(out, (text + "\\n").encode())

    s.on("run_start", lambda ev: report(f"run {ev.run.id}"))
    s.on("step_end", lambda ev: report(f"step {ev.step}"))
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        pid = os.fork()
        if pid == 0:
            out = os.open(cmd["progress"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                if cmd["run"] is None:
                    s.fit(epochs=cmd["epochs"], name=cmd["name"])
                else:
                    s.resume(cmd["run"], epochs=cmd["epochs"])
                report("done")
            except BaseException as e:
                report(f"error {type(e).__name__}: {e}".replace("\\n", " "))
            finally:
                os._exit(0)
        print(json.dumps({"pid": pid}), flush=True)
""")


class Zygote:
    def __init__(self, tmp_path):
        self.root, self.dir = tmp_path / "runs", tmp_path
        script = tmp_path / "zygote.py"
        script.write_text(ZYGOTE)
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.root)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert self.proc.stdout.readline().strip() == "ready"
        self._lock, self._n = threading.Lock(), 0

    def spawn(self, run_id, epochs, name):
        with self._lock:
            self._n += 1
            progress = self.dir / f"progress-{self._n}.txt"
            progress.touch()
            self.proc.stdin.write(json.dumps({"run": run_id, "epochs": epochs, "name": name,
                                              "progress": str(progress)}) + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())["pid"], progress

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(30)


def _lines(progress):
    return progress.read_text().splitlines()


def _wait_for(progress, prefix, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        hit = [line for line in _lines(progress) if line.startswith(prefix)]
        if hit:
            return hit[0]
        time.sleep(0.02)
    raise AssertionError(f"no {prefix!r} in {progress}: {_lines(progress)[-3:]}")


def _kill(pid):
    os.kill(pid, signal.SIGKILL)
    while process_start(pid) is not None:  # gone (reaped by the zygote)
        time.sleep(0.01)


def _check_nothing_finished_was_lost(root, run_id, progress, log):
    lines = _lines(progress)
    assert not any(line.startswith(("error", "done")) for line in lines), lines[-3:]
    reported = max([int(line.split()[1]) for line in lines if line.startswith("step")], default=0)
    run = RunStore(root).load(run_id)
    steps = [r["step"] for r in run.step_records]
    epochs = [r["epoch"] for r in run.epoch_records]
    assert run.status == "interrupted"
    assert steps == list(range(1, len(steps) + 1)), "steps on disk are not contiguous"
    assert len(steps) >= reported, f"step {reported} was reported finished but disk holds {len(steps)}"
    assert epochs == list(range(1, len(epochs) + 1))
    n_lines = sum(1 for _ in open(run.dir / "metrics.jsonl", "rb"))
    assert run.bad_lines in ([], [n_lines]), "only the line in flight may be damaged"
    log.append({"reported": reported, "on_disk": len(steps), "epochs": len(epochs)})


def _lane(zygote, lane, rng, results, errors):
    try:
        run_id, log = None, []
        for _ in range(KILLS_PER_LANE):
            pid, progress = zygote.spawn(run_id, 10_000, f"lane{lane}")
            if run_id is None:  # the first trainer: wait until its run exists on disk
                run_id = _wait_for(progress, "run ").split()[1]
            time.sleep(rng.uniform(0.05, 2.5))
            _kill(pid)
            _check_nothing_finished_was_lost(zygote.root, run_id, progress, log)
        results[lane] = (run_id, log)
    except BaseException as e:  # noqa: BLE001 - reported by the test thread
        errors.append((lane, e))


@pytest.mark.slow
def test_fifty_two_sigkills_lose_no_finished_step_and_resume_exactly(tmp_path):
    zygote = Zygote(tmp_path)
    try:
        results, errors = {}, []
        lanes = [threading.Thread(target=_lane, args=(zygote, k, random.Random(k), results, errors))
                 for k in range(LANES)]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join()
        assert not errors, errors
        kills = sum(len(log) for _, log in results.values())
        assert kills == LANES * KILLS_PER_LANE >= 50
        assert sum(e["reported"] > 0 for _, log in results.values() for e in log) >= 25  # most mid-training

        # finish every run one epoch past where it stands, and an uninterrupted reference run
        finals = {}
        for run_id, _ in results.values():
            epochs = RunStore(zygote.root).load(run_id).metrics.shape[0] + 1
            finals[run_id] = (epochs, zygote.spawn(run_id, epochs, None)[1])
        ref_epochs = max(e for e, _ in finals.values())
        _, ref_progress = zygote.spawn(None, ref_epochs, "reference")
        for _, progress in [*finals.values(), (None, ref_progress)]:
            _wait_for(progress, "done", timeout=300)
    finally:
        zygote.close()
    store = RunStore(zygote.root)
    ref_id = _wait_for(ref_progress, "run ").split()[1]
    ref = [r["data_loss"] for r in store.load(ref_id).step_records]
    for run_id, (epochs, _) in finals.items():
        run = store.load(run_id)
        assert run.status == "completed" and run.metrics.epoch.tolist() == list(range(1, epochs + 1))
        losses = [r["data_loss"] for r in run.step_records]
        assert len(losses) == epochs * STEPS_PER_EPOCH
        assert losses == ref[:len(losses)], f"run {run_id} did not resume exactly"
        assert not list(run.dir.rglob("*.tmp"))
    print(f"\nSIGKILLs: {kills}; per lane (reported finished, on disk, epochs): "
          + "; ".join(str([(e['reported'], e['on_disk'], e['epochs']) for e in log[-3:]])
                      for _, log in results.values()))
