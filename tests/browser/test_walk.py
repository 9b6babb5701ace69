"""The served app walked as a new user walks it, in Chromium at 1600x1000, in the order people click.

On the demo with defects: Browse → Audit → Batch → Checks → LR finder → Live curves → Instruments →
Diagnosis → Runs → Interpret → Ensembles → Export, training started from Live curves and again from
Instruments. Asserted all along: no console error, no Bokeh warning, no request to another host,
every plot on screen has drawn glyphs, nothing wider than the viewport at 1280 and 1600 px, and a
step's status turns done only once its work is done. On a folder of one's own images: the audit's
findings in the browser and the failed run's reason.
"""

import re
import time
from urllib.parse import urlparse

import pytest

from tests.browser.conftest import ARTIFACTS, shot, text, wait_for
from tests.browser.serving import served

pytestmark = pytest.mark.browser
MARKERS = {"browse": ".wb-browser-info", "audit": ".wb-audit-run", "batch": ".wb-batch", "checks": ".wb-run-checks",
           "tune": ".wb-lr-run", "train": ".wb-curves-controls", "instruments": ".wb-filter-caption",
           "diagnose": ".wb-diagnose-run", "runs": ".wb-runs-controls", "interpret": ".wb-interpret-run",
           "ensembles": ".wb-ensemble-run", "export": ".wb-export-intro"}

# every plot view on screen: its title and, per renderer, how many data points it holds
_PLOTS = """() => { const out = [];
  const visit = v => { if (!v || !v.model) return; const t = v.model.type;
    if ((t === 'Figure' || t === 'Plot') && v.el && v.el.isConnected && v.el.offsetParent !== null)
      out.push([v.model.title ? v.model.title.text : '', v.model.renderers.filter(r => r.data_source)
        .map(r => { const d = r.data_source.data; const k = Object.keys(d)[0]; return k ? d[k].length : 0; })]);
    for (const c of (v.child_views ? [...v.child_views] : [])) visit(c); };
  for (const r of Object.values(Bokeh.index)) visit(r); return out; }"""

# elements (shadow roots included) reaching past the right edge of the viewport; what a scrolling or
# clipping box holds inside it is that box's business, the box itself is checked
_OVERFLOW = """() => { const out = []; const W = document.documentElement.clientWidth;
  const visit = (n, clipped) => { for (const c of n.children || []) { const r = c.getBoundingClientRect();
      const cs = getComputedStyle(c);
      if (!clipped && r.width > 0 && r.height > 0 && r.right > W + 1 && cs.visibility !== 'hidden')
        out.push(`${c.tagName.toLowerCase()}.${String(c.className).slice(0, 60)} right=${Math.round(r.right)}`);
      const clip = clipped || cs.overflowX !== 'visible';
      if (c.shadowRoot) visit(c.shadowRoot, clip); visit(c, clip); } };
  visit(document.body, false); return out.slice(0, 8); }"""


# installed before the page's scripts: when BokehJS warns about ranges, note which plots had no range then
# (title and rows per data source), so a failure names the plot and not only the message
_RANGE_PROBE = """window.__wbRanges = []; const warn = console.warn.bind(console);
console.warn = (...args) => { const text = args.map(String).join(' ');
  if (text.includes('initial ranges') && window.Bokeh) { const bad = [];
    const visit = v => { if (!v || !v.model) return; const m = v.model;
      if ((m.type === 'Figure' || m.type === 'Plot') && [m.x_range.start, m.x_range.end, m.y_range.start,
          m.y_range.end].some(x => x == null || Number.isNaN(x)))
        bad.push((m.title ? m.title.text : '?') + ' ' + JSON.stringify(m.renderers.filter(r => r.data_source)
          .map(r => Object.values(r.data_source.data).map(c => c.length))));
      for (const c of (v.child_views ? [...v.child_views] : [])) visit(c); };
    for (const r of Object.values(Bokeh.index)) visit(r); window.__wbRanges.push(bad); }
  warn(...args); };"""


