"""RecipeWizard and the app shell: steps, statuses from the session, the "Next" card, errors as notifications."""

import panel as pn

from workbench.ui import create_app
from workbench.ui.common import ERRORS, guarded
from workbench.ui.human import HumanBaseline
from workbench.ui.wizard import RecipeWizard, available_steps, next_action, step_status
from workbench.verdict import Verdict


def test_every_available_step_opens_and_shows_its_views(small_session):
    wiz = RecipeWizard(small_session)
    keys = [s.key for s in available_steps()]
    assert {"browse", "batch", "train", "export"} <= set(keys)
    for key in keys:
        wiz.go(key)
        assert wiz.step == key
        title = wiz._content[0].object
        assert title.startswith("## ")
    assert not ERRORS.messages, ERRORS.messages
    assert {"DataBrowser", "BatchViewer", "LiveCurves", "ExportView"} <= set(wiz.views)


def test_statuses_turn_green_only_when_the_step_is_done(small_session):
    s = small_session
    assert step_status(s, "checks") == "not run" and step_status(s, "train") == "not run"
    quick = ["architecture", "init_loss", "regularization"]
    s.check("init_loss")
    assert step_status(s, "checks", quick) == "partial"  # one of three selected checks: not done yet
    assert step_status(s, "checks") == "partial"  # nor of every applicable check
    for name in quick[::2]:
        s.check(name)
    assert step_status(s, "checks", quick) == "pass"
    s.results["input_independent"] = Verdict("input_independent", "fail", {"gap": 0.0}, 0.5,
                                             "the model does not use its input", "II.7")
    assert step_status(s, "checks", quick) == "fail"  # a failure shows at once, done or not
    key, text = next_action(s)
    assert key == "checks" and "input_independent" in text and "II.7" in text
    del s.results["input_independent"]

    s.fit(epochs=1, tags={"study": "coarse", "trial": 0})  # what a search trial is: not the person's run
    assert step_status(s, "train") == "not run"
    s.fit(epochs=1)
    assert step_status(s, "train") == "pass"


def test_next_card_walks_the_steps_in_order_and_never_skips_one(small_session):
    s = small_session
    wiz = RecipeWizard(s)
    keys = [st.key for st in wiz.steps]
    assert next_action(s, wiz.steps)[0] == keys[0] == "browse"
    human = HumanBaseline(s, n=4)
    for _ in range(2):
        human.answer(int(s.split("test")[human.current][1]))
    assert step_status(s, "browse") == "partial" and s.human_baseline is None  # 2 of 4 answers: no baseline
    assert next_action(s, wiz.steps)[0] == "browse"
    for _ in range(2):
        human.answer((int(s.split("test")[human.current][1]) + 1) % 10)  # two wrong answers
    assert step_status(s, "browse") == "pass" and s.human_baseline == 0.5
    assert s.book.get("human_baseline")["n"] == 4
    assert next_action(s, wiz.steps)[0] == keys[1]  # the next step, not a later one
def test_wizard_redraws_when_a_session_event_arrives(small_session):
    wiz = RecipeWizard(small_session)
    before = wiz.refresh_counter
    small_session.fit(epochs=1)  # emits run_end from the training code; the wizard only marks itself dirty
    assert wiz._dirty
    wiz.tick()
    assert wiz.refresh_counter == before + 1
    labels = [b.label for b in wiz._stepper if isinstance(b, pn.widgets.Button)]
    assert any(lbl.startswith("✔ Live curves") for lbl in labels)


def test_an_error_in_a_callback_is_shown_and_the_app_keeps_working(small_session):
    app = create_app(small_session)
    wiz = app.wizard

    @guarded
    def explode():
        raise RuntimeError("boom")

    assert explode() is None
    assert any("boom" in m for m in ERRORS.messages)
    # a bad action on a real view: marking with nothing selected names the problem
    wiz.go("browse")
    browser = wiz.views["DataBrowser"]
    browser.mark_exclude()
    assert any("select examples" in m for m in ERRORS.messages)
    # ... and the page still answers
    wiz.go("train")
    assert wiz.step == "train"
    browser.select([0, 1])
    browser.mark_exclude()
    assert len(browser.export_marks()) == 2


def test_app_is_a_template_with_the_stepper_in_the_sidebar(small_session):
    app = create_app(small_session)
    assert isinstance(app, pn.template.FastListTemplate)
    assert pn.config.notifications
    assert app.sidebar[0] is app.wizard.stepper()


def test_a_reloaded_page_shows_the_same_results(small_session, make_small_session):
    """A page reload builds a new Session on the same root and data: the book gives it every result back."""
    import workbench as wb

    s = small_session
    for name in ("architecture", "init_loss", "regularization"):
        s.check(name)
    found = s.lr_find(steps=20, coarse=None)
    s.fit(epochs=1)
    reloaded = make_small_session(wb.models.mlp)
    assert reloaded is not s and reloaded.book.directory == s.book.directory
    app = create_app(reloaded)
    wiz = app.wizard
    assert step_status(reloaded, "checks", ["architecture", "init_loss", "regularization"]) == "pass"
    assert step_status(reloaded, "tune") == "pass" and step_status(reloaded, "train") == "pass"
    wiz.go("tune")
    tune = wiz.views["TuneView"]
    assert tune.result.suggestion == found.suggestion and len(tune.curve_source.data["lr"]) == len(found.curve)
    wiz.go("checks")
    cards = " ".join(c[0].object for c in wiz.views["ChecksPanel"]._cards)
    assert all(f"wb-check-{n}" in cards for n in ("architecture", "init_loss", "regularization"))
