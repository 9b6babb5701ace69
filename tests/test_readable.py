"""Tables for people: the runs table with ISO local times and no NaN cells (the report, ``workbench runs``)."""

from datetime import datetime

import numpy as np
import pandas as pd

import workbench as wb
from workbench.readable import cell, local_time, runs_table


def test_times_are_iso_local_and_missing_cells_are_empty():
    t = 1796000000.0
    assert local_time(t) == datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")
    assert local_time(None) == "" and local_time(float("nan")) == ""
    assert [cell(v) for v in (np.nan, None, pd.NA, 3.0, 0.123456, True, "adam")] == \
        ["", "", "", "3", "0.1235", "True", "adam"]


def test_the_runs_table_of_a_real_session(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.linear, train, test, seed=0, root=tmp_path / "runs")
    run = s.fit(epochs=1, lr=1e-2)
    raw = s.runs()
    assert isinstance(raw.loc[0, "started"], float) and raw["parent"].isna().all()  # what `workbench runs` printed
    table = runs_table(raw)
    assert table.loc[0, "started"] == datetime.fromtimestamp(run.info["started"]).isoformat(sep=" ",
                                                                                           timespec="seconds")
    assert table.loc[0, "parent"] == "" and table.loc[0, "val_metric"] == cell(raw.loc[0, "val_metric"])
    assert "nan" not in table.to_string().lower() and "e+09" not in table.to_string()