class Watch:
    """What the page says behind the user's back: console errors, Bokeh warnings, requests to other hosts."""

    def __init__(self, page, allowed_host="127.0.0.1"):
        self.page = page
        page.add_init_script(_RANGE_PROBE)
        self.errors, self.warnings, self.outside = [], [], []
        self.where = "start"  # the step open when a message came: the failure says where to look
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("request", lambda r: None if urlparse(r.url).hostname in (allowed_host, None) or
                r.url.startswith(("data:", "blob:")) else self.outside.append(r.url))

    def _console(self, msg):
        if msg.type == "error":
            self.errors.append(msg.text)
        elif msg.type == "warning" and "bokeh" in msg.text.lower():
            self.warnings.append(f"{self.where}: {msg.text}")

    def check(self, allow=()):
        """No request to another host (but the hosts in ``allow``), no console error, no Bokeh warning."""
        outside = [u for u in self.outside if urlparse(u).hostname not in allow]
        errors = [e for e in self.errors if not any(host in e for host in allow) and "ERR_NAME_NOT_RESOLVED" not in e
                  or not allow]
        problems = [f"requests to other hosts: {outside[:5]}"] if outside else []
        problems += [f"console errors: {errors[:5]}"] if errors else []
        steps = sorted({w.split(":")[0] for w in self.warnings})
        if self.warnings:
            try:
                ranges = self.page.evaluate("window.__wbRanges")
            except Exception as e:  # noqa: BLE001 - the page is gone: the warnings alone
                ranges = f"(not read: {e})"
            problems.append(f"{len(self.warnings)} Bokeh warnings in {steps}, e.g. {self.warnings[:3]}; "
                            f"plots without a range then: {ranges}")
        assert not problems, "\n".join(problems)


def open_step(page, key, tries=3, watch=None):
    if watch is not None:
        watch.where = key
    for _ in range(tries):
        page.locator(f".wb-step-{key} button").first.click(timeout=60_000)
        try:
            page.wait_for_selector(MARKERS[key], timeout=20_000, state="visible")
            return
        except Exception:  # noqa: BLE001 - the page was busy: click again
            continue
    raise AssertionError(f"step {key} did not open")


def status(page, key) -> str:
    """The status icon in front of a step's label in the stepper (○ not run, ✔ pass, ⚠ warn, ✖ fail)."""
    return text(page.locator(f".wb-step-{key} button").first).strip()[:1]


def wait_status(page, key, icons: str, timeout=30):
    """Wait until the step's icon is one of ``icons`` (the stepper redraws within a periodic tick)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if status(page, key) in icons and status(page, key):
                return
        except Exception:  # noqa: BLE001 - the button is being redrawn
            pass
        time.sleep(0.25)
    raise AssertionError(f"step {key}: status {status(page, key)!r}, expected one of {icons!r}")


def assert_plots_drawn(page, where, timeout=15):
    """Every plot on screen holds data (polled: a view's data may arrive on the document's next tick)."""
    deadline = time.monotonic() + timeout
    while True:
        plots = page.evaluate(_PLOTS)
        empty = [title for title, counts in plots if not any(counts)]
        if not empty:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{where}: plots without glyphs: {empty}")
        time.sleep(0.5)


def assert_fits(page, where):
    for width in (1280, 1600):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(600)
        wide = page.evaluate(_OVERFLOW)
        assert not wide, f"{where} at {width}px: wider than the viewport: {wide}"


def start_training(page, epochs: int) -> str:
    """Type the epochs, press Start, wait for a new run to complete; returns its id."""
    box = page.locator(".wb-curves-controls input").first
    box.fill(str(epochs))
    box.press("Enter")
    state = page.locator(".wb-curves-status").first
    before = re.search(r"run (\S+)", text(state))
    before = before.group(1) if before else None
    page.get_by_role("button", name=re.compile("Start training")).first.click()

    def new_run_done():
        m = re.search(rf"run (\S+) · completed · epoch {epochs}/{epochs}", text(state))
        return m and m.group(1) != before

    wait_for(new_run_done, 240, state)
    assert box.input_value() == str(epochs)  # the field keeps what was typed
    return re.search(r"run (\S+)", text(state)).group(1)


@pytest.fixture
def fresh_server(tmp_path, chromium_path):
    """The defect demo on a root of its own: the walk starts from nothing done (results live in the book on disk,
    so the shared server of the other browser tests would already show their audit and checks)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with served(["--defects", "--root", str(tmp_path / "runs")], ARTIFACTS / "serve-walk.log") as (url, _, _):
        yield url


