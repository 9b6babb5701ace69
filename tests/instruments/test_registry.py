"""The registry and attach(): names, handles, session.instruments; instruments leave training untouched."""

import threading
import time

import pytest

import workbench.instruments as wi
from workbench.errors import WorkbenchError


def test_attach_default_and_detach(session):
    handles = session.instrument()
    assert [h.instrument.name for h in handles] == list(wi.DEFAULT) == \
        ["curves", "histograms", "update_ratio", "first_layer", "predictions", "grad_norms"]
    assert session.instruments == [h.instrument for h in handles]
    assert all(h.instrument.recipe for h in handles)
    handles[2].remove()
    assert "update_ratio" not in [i.name for i in session.instruments] and not handles[2].attached
    handles[2].remove()  # idempotent
    wi.detach(session)
    assert session.instruments == [] and not any(session.bus.has(e) for e in ("step_end", "after_backward"))


def test_names_cadence_and_replacement(session):
    h = wi.attach(session, ["update_ratio", "first_layer"], every=16)
    assert h[0].instrument.every == 16 and h[1].instrument.every == 1  # first_layer counts epochs
    again = wi.attach(session, "update_ratio", every=4)
    assert [i.name for i in session.instruments] == ["first_layer", "update_ratio"]
    assert wi.get(session, "update_ratio") is again[0].instrument and not h[0].attached
    opts = wi.attach(session, "predictions", k=4)
    assert opts[0].instrument.k == 4


@pytest.mark.parametrize("names,every,match", [("histogram", None, "unknown instrument"),
                                               (["curves", "nope"], None, "'nope'"),
                                               ("curves", 0, "positive whole number"),
                                               (3, None, "names must be")])
def test_bad_input_is_named(session, names, every, match):
    with pytest.raises(WorkbenchError, match=match):
        wi.attach(session, names, every=every)


def test_instruments_do_not_change_training(session):
    plain = session.fit(epochs=2, checkpoint=False)
    session.instrument(every=1)  # every instrument, every step: the most intrusive setting
    watched = session.fit(epochs=2, checkpoint=False)
    assert watched.steps["loss"].tolist() == plain.steps["loss"].tolist()
    assert watched.metrics["val_loss"].tolist() == plain.metrics["val_loss"].tolist()
    assert all(len(i.records) for i in session.instruments)
    assert {s["name"] for s in wi.summaries(session)} == set(wi.DEFAULT)


def test_readable_from_another_thread_while_training(session):
    session.instrument(every=2)
    run = session.fit(epochs=3, background=True, checkpoint=False)
    seen, errors = {}, []

    def reader():
        versions = {}
        while run.running:
            for inst in session.instruments:
                try:
                    new = inst.since(versions.get(inst.name, 0))
                    inst.snapshot()
                    inst.summary()
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
                    return
                if new:
                    versions[inst.name] = new[-1]["version"]
                    seen[inst.name] = seen.get(inst.name, 0) + len(new)
            time.sleep(0.002)  # a UI polls periodically; spinning would only fight the trainer for the GIL

    t = threading.Thread(target=reader)
    t.start()
    run.wait()
    t.join()
    assert not errors and run.status == "completed"
    assert seen.get("curves", 0) > 0
