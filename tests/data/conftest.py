"""Shared audits: the digits with injected issues (tests/data/dirty.py) and the clean digits, audited once."""

import pytest

from tests.data.dirty import dirty_digits, scores
from workbench.data import audit
from workbench.datasets import digits


@pytest.fixture(scope="session")
def dirty():
    data, truth, kinds = dirty_digits()
    report = audit(data)
    return {"data": data, "truth": truth, "kinds": kinds, "report": report, "scores": scores(report, truth)}


@pytest.fixture(scope="session")
def clean_report():
    train, test = digits()
    return audit({"train": train, "test": test})


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """A clean folder of 360 generated colour shapes and the same with 7 known defects, each audited once."""
    from tests.data.shapes import dirty_shapes_folder, shapes_folder

    clean, dirty = tmp_path_factory.mktemp("shapes-clean"), tmp_path_factory.mktemp("shapes-dirty")
    shapes_folder(clean)
    truth = dirty_shapes_folder(dirty)
    return {"clean": audit(clean), "dirty": audit(dirty), "truth": truth}


def flagged_files(report, issue) -> set:
    """File names (relative to the folder) of the examples flagged with ``issue``."""
    files = report.meta["files"]["data"]
    return {files[i] for i in report.of(issue)["index"]}
