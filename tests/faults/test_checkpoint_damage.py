"""Truncated, corrupt and hostile checkpoints: fall back to the previous good one and say so."""

import pickle
import warnings

import pytest
import torch

import workbench as wb
from workbench.errors import DamagedRunError


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _scramble(path):
    data = bytearray(path.read_bytes())
    data[100:400] = bytes(range(256))[:300] + bytes(300 - 256)
    path.write_bytes(bytes(data))


class _Payload:
    def __reduce__(self):  # what an attacker would plant: runs a command when unpickled without weights_only
        import os

        return (os.system, ("touch PWNED",))


def _hostile(path):
    path.write_bytes(pickle.dumps({"model": _Payload()}))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("damage", [_truncate, _scramble, _hostile, lambda p: p.write_bytes(b"")],
                         ids=["truncated", "corrupt", "hostile pickle", "empty"])
def test_the_newest_damaged_checkpoint_falls_back_to_the_one_before(finished_run, damage, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    last = finished_run.checkpoints()[-1]
    assert last.name == "epoch-0003.pt"
    damage(last)
    with pytest.warns(RuntimeWarning, match="skipped damaged checkpoint.*epoch-0003.pt; using epoch-0002.pt"):
        state = finished_run.load_checkpoint()
    assert state["epoch"] == 2 and state["step"] == 46
    assert state["skipped_checkpoints"] == ["epoch-0003.pt"]
    assert finished_run.info["skipped_checkpoints"][0]["file"] == "epoch-0003.pt"
    assert not (tmp_path / "PWNED").exists()  # weights_only: nothing in the file ran


def test_an_explicitly_chosen_damaged_checkpoint_is_named(finished_run):
    path = finished_run.checkpoints()[0]
    _truncate(path)
    with pytest.raises(DamagedRunError, match=f"checkpoint {path} is damaged") as e:
        finished_run.load_checkpoint(path)
    assert "falls back" in e.value.fix


def test_every_checkpoint_damaged_is_one_clear_error(finished_run):
    for p in finished_run.checkpoints():
        _truncate(p, 0.3)
    with pytest.raises(DamagedRunError, match="every checkpoint of run .* is damaged: epoch-0003.pt") as e:
        finished_run.load_checkpoint()
    assert "session.fit" in e.value.fix


def test_resume_past_a_truncated_checkpoint_reproduces_the_uninterrupted_run(linear_session, digits, tmp_path):
    s = linear_session
    part = s.fit(epochs=2)
    _truncate(part.checkpoints()[-1])  # the last checkpoint (epoch 2) is half written
    with pytest.warns(RuntimeWarning, match="using epoch-0001.pt"):
        resumed = s.resume(part.id, epochs=3)
    assert resumed.status == "completed" and resumed.metrics.epoch.tolist() == [1, 2, 3]
    assert resumed.steps.step.tolist() == list(range(1, 3 * 23 + 1))
    train, test = digits
    ref = wb.Session(wb.models.linear, train, test, seed=0, root=tmp_path / "ref").fit(epochs=3)
    assert resumed.steps.data_loss.tolist() == ref.steps.data_loss.tolist()  # exactly the same training


def test_load_run_falls_back_too(finished_run, linear_session):
    _scramble(finished_run.checkpoints()[-1])
    with pytest.warns(RuntimeWarning, match="using epoch-0002.pt"):
        back = linear_session.load_run(finished_run.id)
    ref = torch.load(finished_run.checkpoints()[1], weights_only=True)["model"]
    assert all(torch.equal(back.model.state_dict()[k], v) for k, v in ref.items())


def test_mid_epoch_checkpoints_order_by_epoch_then_step(linear_session):
    run = linear_session.fit(epochs=1, checkpoint=False)
    for epoch, step in ((0, 10), (1, None), (1, 30), (0, 20), (2, None), (2, 50)):
        run.save_checkpoint({"epoch": epoch, "step": step if step else 23 * epoch}, epoch, step=step)
    names = [p.name for p in run.checkpoints(mid_epoch=True)]
    assert names == ["step-00000010-epoch-0000.pt", "step-00000020-epoch-0000.pt", "epoch-0001.pt",
                     "step-00000030-epoch-0001.pt", "epoch-0002.pt", "step-00000050-epoch-0002.pt"]
    assert [p.name for p in run.checkpoints()] == ["epoch-0001.pt", "epoch-0002.pt"]
    assert run.load_checkpoint()["step"] == 50
    _truncate(run.checkpoints(mid_epoch=True)[-1])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert run.load_checkpoint()["step"] == 46  # epoch-0002.pt
