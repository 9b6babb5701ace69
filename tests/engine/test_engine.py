"""The one engine (recipe II-IV): one loop under fit, checks, LR finder, search, label CV, ensembles, distillation;
no host sync per step; each job's own random stream; finished runs let go; a typed run configuration."""

import ast
import gc
import pathlib
import shutil
import threading

import psutil
import pytest
import torch
from torch import nn

import workbench as wb
from workbench.engine.rng import RngStream, seeded
from workbench.engine.runner import BusyError, Runner

PACKAGE = pathlib.Path(wb.__file__).parent


def dropout_mlp(num_classes=10, width=64):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Dropout(0.5), nn.Linear(width, num_classes))


@pytest.fixture(scope="module")
def digits():
    return wb.datasets.digits()


def _losses(run):
    return run.steps["data_loss"].tolist()


def test_the_package_has_one_optimizer_step_loop():
    """Only the engine calls optimizer.step(); only engine/evaluate.py evaluates a model over a dataset."""
    steppers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "step":
                target = ast.unparse(node.func.value)
                if "opt" in target or "scaler" in target:
                    steppers.append(f"{path.relative_to(PACKAGE)}:{target}")
    assert steppers and all(s.startswith("engine/loop.py") for s in steppers), steppers


def test_no_import_cycle_through_train():
    """train imports the engine and its averaging handler, never part IV's distillation (which imports train)."""
    import subprocess
    import sys

    code = ("import sys, workbench.train as t; assert hasattr(t, 'fit'); "
            "assert 'workbench.ensemble.distill' not in sys.modules, 'train pulled in distill'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_stream_matches_a_fresh_manual_seed_and_leaves_the_process_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with seeded(5):
        a = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(5)
    assert torch.equal(a, torch.rand(4))
    s = RngStream(9)
    with s.active():
        x = torch.rand(3)
    with s.active():  # the stream continues where it stopped
        y = torch.rand(3)
    torch.manual_seed(9)
    assert torch.equal(torch.cat([x, y]), torch.rand(6))


def test_a_steps_span_swaps_torchs_generators_only():
    import random

    import numpy as np

    s = RngStream(9)
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    with s.active(torch_only=True):
        t, p, n = torch.rand(2), random.random(), np.random.rand()
    after = torch.rand(2)
    torch.manual_seed(1)
    assert torch.equal(after, torch.rand(2))  # the process's torch stream was left where it was ...
    torch.manual_seed(9)
    assert torch.equal(t, torch.rand(2))  # ... and the step drew from the job's
    random.seed(1)
    np.random.seed(1)
    assert (random.random(), np.random.rand()) == (p, n)  # python and numpy: the process's own draws
    with s.active():  # a full span still gives the job python and numpy streams of its own, seeded like torch
        assert random.random() == random.Random(9).random()


def test_two_sessions_training_at_once_reproduce_their_solo_losses(digits, tmp_path):
    train, test = digits
    solo = {seed: _losses(wb.Session(dropout_mlp, train, test, seed=seed, root=tmp_path / f"solo{seed}")
                          .fit(epochs=3, lr=3e-3)) for seed in (1, 2)}
    assert solo[1] != solo[2]
    a = wb.Session(dropout_mlp, train, test, seed=1, root=tmp_path / "a")
    b = wb.Session(dropout_mlp, train, test, seed=2, root=tmp_path / "b")
    ra, rb = a.fit(epochs=3, lr=3e-3, background=True), b.fit(epochs=3, lr=3e-3, background=True)
    ra.wait(), rb.wait()
    assert ra.status == rb.status == "completed"
    # they really ran at the same time
    assert ra.info["started"] < rb.info["ended"] and rb.info["started"] < ra.info["ended"]
    assert _losses(ra) == solo[1] and _losses(rb) == solo[2]


def test_checks_beside_a_background_fit_leave_its_losses_as_a_solo_fit(digits, tmp_path):
    train, test = digits
    solo = _losses(wb.Session(dropout_mlp, train, test, seed=0, root=tmp_path / "solo").fit(epochs=3, lr=3e-3))
    s = wb.Session(dropout_mlp, train, test, seed=0, root=tmp_path / "s")
    other = wb.Session(dropout_mlp, train, test, seed=0, root=tmp_path / "other")
    run = s.fit(epochs=3, lr=3e-3, background=True)
    # the same session queues the checks behind its fit; another session runs them at the same time
    assert s.runner.busy
    beside = other.checks(["determinism", "overfit_batch", "input_independent"])
    mine = s.checks(["determinism"])
    run.wait()
    assert _losses(run) == solo
    assert [r.status for r in beside] == ["pass", "pass", "pass"] and mine[0].status == "pass"


def test_runner_runs_one_job_at_a_time_and_refuses_when_asked():
    r = Runner("t")
    gate, order = threading.Event(), []
    first = r.submit("slow", lambda: (gate.wait(5), order.append(1)))
    second = r.submit("next", lambda: order.append(2))
    assert r.busy and r.current is first or r.queued >= 1
    with pytest.raises(BusyError, match="busy with slow"):
        r.submit("third", lambda: None, refuse_when_busy=True)
    gate.set()
    second.wait(5)
    assert order == [1, 2] and first.state == second.state == "done"
    # work a job starts itself runs inline (no deadlock) and its errors reach whoever waits
    assert r.call("outer", lambda: r.call("inner", lambda: 7)) == 7
    with pytest.raises(ZeroDivisionError):
        r.call("bad", lambda: 1 / 0)


def test_finished_runs_let_go_of_their_optimizer_and_loader(digits, tmp_path):
    train, test = digits
    s = wb.Session(dropout_mlp, train, test, seed=0, root=tmp_path)
    run = s.fit(epochs=1)
    assert not s._live_runs and not hasattr(run.trainer, "optimizer") and run.trainer.step == 23


def _rss():
    gc.collect()
    return psutil.Process().memory_info().rss


def _tensor_bytes():
    """Bytes held by every live tensor: the exact count RSS only approximates (allocator arenas keep freed pages)."""
    gc.collect()
    return sum(o.numel() * o.element_size() for o in gc.get_objects() if type(o) in (torch.Tensor, nn.Parameter))


def test_search_and_ensemble_give_their_memory_back(digits, tmp_path):
    """A 20-trial search and a 10-member ensemble: no model, Adam state, gradient or loader of a finished run
    is kept; the ensemble holds only its members' weights."""
    train, test = digits
    s = wb.Session(wb.models.mlp, train, test, seed=0, root=tmp_path)
    big = {"width": 1024}  # ~1.1M parameters: weights 4.5 MB, with grads and Adam state ~18 MB a run
    model_bytes = sum(p.numel() * 4 for p in s.new_model(**big).parameters())
    s.search(trials=2, epochs=1, model_kwargs=big)  # warm up: imports, the runner thread's allocator arena
    start, start_t = _rss(), _tensor_bytes()
    table = s.search(trials=20, epochs=1, model_kwargs=big)
    after_search, after_search_t = _rss(), _tensor_bytes()
    assert len(table) == 22 and not s._live_runs  # the session's study holds the warm-up's 2 trials too
    ens = s.ensemble("seeds", n=10, epochs=1, model_kwargs=big, checkpoint=False)
    after_ensemble, after_ensemble_t = _rss(), _tensor_bytes()
    weights = sum(p.numel() * p.element_size() for p in ens.module.parameters())
    mb = 2**20
    # live tensors: at most the session's and the last run's model more than at the start (20 runs' worth: 360 MB)
    assert after_search_t - start_t <= 2 * model_bytes, (start_t / mb, after_search_t / mb)
    assert after_ensemble_t - after_search_t <= weights + 2 * model_bytes, (after_ensemble_t / mb, weights / mb)
    assert (after_search - start) / mb < 60, (start / mb, after_search / mb)
    assert (after_ensemble - after_search - weights) / mb < 60, (after_search / mb, after_ensemble / mb)


def adam_factory(params, lr, weight_decay):
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=(0.8, 0.95))