def test_walk_the_defect_demo_in_order(browser, fresh_server):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(fresh_server, timeout=120_000)
    page.wait_for_selector(".wb-step-browse", timeout=120_000)

    open_step(page, "browse", watch=watch)
    info = page.locator(".wb-browser-info").first
    wait_for(lambda: "page 1/" in text(info), 30, info)
    assert_plots_drawn(page, "browse")
    assert_fits(page, "browse")
    shot(page, "step_browse.png")

    open_step(page, "audit", watch=watch)
    wait_status(page, "audit", "○")
    page.locator(".wb-audit-run button").first.click()
    page.wait_for_selector(".wb-audit-summary", timeout=240_000)
    wait_status(page, "audit", "⚠✔")
    assert_fits(page, "audit")
    shot(page, "step_audit.png")

    for key in ("batch", "checks"):
        open_step(page, key, watch=watch)
        assert_plots_drawn(page, key)
        assert_fits(page, key)
        if key == "batch":  # the checks' screenshot is test_app's (assets/checks.png)
            shot(page, "step_batch.png")
    wait_status(page, "checks", "○")  # nothing ran: the step is not done by being visited
    wait_status(page, "runs", "○")  # no finished run to put side by side yet

    open_step(page, "tune", watch=watch)
    wait_status(page, "tune", "○")
    page.locator(".wb-lr-controls input").nth(2).fill("40")  # a short sweep; the coarse test follows
    page.locator(".wb-lr-controls input").nth(2).press("Enter")
    page.locator(".wb-lr-run button").first.click()
    use = page.locator(".wb-lr-use button").first
    wait_for(lambda: use.is_enabled(), 240, page.locator(".wb-lr-message").first)
    wait_status(page, "tune", "✔")
    use.click()
    for i, value in enumerate(("2", "1")):  # a coarse search of 2 trials, 1 epoch each (B.2)
        page.locator(".wb-search-controls input").nth(i).fill(value)
        page.locator(".wb-search-controls input").nth(i).press("Enter")
    page.locator(".wb-search-run button").first.click()
    found = page.locator(".wb-search-status").first
    wait_for(lambda: "2 of 2 trials complete" in text(found), 240, found)
    assert_plots_drawn(page, "LR finder")
    assert_fits(page, "LR finder")
    shot(page, "step_tune.png")

    open_step(page, "train", watch=watch)  # (the search's trials are runs already: the step may show them as done)
    watch.where = "train: training"
    first = start_training(page, 2)
    wait_status(page, "train", "✔")
    assert_plots_drawn(page, "live curves")
    assert_fits(page, "live curves")
    shot(page, "step_train.png")

    open_step(page, "instruments", watch=watch)  # after Live curves: Start must still train (it once did nothing)
    second = start_training(page, 2)
    assert second != first
    score = page.locator(".wb-wiggle-score").first
    wait_for(lambda: re.search(r"\d\.\d{4}", text(score)), 30, score)
    assert_plots_drawn(page, "instruments")
    assert_fits(page, "instruments")
    shot(page, "step_instruments.png")

    open_step(page, "diagnose", watch=watch)
    page.locator(".wb-diagnose-run button").first.click()
    page.wait_for_selector(".wb-diagnosis-head", timeout=60_000)
    # done once the diagnosis exists; its icon is the worst finding's (an update ratio above the band is a ✖)
    wait_status(page, "diagnose", "✔⚠✖")
    assert_plots_drawn(page, "diagnosis")
    assert_fits(page, "diagnosis")
    shot(page, "step_diagnose.png")

    open_step(page, "runs", watch=watch)
    wait_status(page, "runs", "✔")  # two search trials and two runs: side by side is possible and shown
    page.locator(".wb-runs-refresh button").first.click()
    page.wait_for_timeout(1000)
    assert_plots_drawn(page, "runs")
    assert_fits(page, "runs")
    shot(page, "step_runs.png")

    open_step(page, "interpret", watch=watch)
    wait_status(page, "interpret", "○")
    page.locator(".wb-interpret-run button").first.click()
    summary = page.locator(".wb-interpret-summary").first
    wait_for(lambda: "accuracy" in text(summary), 60, summary)
    assert second in text(summary)
    wait_status(page, "interpret", "✔")  # recorded in the book once the matrix is drawn
    assert_plots_drawn(page, "interpret")
    assert_fits(page, "interpret")
    shot(page, "step_interpret.png")

    open_step(page, "ensembles", watch=watch)
    wait_status(page, "ensembles", "○")
    page.locator(".wb-ensemble-run button").first.click()
    done = page.locator(".wb-ensemble-summary").first
    wait_for(lambda: "ensemble of" in text(done), 240, done)
    assert_plots_drawn(page, "ensembles")
    assert_fits(page, "ensembles")
    shot(page, "step_ensembles.png")

    open_step(page, "export", watch=watch)
    wait_status(page, "ensembles", "✔")  # the stepper is redrawn at the latest on the next step
    assert_fits(page, "export")
    shot(page, "step_export.png")
    # no request to another host (the template's web font is dropped, see test_the_page_asks_no_other_host),
    # no console error and not one Bokeh warning (a walk logged about 190 before the plots waited for data)
    watch.check()
    ctx.close()



