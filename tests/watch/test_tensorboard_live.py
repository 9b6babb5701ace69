"""TensorBoard event files written while the run trains, read back before it ends."""

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.instruments import export

pytestmark = pytest.mark.skipif(not export.tensorboard_available(), reason="tensorboard is not installed")


def read(path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer(size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    mux.AddRunsFromDirectory(str(path))
    mux.Reload()
    return mux


def scalars(mux, tag):
    return [(e.step, e.value) for run in mux.Runs() if tag in mux.Runs()[run]["scalars"]
            for e in mux.Scalars(run, tag)]


def test_event_files_are_readable_while_training(digits, tmp_path):
    train, test = digits
    torch.manual_seed(0)
    model = wb.models.tiny_cnn(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    w = wb.watch(model, opt, train=loader, test=test, root=tmp_path / "runs", every=5, log_every=8,
                 tensorboard=tmp_path / "tb")
    logdir = tmp_path / "tb" / w.run.id

    def epoch():
        for x, y in loader:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            w.step(loss)
        return w.epoch()

    row1 = epoch()
    mux = read(logdir)  # the run is still open: nothing has closed the writer
    assert not w.closed and w.run.status == "running"
    steps = scalars(mux, "loss/step")
    assert [s for s, _ in steps] == list(range(1, len(loader) + 1))
    assert [v for _, v in steps] == pytest.approx(w.run.steps["loss"].tolist(), rel=1e-6)
    assert scalars(mux, "epoch/val_loss") == [(len(loader), pytest.approx(row1["val_loss"], rel=1e-6))]
    assert [s for s, _ in scalars(mux, "grad_norm/total")] == list(range(5, len(loader) + 1, 5))
    hist_tags = [t for run in mux.Runs() for t in mux.Runs()[run]["histograms"]]
    assert any(t.startswith("act/") for t in hist_tags) and any(t.startswith("grad/") for t in hist_tags)

    row2 = epoch()
    mux = read(logdir)
    assert len(scalars(mux, "loss/step")) == 2 * len(loader)
    assert [v for _, v in scalars(mux, "epoch/val_loss")] == pytest.approx([row1["val_loss"], row2["val_loss"]])
    w.close()
    images = [t for run in mux.Runs() for t in mux.Runs()[run]["images"]]
    assert "first_layer" in images


def test_missing_tensorboard_is_named(monkeypatch):
    from workbench.errors import WorkbenchError
    from workbench.instruments.tensorboard_live import TensorBoardLive

    monkeypatch.setattr(export, "tensorboard_available", lambda: False)
    with pytest.raises(WorkbenchError, match="pip install tensorboard"):
        TensorBoardLive()
