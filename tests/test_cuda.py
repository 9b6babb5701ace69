"""The CUDA path: training, checkpoints and the recipe's checks on a GPU model (skipped without CUDA)."""

import pytest
import torch

import workbench as wb
from tests.instruments.test_grad_norms import broken_mlp

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def gpu_session(digits, tmp_path):
    train, test = digits
    # deterministic cuDNN kernels: without them a conv backward differs in the 5th digit between runs
    return wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path / "runs", deterministic=True)


def test_fit_on_cuda_learns_and_checkpoints_load_on_cpu(gpu_session):
    s = gpu_session
    assert s.device.type == "cuda" and next(s.model.parameters()).is_cuda
    run = s.fit(epochs=3, lr=3e-3)
    assert run.status == "completed"
    assert run.metrics.n_eval.tolist() == [360] * 3
    assert run.metrics.val_metric.iloc[-1] > 0.85
    state = torch.load(run.checkpoints()[-1], map_location="cpu", weights_only=True)
    assert all(not v.is_cuda for v in state["model"].values())
    back = s.load_run(run.id)
    assert next(back.model.parameters()).is_cuda


def test_same_seed_same_losses_on_cuda(gpu_session):
    a = gpu_session.fit(epochs=1)
    b = gpu_session.fit(epochs=1)
    assert a.steps.data_loss.tolist() == b.steps.data_loss.tolist()


def test_background_run_stops_on_cuda(gpu_session):
    run = gpu_session.fit(epochs=500, background=True)
    import time

    time.sleep(1.0)
    run.stop()
    run.wait(60)
    assert run.status == "stopped"


def test_every_check_gives_a_verdict_on_a_gpu_model(gpu_session):
    results = gpu_session.checks()
    by_name = {r.name: r for r in results}
    assert not [r for r in results if r.status == "error"], [(r.name, r.message) for r in results]
    for name in ("init_loss", "batch_dependency", "gradient_check", "overfit_batch", "input_independent"):
        assert by_name[name].status == "pass", (name, by_name[name].message)
    assert next(gpu_session.model.parameters()).is_cuda  # the session's model stays on the device


def test_instruments_on_cuda_do_not_change_training(gpu_session):
    plain = gpu_session.fit(epochs=1)
    handles = gpu_session.instrument("default", every=4)
    watched = gpu_session.fit(epochs=1)
    recorded = {h.instrument.name: h.instrument.version for h in handles}
    for h in handles:
        h.remove()
    assert watched.steps.data_loss.tolist() == plain.steps.data_loss.tolist()
    assert all(v > 0 for v in recorded.values()), recorded  # every instrument measured on the GPU model


@pytest.mark.parametrize("trap_every", [1, None])
def test_nan_trap_names_the_layer_on_cuda(digits, tmp_path, trap_every):
    train, test = digits  # broken_mlp: a NaN backward from its 4th training step
    s = wb.Session(broken_mlp, train, test, seed=0, root=tmp_path / "runs")
    assert s.device.type == "cuda"
    inst = s.instrument("grad_norms", every=10, trap_every=trap_every)[0].instrument
    with pytest.warns(RuntimeWarning, match="first appears in layer '3'"):
        run = s.fit(epochs=1, checkpoint=False)
    assert inst.trapped["layer"] == "3" and inst.trapped["layers"] == ["1", "3"] and inst.trapped["step"] == 4
    if trap_every == 1:
        assert run.status == "stopped" and inst.trapped["where"] == "gradient"
    else:
        assert run.status == "diverged" and inst.trapped["where"] == "weights"
