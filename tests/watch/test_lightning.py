"""RecipeCallback on a CPU Lightning Trainer: the plain watched loop's run and instruments; checks on the module."""

import pytest
import torch
from torch import nn

import workbench as wb

pl = pytest.importorskip("lightning.pytorch")
from workbench.integrations.lightning import RecipeCallback  # noqa: E402


class DigitsModule(pl.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        torch.manual_seed(0)
        self.net = wb.models.tiny_cnn(num_classes=10)
        self.lr = lr
        self.loss_fn = nn.CrossEntropyLoss()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.log("val_loss", self.loss_fn(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class DigitsData(pl.LightningDataModule):
    def __init__(self, digits):
        super().__init__()
        self.train, self.test = digits

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.train, batch_size=64, shuffle=False)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.test, batch_size=512, shuffle=False)


def fit_lightning(digits, root, **callback_options):
    cb = RecipeCallback(root=root, every=5, **callback_options)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, callbacks=[cb], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    trainer.fit(DigitsModule(), datamodule=DigitsData(digits))
    return cb


def fit_plain(digits, root):
    module = DigitsModule()
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    data = DigitsData(digits)
    loader = data.train_dataloader()
    w = wb.watch(module, opt, train=loader, test=data.test, root=root, every=5, epochs=2)
    for _ in range(2):
        for i, batch in enumerate(loader):
            opt.zero_grad()
            loss = module.training_step(batch, i)
            loss.backward()
            opt.step()
            w.step(loss)
        w.epoch()
    return w


def test_callback_gives_the_plain_loops_run_and_instruments(digits, tmp_path):
    cb = fit_lightning(digits, tmp_path / "pl")
    w = fit_plain(digits, tmp_path / "plain")
    run, ref = cb.run, w.run
    assert run.status == "completed" and ref.status == "completed"
    assert cb.watch.session.runs()["id"].tolist() == [run.id]
    assert len(run.step_records) == len(ref.step_records) == 2 * 23
    assert run.steps["loss"].tolist() == pytest.approx(ref.steps["loss"].tolist(), rel=1e-4)
    assert run.steps["epoch"].tolist() == pytest.approx(ref.steps["epoch"].tolist())
    # the epoch rows: Lightning's logged validation numbers = the whole-set evaluation of the plain loop
    assert run.metrics["val_loss"].tolist() == pytest.approx(ref.metrics["val_loss"].tolist(), rel=1e-4)
    assert run.metrics["val_metric"].tolist() == pytest.approx(ref.metrics["val_metric"].tolist(), abs=1e-6)
    got, want = cb.watch.session, w.session
    for name in ("grad_norms", "update_ratio"):
        a, b = wb.instruments.get(got, name).frame(), wb.instruments.get(want, name).frame()
        assert a["step"].tolist() == b["step"].tolist() and len(a) == 9
        cols = [c for c in b.columns if c not in ("step", "epoch")]
        assert a[cols].to_numpy() == pytest.approx(b[cols].to_numpy(), rel=1e-3, abs=1e-9)
    verdicts = run.records("instrument").set_index("name")
    assert set(verdicts.index) == set(wb.instruments.DEFAULT) and (verdicts["records"] > 0).all()


def test_checks_run_on_a_lightning_module(digits, tmp_path):
    s = wb.Session.from_lightning(DigitsModule(), DigitsData(digits), root=tmp_path / "runs", seed=0)
    assert len(s.train) == len(digits[0]) and len(s.eval_set) == len(digits[1])
    r = s.check("init_loss")
    assert r.status == "pass" and abs(r.measured["ratio"] - 1) < 0.1
    assert s.check("batch_dependency").status == "pass"


def test_from_lightning_needs_data(tmp_path):
    with pytest.raises(wb.WorkbenchError, match="needs the data"):
        wb.Session.from_lightning(DigitsModule())
    with pytest.raises(wb.WorkbenchError, match="LightningModule"):
        wb.Session.from_lightning(nn.Linear(2, 2))


@pytest.mark.slow
def test_ddp_strategy_records_one_run_from_global_rank_zero(tmp_path, digits):
    import json
    import math
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(here.parents[1])}
    out = subprocess.run([sys.executable, str(here / "lightning_ddp_worker.py"), str(tmp_path / "runs")], env=env,
                         capture_output=True, text=True, timeout=500)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["world_size"] == 2
    store = wb.store.RunStore(tmp_path / "runs")
    assert len(store.ids()) == 1  # rank 1 stayed quiet
    run = store.load(store.ids()[0])
    per_rank = math.ceil(math.ceil(len(digits[0]) / 2) / 64)  # the DistributedSampler: half the examples each
    assert run.status == "completed" and run.config["world_size"] == 2
    assert len(run.step_records) == 2 * per_rank and run.metrics["step"].tolist() == [per_rank, 2 * per_rank]
    verdicts = run.records("instrument").set_index("name")
    assert set(verdicts.index) == set(wb.instruments.DEFAULT) and (verdicts["records"] > 0).all()
