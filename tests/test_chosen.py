"""The chosen configuration: the LR finder's pick, else the best search trial, else the person's last run;
ensembles and distillation train with it unless told otherwise."""

import pytest

import workbench as wb
from workbench.errors import WorkbenchError


@pytest.fixture
def s(digits, tmp_path):
    train, test = digits
    tr = wb.datasets.TensorPairDataset(train.X[:256], train.Y[:256], preprocessing=train.preprocessing,
                                       classes=train.classes, name="digits-small")
    return wb.Session(wb.models.mlp, tr, test, seed=0, root=tmp_path / "runs", name="digits-small")


def test_the_configuration_comes_from_what_was_found_and_says_where(s):
    c = s.chosen_config()
    assert c["lr"] == 1e-3 and c["epochs"] == 5 and "defaults" in c["source"] and c["run_id"] is None
    run = s.fit(epochs=2, lr=2e-2, weight_decay=1e-4)
    c = s.chosen_config()
    assert (c["lr"], c["epochs"], c["weight_decay"], c["run_id"]) == (2e-2, 2, 1e-4, run.id)
    s.fit(epochs=1, lr=0.5, tags={"study": "s", "trial": 0, "stage": "coarse"})  # a search trial is no choice
    assert s.chosen_config()["run_id"] == run.id and s.chosen_config()["lr"] == 2e-2
    table = s.search(trials=2, epochs=1)
    best = table[table["state"] == "COMPLETE"].iloc[0]
    c = s.chosen_config()
    assert c["lr"] == pytest.approx(best["lr"]) and c["epochs"] == 2 and "search trial" in c["source"]
    found = s.lr_find(steps=30, coarse=None)
    c = s.chosen_config()
    assert c["lr"] == pytest.approx(found.suggestion) and "LR finder" in c["source"] and c["epochs"] == 2
    s.choose_config(lr=5e-3, epochs=3)
    c = s.chosen_config()
    assert (c["lr"], c["epochs"]) == (5e-3, 3) and c["source"].startswith("set by hand")


def test_a_bad_choice_is_named(s):
    with pytest.raises(WorkbenchError, match="unknown key.*momentum"):
        s.choose_config(momentum=0.9)
    with pytest.raises(WorkbenchError, match="lr must be a positive number"):
        s.choose_config(lr=-1)


def test_seed_members_and_the_distilled_student_train_with_the_chosen_configuration(s):
    s.fit(epochs=2, lr=2e-2)
    ens = s.ensemble("seeds", n=2)
    for rid in ens.run_ids:
        cfg = s.store.load(rid).config
        assert (cfg["lr"], cfg["epochs"]) == (2e-2, 2)
    assert any("lr 0.02, 2 epochs" in n for n in ens.notes)
    s.choose_config(lr=1e-2, epochs=1)
    d = s.distill(ens, repeats=1)
    assert (d.run.config["lr"], d.run.config["epochs"]) == (1e-2, 1)
    assert (d.scratch_run.config["lr"], d.scratch_run.config["epochs"]) == (1e-2, 1)
    explicit = s.ensemble("seeds", n=1, lr=3e-3, epochs=1)  # the caller's values win
    assert s.store.load(explicit.run_ids[0]).config["lr"] == 3e-3
