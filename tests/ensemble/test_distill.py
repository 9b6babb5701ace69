"""Distillation (recipe IV.5): the loss against its formula, the loop against fit(), and the report."""

import math

import pytest
import torch
import torch.nn.functional as F

import workbench as wb
from workbench.ensemble import DistillResult, EnsembleError, distill, distillation_loss
from workbench.tasks import make_task
from workbench.train import evaluate


def test_loss_matches_the_formula():
    torch.manual_seed(0)
    task = make_task("classification", num_classes=5)
    s, t = torch.randn(8, 5), torch.randn(8, 5)
    y = torch.randint(0, 5, (8,))
    T, alpha = 3.0, 0.6
    p_t = F.softmax(t / T, 1)
    total, soft, hard = distillation_loss(s, p_t, y, task, T, alpha)
    kl = (p_t * (p_t.log() - F.log_softmax(s / T, 1))).sum(1).mean()  # KL(teacher || student) per example
    assert soft.item() == pytest.approx(T * T * kl.item(), rel=1e-5)
    assert hard.item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-6)
    assert total.item() == pytest.approx(alpha * soft.item() + (1 - alpha) * hard.item(), rel=1e-6)
    # the student equal to the teacher has no soft loss; alpha = 0 is plain cross-entropy
    assert distillation_loss(t, p_t, y, task, T, 0.5)[1].item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(s, p_t, y, task, T, 0.0)[0].item() == pytest.approx(hard.item())


def test_regression_soft_term_is_mse_to_the_teacher():
    task = make_task("regression")
    s, t, y = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0], [1.0]])
    total, soft, hard = distillation_loss(s, t, y, task, 4.0, 0.5)
    assert soft.item() == pytest.approx(0.5) and hard.item() == pytest.approx(0.5) and total.item() == 0.5


@pytest.fixture(scope="module")
def distilled(mlp_session, seed_ensemble):
    # through the session, which records the result in its book
    return mlp_session.distill(seed_ensemble, epochs=3, lr=3e-3, temperature=4.0, alpha=0.7, repeats=3)


def test_distillation_end_to_end(distilled, mlp_session, seed_ensemble):
    r = distilled
    assert isinstance(r, DistillResult)
    t = r.table.set_index("model")
    assert list(t.index) == ["teacher", "scratch", "distilled"]
    assert (t["n_eval"] == len(mlp_session.test)).all()
    assert t.loc["teacher", "metric"] == pytest.approx(seed_ensemble.metric)
    assert t.loc["distilled", "params"] == t.loc["scratch", "params"] < t.loc["teacher", "params"] / 5
    assert (t["inference_ms"] > 0).all() and math.isfinite(r.speedup)  # reported, never asserted on speed
    assert r.metric_name == "accuracy" and "IV.5" in r.summary()
    assert t.loc["distilled", "metric"] > 0.5  # it learned: 10 classes, chance is 0.1
    assert mlp_session.reports["distill"] is r and r.path.exists()


def test_distilled_student_is_a_run_in_the_store(distilled, mlp_session):
    run = mlp_session.store.load(distilled.run.id)
    assert run.status == "completed" and run.config["recipe"] == "IV.5"
    assert run.config["model_kwargs"] == {"width": 32}  # half of mlp's default width 64
    assert run.config["teacher_runs"] == distilled.run.config["teacher_runs"] and len(run.config["teacher_runs"]) == 5
    m = run.metrics
    assert m["epoch"].tolist() == [1, 2, 3] and (m["n_eval"] == 360).all()
    assert {"soft_loss", "hard_loss"} <= set(m.columns) and len(run.steps) == 3 * math.ceil(1437 / 64)
    # the checkpoint rebuilds the student from the session: same whole-test-set numbers
    reloaded = mlp_session.load_run(run.id).model
    ev = evaluate(mlp_session, reloaded, "test")
    assert ev["metric"] == pytest.approx(distilled.row("distilled")["metric"])
    assert mlp_session.store.load(distilled.scratch_run.id).config["model_kwargs"] == {"width": 32}


def test_alpha_zero_reproduces_training_from_scratch(mlp_session):
    """With no soft term the loop must be exactly fit(): same seed, same batches, same numbers."""
    teacher = wb.models.mlp(width=8)
    teacher = teacher.to(mlp_session.device)
    teacher(mlp_session.batch("train", 2)[0].to(mlp_session.device))  # materialise the lazy first layer
    r = distill(mlp_session, teacher, epochs=2, lr=3e-3, alpha=0.0, repeats=1)
    assert r.run.steps["data_loss"].tolist() == pytest.approx(r.scratch_run.steps["data_loss"].tolist(), abs=1e-6)
    assert r.row("distilled")["metric"] == r.row("scratch")["metric"]


def test_teacher_as_run_id_and_student_as_factory(mlp_session):
    teacher_run = mlp_session.fit(epochs=2, lr=3e-3)
    r = distill(mlp_session, teacher_run.id, student=wb.models.linear, epochs=1, scratch=False, repeats=1)
    t = r.table.set_index("model")
    assert list(t.index) == ["teacher", "distilled"]
    assert t.loc["teacher", "run_id"] == teacher_run.id
    assert t.loc["teacher", "metric"] == pytest.approx(teacher_run.metrics["val_metric"].iloc[-1])
    assert t.loc["distilled", "params"] == 64 * 10 + 10


@pytest.mark.parametrize("kwargs, match", [({"temperature": 0}, "temperature"), ({"alpha": 1.5}, "alpha"),
                                           ({"epochs": 0}, "epochs")])
def test_bad_options_are_refused(mlp_session, kwargs, match):
    with pytest.raises(EnsembleError, match=match):
        distill(mlp_session, wb.models.mlp(), **kwargs)


def test_bad_teacher_and_student_are_refused(mlp_session):
    with pytest.raises(EnsembleError, match="teacher must be"):
        distill(mlp_session, 42)
    with pytest.raises(wb.RunError, match="no run"):
        distill(mlp_session, "no-such-run")
    with pytest.raises(wb.ModelError, match="10 classes"):
        distill(mlp_session, wb.models.mlp(), student=wb.models.mlp(num_classes=3))


def test_real_valued_sequences_average_and_distill_like_regression(tmp_path):
    """A forecaster (task="sequence" with real-valued targets) ensembles by its mean prediction and
    distils by MSE to the teacher, never through a softmax over its one output channel."""
    from tests.zoo import data, other

    train, test = data.sines()
    s = wb.Session(other.tcn, train, test, seed=0, root=tmp_path, task="sequence")
    assert s.task.name == "sequence" and s.task.real_valued
    res = s.ensemble("seeds", n=2, epochs=2, lr=3e-3)
    ens = res.module
    assert ens.real_valued
    x = test.tensors[0][:8] if hasattr(test, "tensors") else torch.stack([test[i][0] for i in range(8)])
    with torch.no_grad():
        mean = torch.stack([m(x) for m in ens.members]).mean(0)
        assert torch.allclose(ens(x), mean)
    with pytest.raises(EnsembleError, match="real-valued"):
        ens.probs(x)
    # the ensemble's mse is the mse of the mean prediction: a softmax over one channel would give a constant 1.0
    assert res.metric < res.members["metric"].max()
    out = s.distill(ens, epochs=2, lr=3e-3, alpha=0.5, repeats=1)
    distilled = out.row("distilled")["metric"]
    assert math.isfinite(distilled) and distilled < 0.5