def test_resume_with_a_custom_optimizer_asks_for_it_and_accepts_it(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path)
    full = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path / "full").fit(
        epochs=2, optimizer=adam_factory)
    run = s.fit(epochs=1, optimizer=adam_factory)
    assert run.config["runtime"] == ["optimizer"] and "adam_factory" in run.config["optimizer"]
    with pytest.raises(wb.RunError, match=r"pass it again: session.resume\('.*', optimizer=\.\.\.\)"):
        s.resume(run.id, epochs=2)
    assert s.store.load(run.id).status == "completed"  # the refusal changed nothing on disk
    resumed = s.resume(run.id, epochs=2, optimizer=adam_factory)
    assert resumed.status == "completed" and _losses(resumed) == _losses(full)


def test_run_config_is_typed_json(digits, tmp_path):
    from workbench.engine.config import RunConfig

    train, test = digits
    s = wb.Session(wb.models.linear, train, test, root=tmp_path)
    run = s.fit(epochs=1, lr=0.01, early_stopping={"patience": 2})
    cfg = RunConfig.from_json(s.store.load(run.id).config)
    assert cfg.lr == 0.01 and cfg.early_stopping == {"patience": 2} and cfg.runtime == [] and cfg.kind == "fit"
    with pytest.raises(Exception):  # noqa: B017 - frozen
        cfg.lr = 1.0


