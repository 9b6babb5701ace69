"""The result Book: every result recorded by the session whoever asked, kept on disk as JSON, read by a new
Session on the same root and data (a page reload), emitted as ``result_done``."""

import json
import threading

import pytest

import workbench as wb
from workbench.book import KINDS, Book
from workbench.errors import WorkbenchError
from workbench.verdict import Verdict


def small(digits, root, n=256, model=None, name="digits-small"):
    train, test = digits
    tr = wb.datasets.TensorPairDataset(train.X[:n], train.Y[:n], preprocessing=train.preprocessing,
                                       classes=train.classes, name=name)
    return wb.Session(model or wb.models.mlp, tr, test, seed=0, root=root, name=name)


def test_results_recorded_by_the_session_are_read_by_a_new_session_on_the_same_data(digits, tmp_path):
    s = small(digits, tmp_path / "runs")
    seen = []
    s.on("result_done", lambda e: seen.append((e.kind, e.key)))
    check = s.check("init_loss")
    lr = s.lr_find(steps=30, coarse=None)
    report = s.audit(label_model="embedding")
    run = s.fit(epochs=2, lr=1e-2)
    diag = s.diagnose()
    assert seen == [("checks", "init_loss"), ("lr_find", None), ("audit", None), ("diagnosis", None)]
    assert diag.run_id == run.id

    again = small(digits, tmp_path / "runs")  # a new browser tab: a new Session, same root and data
    assert again.book.directory == s.book.directory
    v = again.results["init_loss"]
    assert isinstance(v, Verdict) and v.status == check.status and v.measured["loss"] == pytest.approx(
        check.measured["loss"])
    got = again.reports["lr_find"]
    assert got.suggestion == pytest.approx(lr.suggestion) and len(got.curve) == len(lr.curve)
    assert list(got.curve["lr"]) == pytest.approx(list(lr.curve["lr"]))
    rep = again.book.get("audit")
    assert rep.summary.index.name == "issue" and list(rep.summary["count"]) == list(report.summary["count"])
    assert len(rep.issues) == len(report.issues)
    d = again.book.get("diagnosis")
    assert d.run_id == run.id and [f.status for f in d.findings] == [f.status for f in diag.findings]
    for path in again.book.directory.glob("*.json"):  # JSON only, never pickle
        json.loads(path.read_text())
    assert not list(again.book.directory.glob("*.pkl"))


def test_other_data_or_another_seed_starts_another_book(digits, tmp_path):
    s = small(digits, tmp_path / "runs")
    s.check("init_loss")
    other = small(digits, tmp_path / "runs", n=200)
    assert other.book.directory != s.book.directory and "init_loss" not in other.results
    train, test = digits
    reseeded = wb.Session(wb.models.mlp, s.train, test, seed=1, root=tmp_path / "runs", name="digits-small")
    assert "init_loss" not in reseeded.results


def test_a_search_table_round_trips_with_its_order_and_attrs(digits, tmp_path):
    s = small(digits, tmp_path / "runs")
    table = s.search(trials=2, epochs=1)
    again = small(digits, tmp_path / "runs")
    back = again.reports["search"]
    assert list(back["run_id"]) == list(table["run_id"]) and back.attrs["recipe"] == "B.2"
    assert list(back["lr"]) == pytest.approx(list(table["lr"]))


def test_recording_is_thread_safe_and_the_file_stays_whole(tmp_path):
    book = Book(tmp_path / "book")

    def work(t):
        for i in range(40):
            book.record("checks", Verdict(f"c{t}-{i}", "pass", {"i": i}))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(book.checks()) == 160
    doc = json.loads((tmp_path / "book" / "checks.json").read_text())
    assert len(doc["value"]) == 160 and doc["value"]["c3-39"]["measured"] == {"i": 39}


def test_bad_kinds_and_nameless_checks_are_named(tmp_path):
    book = Book(tmp_path / "book")
    with pytest.raises(WorkbenchError, match="no kind 'lr'.*kinds are"):
        book.record("lr", 0.1)
    with pytest.raises(WorkbenchError, match="needs a name"):
        book.record("checks", object())
    assert set(KINDS) >= {"audit", "checks", "lr_find", "search", "diagnosis", "ensemble", "distill",
                          "human_baseline", "chosen_config", "compare"}


def test_the_compat_views_read_and_write_the_book(digits, tmp_path):
    s = small(digits, tmp_path / "runs")
    s.reports["chosen_lr"] = 0.02  # what the tune view's "use this LR" writes
    assert s.book.get("chosen_config")["lr"] == 0.02 and s.chosen_config()["lr"] == 0.02
    s.reports["scratch"] = {"anything": 1}  # no kind of result: kept in memory, never written
    assert s.reports["scratch"] == {"anything": 1} and not (s.book.directory / "scratch.json").exists()
    assert "chosen_lr" in s.reports and "scratch" in s.reports
    del s.reports["scratch"]
    assert "scratch" not in s.reports
    with pytest.raises(KeyError):
        s.results["init_loss"]


def test_a_finished_human_baseline_comes_back_after_a_reload(digits, tmp_path):
    from workbench.ui.human import HumanBaseline

    s = small(digits, tmp_path / "runs")
    view = HumanBaseline(s, n=3)
    truths = [int(s.split("test")[i][1]) for i in view.indices]
    view.answer(truths[0])
    assert s.human_baseline is None and small(digits, tmp_path / "runs").human_baseline is None  # 1 of 3
    view = HumanBaseline(small(digits, tmp_path / "runs"), n=3)  # a reload continues the same sample
    assert view.position == 1 and view.accuracy == 1.0 and view.current == view.indices[1]
    s = view.session
    view.answer(truths[1])
    view.answer((truths[2] + 1) % 10)
    assert s.human_baseline == pytest.approx(2 / 3)
    again = small(digits, tmp_path / "runs")
    assert again.human_baseline == pytest.approx(2 / 3) and again.book.get("human_baseline")["n"] == 3
    again.human_baseline = 0.5  # set by hand: wins
    assert again.human_baseline == 0.5


def test_a_value_the_book_cannot_write_stays_in_memory_and_spares_the_rest(tmp_path):
    book = Book(tmp_path / "book")
    book.record("checks", Verdict("init_loss", "pass", {"loss": 2.3}))
    book.record("checks", object(), name="fake")  # a test double: no to_dict
    assert set(book.checks()) == {"init_loss", "fake"}
    doc = json.loads((tmp_path / "book" / "checks.json").read_text())
    assert set(doc["value"]) == {"init_loss"}
    book.record("diagnosis", "not a Diagnosis")
    assert book.get("diagnosis") == "not a Diagnosis" and not (tmp_path / "book" / "diagnosis.json").exists()
    assert set(Book(tmp_path / "book").checks()) == {"init_loss"}
