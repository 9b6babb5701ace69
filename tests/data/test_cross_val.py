"""Label issues from the session's own model, cross-validated (I.2): flipped labels found, the source said."""

import pytest
import torch

import workbench as wb


@pytest.fixture
def flipped(digits, tmp_path):
    train, test = digits
    g = torch.Generator().manual_seed(1)
    Y = train.Y.clone()
    idx = torch.randperm(len(Y), generator=g)[:72]  # 5% of the training labels
    Y[idx] = (Y[idx] + 1 + torch.randint(0, 9, (len(idx),), generator=g)) % 10
    tr = wb.datasets.TensorPairDataset(train.X, Y, preprocessing=train.preprocessing, name="digits-flipped")
    s = wb.Session(wb.models.tiny_cnn, tr, test, seed=0, root=tmp_path / "runs")
    return s, set(idx.tolist())


def scores(report, truth):
    found = set(report.issues.query("issue == 'label_issue' and split == 'train'")["index"].tolist())
    return len(found & truth) / len(truth), len(found & truth) / max(1, len(found))


def test_session_model_cross_validated_when_asked(flipped):
    s, truth = flipped
    run = s.fit(epochs=5, lr=3e-3)
    stages = []
    s.on("audit_progress", lambda ev: stages.append(ev.stage))
    report = s.audit(splits=("train",), issues=("label_issue",), label_model="session")
    assert "5-fold cross-validation of the session's model (tiny_cnn)" in report.source
    assert report.label_model.name == f"tiny_cnn (configuration of run {run.id})"
    assert 0.85 <= report.label_model.accuracy <= 1.0, report.label_model
    assert any("cross-validation fold 5/5" in st for st in stages)
    recall, precision = scores(report, truth)
    assert recall >= 0.75 and precision >= 0.75, (recall, precision)  # measured 0.81 / 0.85


def test_default_label_model_is_the_same_whatever_runs_exist(flipped):
    """The same audit before and after runs: the same label model, accuracy and findings."""
    s, truth = flipped
    before = s.audit(splits=("train",), issues=("label_issue",))
    assert before.label_model.name == "embedding k-NN"
    with pytest.raises(wb.DataError, match="needs a finished classification run"):
        s.audit(splits=("train",), issues=("label_issue",), label_model="session")
    s.fit(epochs=1)
    after = s.audit(splits=("train",), issues=("label_issue",))
    assert after.label_model.name == before.label_model.name
    assert after.label_model.accuracy == before.label_model.accuracy
    assert after.issues["index"].tolist() == before.issues["index"].tolist()
    assert "label_model='session' cross-validates" in after.source
    recall, precision = scores(after, truth)
    assert recall >= 0.8 and precision >= 0.8, (recall, precision)


def test_cross_validation_leaves_the_rng_as_it_was(flipped):
    s, _ = flipped
    s.fit(epochs=1)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    s.audit(splits=("train",), issues=("label_issue",), label_model="session")
    assert torch.equal(torch.rand(3), expected)