def test_bf16_and_channels_last_train_and_evaluate(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path)
    ref = s.fit(epochs=2, lr=3e-3)
    bf = s.fit(epochs=2, lr=3e-3, precision="bf16", channels_last=True)
    assert bf.status == "completed" and bf.config["precision"] == "bf16"
    # bf16 rounds activations: close to float32, not equal
    assert abs(bf.metrics.val_metric.iloc[-1] - ref.metrics.val_metric.iloc[-1]) < 0.05
    with pytest.raises(wb.WorkbenchError, match="precision must be one of"):
        s.fit(epochs=1, precision="int8")


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="torch.compile on a CPU needs a C compiler")
def test_a_compiled_run_matches_the_eager_one_and_checkpoints_the_plain_module(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path)
    eager = s.fit(epochs=1, lr=1e-3)
    compiled = s.fit(epochs=1, lr=1e-3, compile=True)
    assert compiled.status == "completed" and compiled.config["compile"] is True
    # the compiled forward computes the same function; kernels fuse differently, so equal to about 1e-4
    a, b = eager.steps.data_loss.to_numpy(), compiled.steps.data_loss.to_numpy()
    assert len(a) == len(b) == 23 and abs(a - b).max() < 1e-3
    # what instruments, views and checkpoints see is the plain module, not the compiled wrapper
    assert type(compiled.model) is type(eager.model)
    state = compiled.load_checkpoint()["model"]
    assert not any(k.startswith("_orig_mod") for k in state)
    back = s.run(compiled.id).model  # loads into a fresh, uncompiled model
    x = test.X[:8]
    with torch.no_grad():
        assert torch.allclose(back.eval()(x), compiled.model.eval()(x), atol=1e-6)


def test_step_losses_are_read_in_batches_and_divergence_keeps_its_exact_step(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.mlp, train, test, seed=0, root=tmp_path)
    reads = []
    s.on("steps_logged", lambda ev: reads.append(len(ev.records)))
    run = s.fit(epochs=2, log_every=10)
    assert reads == [10, 10, 3, 10, 10, 3] and len(run.step_records) == 46
    # the 15th training forward returns NaN: the run ends diverged at exactly that step, read from the buffer
    bad = wb.Session(lambda num_classes=10: nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes), NaNAt(15)),
                     train, test, seed=0, root=tmp_path / "bad").fit(epochs=2, log_every=10)
    assert bad.status == "diverged"
    assert bad.records("diverged")["step"].tolist() == [15] and bad.steps.step.iloc[-1] == 15
    assert not torch.isfinite(torch.tensor(bad.steps.loss.iloc[-1]))


class NaNAt(nn.Module):
    """Finite until the n-th training forward, then NaN."""

    def __init__(self, n):
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.calls += 1
            if self.calls == self.n:
                return x * float("nan")
        return x


class StopAt:
    """A run callback that asks the run to stop after step ``n`` (a kill, minus the kill)."""

    def __init__(self, n):
        self.n = n

    def on_step_end(self, engine):
        if engine.step == self.n:
            engine.run.stop()


def test_a_mid_epoch_checkpoint_resumes_to_the_uninterrupted_losses(digits, tmp_path):
    train, test = digits
    full = wb.Session(dropout_mlp, train, test, seed=0, root=tmp_path / "full").fit(epochs=2, checkpoint_every=10)
    s = wb.Session(dropout_mlp, train, test, seed=0, root=tmp_path / "cut")
    cut = s.fit(epochs=2, checkpoint_every=10, callbacks=[StopAt(35)])  # epoch 2 has begun (23 steps an epoch)
    assert cut.status == "stopped"
    names = sorted(p.name for p in cut.checkpoints(mid_epoch=True))
    assert "step-00000030-epoch-0001.pt" in names
    resumed = s.resume(cut.id, epochs=2)  # from step 30: the same data order, the first 7 batches of epoch 2 skipped
    assert resumed.status == "completed"
    assert _losses(resumed) == _losses(full)
