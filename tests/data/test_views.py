"""Acting on the audit: a session over the data without (or with relabelled) marked examples, recorded in runs (I.2)."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import workbench as wb


def test_excluding_and_relabelling_change_the_next_run(session):
    s2 = session.with_data(exclude={"train": [0, 1, 2]}, relabel={"train": {5: 3}})
    assert len(s2.train) == len(session.train) - 3 and len(s2.test) == len(session.test)
    assert torch.equal(s2.train.X[0], session.train.X[3])
    assert int(s2.train.Y[2]) == 3 and int(session.train.Y[5]) != 3         # old index 5 is new index 2
    run = s2.fit(epochs=1, lr=1e-3)
    cfg = run.config
    assert cfg["n_train"] == len(session.train) - 3
    step = cfg["data_view"]["train"][0]
    assert [e["index"] for e in step["excluded"]] == [0, 1, 2] and step["excluded"][0]["why"] == "excluded by hand"
    assert step["relabelled"] == [{"index": 5, "from": str(int(session.train.Y[5])), "to": "3"}]
    assert (step["n_before"], step["n_after"]) == (1437, 1434)
    assert session.fit(epochs=1).config["data_view"] is None     # the original session is untouched


def test_report_exclude_list_drops_leaked_training_copies(digits, tmp_path):
    train, test = digits
    X = train.X.clone()
    X[:4] = test.X[:4]                                             # four test images leaked into train
    leaky = wb.datasets.TensorPairDataset(X, train.Y, preprocessing=train.preprocessing, name="leaky")
    s = wb.Session(wb.models.tiny_cnn, leaky, test, seed=0, root=tmp_path / "runs")
    report = s.audit(issues=("train_test_leak",))
    assert report.summary.loc["train_test_leak", "count"] == 8
    s2 = s.with_data(report)
    assert len(s2.train) == len(leaky) - 4 and len(s2.test) == len(test)
    assert s2.audit(issues=("train_test_leak",)).summary.loc["train_test_leak", "count"] == 0
    whys = [e["why"] for e in s2.data_view["train"][0]["excluded"]]
    assert len(whys) == 4 and all("test" in w for w in whys)


def test_browser_marks_and_class_names(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path / "runs")
    marks = pd.DataFrame([{"split": "train", "index": 7, "action": "exclude", "new_label": None},
                          {"split": "train", "index": 8, "action": "relabel", "new_label": "9"}])
    s2 = s.with_data(marks)
    assert len(s2.train) == 1436 and int(s2.train.Y[7]) == 9   # old 8 moved up by one
    s3 = s2.with_data(exclude={"train": [0]})                  # views build on views; the record keeps both
    assert len(s3.train) == 1435 and len(s3.data_view["train"]) == 2
    assert s3.data_view["train"][0]["excluded"][0]["why"] == "marked in the data browser"


@pytest.mark.parametrize("kwargs, words", [
    ({"exclude": {"val": [1]}}, "no split 'val'"),
    ({"exclude": {"train": [5000]}}, "index 5000 does not exist"),
    ({"relabel": {"train": {1: "zebra"}}}, "no class named 'zebra'"),
    ({"relabel": {"train": {1: 12}}}, "not one of the 10 classes"),
    ({"exclude": {"test": list(range(360))}}, "every example of test"),
])
def test_bad_changes_are_named(session, kwargs, words):
    with pytest.raises(wb.DataError, match=words):
        session.with_data(**kwargs)


def _folder(root, seed, names):
    rng = np.random.default_rng(seed)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(names):
            a = np.clip(rng.normal(70 if c == "cat" else 180, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / c / f"{c}{i}.png")


def test_image_folder_view_names_files_and_classes(tmp_path):
    _folder(tmp_path / "train", 0, 10)
    _folder(tmp_path / "test", 1, 4)
    (tmp_path / "test" / "dog" / "dog0.png").write_bytes((tmp_path / "train" / "dog" / "dog3.png").read_bytes())
    (tmp_path / "train" / "cat" / "cut.png").write_bytes((tmp_path / "train" / "cat" / "cat1.png").read_bytes()[:90])
    train = wb.datasets.image_folder(tmp_path / "train", size=16, unreadable="skip")
    test = wb.datasets.image_folder(tmp_path / "test", like=train)
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path / "runs")
    report = s.audit(issues=("train_test_leak",))
    s2 = s.with_data(report, relabel={"train": {0: "dog"}})
    assert [p.rsplit("/", 1)[-1] for p, _ in s2.train.samples].count("dog3.png") == 0
    assert len(s2.train) == 19 and s2.train.classes == ["cat", "dog"] and int(s2.train[0][1]) == 1
    run = s2.fit(epochs=1, lr=1e-3)
    view = run.config["data_view"]
    assert [(e["file"], "test" in e["why"]) for e in view["train"][0]["excluded"]] == [("dog/dog3.png", True)]
    assert view["train"][0]["relabelled"] == [{"index": 0, "file": "cat/cat0.png", "from": "cat", "to": "dog"}]
    left = view["train_files_left_out"]
    assert [e["file"] for e in left] == ["cat/cut.png"] and "cannot be decoded" in left[0]["why"]
    assert run.config["n_train"] == 19
    again = s2.audit(issues=("train_test_leak", "corrupt"))       # the view is audited from its files
    assert again.summary.loc["train_test_leak", "count"] == 0 and again.meta["splits"]["train"] == 19
