"""wb.watch under DDP (2 CPU processes, gloo): one run, and the instruments of a single process on the global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import workbench as wb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ddp_worker import measured, small_model, train  # noqa: E402

from tests.browser.serving import free_port  # noqa: E402


@pytest.mark.slow
def test_two_ranks_record_one_run_matching_one_process(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 32, 8, generator=g), torch.randint(0, 3, (6, 32), generator=g)
    torch.save((x, y), tmp_path / "data.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[1])}
    out = subprocess.run([sys.executable, str(HERE / "ddp_worker.py"), str(tmp_path / "ddp-runs"),
                          str(tmp_path / "data.pt"), str(tmp_path / "ddp.json"), str(free_port())],
                         env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"ddp.json.rank{r}").read_text()) for r in (0, 1)]
    assert [r["active"] for r in ranks] == [True, False] and ranks[1]["run"] is None
    store = wb.Session(small_model(), torch.utils.data.TensorDataset(x[0], y[0]), root=tmp_path / "ddp-runs")
    assert store.runs()["id"].tolist() == [ranks[0]["run"]]  # exactly one run, rank 0's
    run = store.run(ranks[0]["run"])
    assert run.status == "completed" and run.config["world_size"] == 2 and len(run.step_records) == 6

    # the same global batches in one process: the reduced gradients are the global batch's gradients
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    w = wb.watch(model, opt, root=tmp_path / "single", num_classes=3, every=1,
                 instruments=["grad_norms", "update_ratio"])
    train(model, model, x, y, w)
    single, ddp = measured(w.session), json.loads((tmp_path / "ddp.json").read_text())
    assert len(ddp["grad_total"]) == len(single["grad_total"]) == 6
    assert ddp["grad_total"] == pytest.approx(single["grad_total"], rel=1e-4)
    for a, b in zip(ddp["grad_layers"], single["grad_layers"], strict=True):
        assert a == pytest.approx(b, rel=1e-4)
    for a, b in zip(ddp["ratios"], single["ratios"], strict=True):
        assert a == pytest.approx(b, rel=1e-3)
