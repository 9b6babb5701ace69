"""LiveCurves (P.1, P.2): the training thread appends, flush() streams on the document thread; Start/Stop."""

import time

import panel as pn

from workbench.ui.curves import LiveCurves, gap_verdict


def wait_until(pred, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_curves_stream_a_finished_run_epoch_by_epoch(small_session):
    run = small_session.fit(epochs=3, lr=1e-2)
    view = LiveCurves(small_session)
    assert view.run is run  # the session's last run is shown from the start
    data = view.epoch_source.data
    assert list(data["epoch"]) == [1, 2, 3]
    assert list(data["val_loss"]) == run.metrics.val_loss.tolist()
    assert list(data["train_metric"]) == run.metrics.train_metric.tolist()
    # the gap band spans train and val accuracy
    assert all(lo <= hi for lo, hi in zip(data["lo"], data["hi"], strict=True))
    assert len(view.step_source.data["loss"]) == len(run.step_records) == 3 * 4
    assert view.progress.value == 100
    assert "completed" in view.status and "epoch 3/3" in view.status
    view.flush()  # nothing new: nothing streamed twice
    assert len(view.epoch_source.data["epoch"]) == 3


def test_start_trains_in_background_and_stop_ends_it(small_session):
    view = LiveCurves(small_session, epochs=200, lr=1e-2)
    run = view.start()
    assert run is not None and run.running
    assert view.stop_button.disabled is False or wait_until(lambda: (view.flush(), not view.stop_button.disabled)[1])
    assert wait_until(lambda: (view.flush(), len(view.epoch_source.data["epoch"]) >= 1)[1])
    n_points = len(view.step_source.data["loss"])
    assert n_points >= 4  # the curve grows while the run trains
    view.stop()
    run.wait(30)
    assert run.status == "stopped"
    assert len(run.epoch_records) < 200
    view.flush()
    assert view.start_button.disabled is False
    assert "stopped" in view.status
    assert len(view.step_source.data["loss"]) == len(run.step_records)


def test_log_toggle_swaps_the_figure_and_thinning_keeps_every_kth_step(small_session):
    small_session.fit(epochs=2, lr=1e-2)
    view = LiveCurves(small_session, step_every=2)
    assert len(view.step_source.data["loss"]) == 4  # 8 steps, every 2nd
    assert view._loss_pane.fig is view.loss_fig[True]
    view.log_loss = False
    assert view._loss_pane.fig is view.loss_fig[False] and view._loss_pane.plot.object is view.loss_fig[False]


def test_plots_join_the_page_only_with_data(small_session):
    view = LiveCurves(small_session, epochs=1, lr=1e-2)
    assert view._loss_pane.plot is None and "Start training" in view._loss_pane.objects[0].object
    run = view.start()
    run.wait()
    view.flush()
    assert view._loss_pane.plot.object is view.loss_fig[True] and view._acc_pane.plot.object is view.acc_fig
    assert list(view._loss_pane.objects) == [view._loss_pane.plot]  # the hint made way for the figure


def test_human_baseline_is_drawn_on_the_accuracy_plot(small_session):
    view = LiveCurves(small_session)
    assert view.human_span.visible is False
    small_session.human_baseline = 0.95
    view.flush()
    assert view.human_span.visible and view.human_span.location == 0.95


def test_gap_verdict_reads_the_recipe():
    assert "overfitting" in gap_verdict(1.0, 0.80, 5, 10)
    assert "underfitting" in gap_verdict(0.6, 0.58, 6, 10)
    assert "agree" in gap_verdict(0.97, 0.96, 6, 10)


def test_panel_renders(small_session):
    view = LiveCurves(small_session)
    layout = view.__panel__()
    assert isinstance(layout, pn.Column)
    view.stop_updates()