def test_the_page_asks_no_other_host(browser, server):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(server, timeout=120_000)
    page.wait_for_selector(".wb-step-browse", timeout=120_000)
    page.wait_for_timeout(2000)
    ctx.close()
    assert not watch.outside, watch.outside


SCRIPT = """import workbench as wb
from functools import partial
train = wb.datasets.image_folder({train!r}, size=16, normalize=False)
test = wb.datasets.image_folder({test!r}, size=16, normalize=False)
session = wb.Session(partial(wb.models.tiny_cnn, num_classes=3, in_channels=3), train, test, seed=0,
                     root={runs!r}, name="my images")
"""


@pytest.fixture
def folder_server(tmp_path, chromium_path):
    """``workbench serve script.py`` on a folder with a truncated PNG, a duplicate pair and a train/test leak."""
    from tests.ui.folders import digits_folder

    paths = digits_folder(tmp_path / "images", damaged=False)  # truncated once the page's session exists
    script = tmp_path / "my_images.py"
    script.write_text(SCRIPT.format(train=str(paths["train"]), test=str(paths["test"]), runs=str(tmp_path / "runs")))
    with served([str(script)], ARTIFACTS / "serve-folder.log") as (url, _, _):
        yield url, paths["damage"]


def test_a_folder_of_my_images_shows_its_findings_and_the_failed_runs_reason(browser, folder_server):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    watch = Watch(page)
    url, damage = folder_server
    page.goto(url, timeout=120_000)
    page.wait_for_selector(".wb-step-browse", timeout=120_000)
    damage()  # a file of the folder goes bad on disk while the app runs
    open_step(page, "audit", watch=watch)
    page.locator(".wb-audit-run button").first.click()
    summary = page.locator(".wb-audit-summary").first
    summary.wait_for(timeout=120_000)
    shown = text(summary)
    assert all(k in shown for k in ("corrupt", "exact_duplicate", "train_test_leak")), shown
    open_step(page, "browse", watch=watch)
    info = page.locator(".wb-browser-info").first
    for issue, expected in (("corrupt", "1 examples"), ("exact_duplicate", "2 examples in 1 sets"),
                            ("train_test_leak", "2 examples in 1 sets")):
        page.locator(".wb-issue-filter select").first.select_option(issue)
        wait_for(lambda e=expected: e in text(info).replace("*", ""), 30, info)
        assert_plots_drawn(page, issue)
    page.locator(".wb-issue-filter select").first.select_option("corrupt")
    wait_for(lambda: "1 examples" in text(info).replace("*", ""), 30, info)
    shot(page, "my_images_corrupt.png")
    open_step(page, "train", watch=watch)
    page.get_by_role("button", name=re.compile("Start training")).first.click()
    failure = page.locator(".wb-curves-failure").first
    failure.wait_for(timeout=120_000)
    assert "failed" in text(failure) and "truncated.png" in text(failure)
    toast = page.locator(".notyf__toast--error").filter(has_text="truncated.png").first
    toast.wait_for(timeout=30_000)
    shot(page, "my_images_failed_run.png")
    # the failed run's reason is on the page on purpose; the browser's own errors are not
    watch.errors = [e for e in watch.errors if "truncated" not in e]
    watch.check()
    ctx.close()
