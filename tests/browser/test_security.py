"""The served app's protections in a real browser: markup in names never runs, foreign host names are refused."""

import http.client
import re
import textwrap
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from tests.browser.conftest import ARTIFACTS, CHROMIUM, FLAGS, text, wait_for
from tests.browser.serving import served
from tests.browser.test_app import click_step

pytestmark = pytest.mark.browser

# each payload sets a flag when its markup runs; folder and file names cannot hold "/", so no closing tags there
FOLDER = "<img src=x onerror=window.__xss_folder=1>"
CLASSES = ("<svg onload=window.__xss_class=1>", "<img src=y onerror=window.__xss_class2=1>")
FILE = "<img src=z onerror=window.__xss_file=1>"
SESSION = "<script>window.__xss_session=1</script><img src=w onerror=window.__xss_session2=1>"
FLAGS_SET = "() => Object.keys(window).filter(k => k.startsWith('__xss'))"


def _image_folder(root, digits, per_class=20):
    """Real digit images as PNGs under class folders whose names (and one file name) are markup."""
    train, _ = digits
    for label, cls in enumerate(CLASSES):
        (root / cls).mkdir(parents=True)
        for k, i in enumerate((train.Y == label).nonzero().flatten()[:per_class].tolist()):
            pixels = (train.preprocessing.denormalize(train.X[i]).clamp(0, 1)[0].numpy() * 255).astype(np.uint8)
            name = f"{FILE}{k}.png" if k < 3 else f"{i}.png"
            Image.fromarray(pixels).resize((16, 16)).save(root / cls / name)
    return root


@pytest.fixture(scope="module")
def xss_server(tmp_path_factory, digits, chromium_path):
    """``workbench serve SCRIPT``: a session on an image folder whose folder, class and file names are markup."""
    base = tmp_path_factory.mktemp("xss")
    train = _image_folder(base / FOLDER, digits)
    test = _image_folder(base / "test" / FOLDER, digits, per_class=6)
    script = base / "session_script.py"
    script.write_text(textwrap.dedent(f"""
        import workbench as wb
        train = wb.datasets.image_folder({str(train)!r}, grayscale=True)
        test = wb.datasets.image_folder({str(test)!r}, grayscale=True)
        session = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root={str(base / 'runs')!r},
                             name=train.name + " " + {SESSION!r})
        """))
    ARTIFACTS.mkdir(exist_ok=True)
    with served([str(script)], ARTIFACTS / "serve-security.log") as (url, _, _):
        yield url


@pytest.fixture
def xss_page(browser, xss_server):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    pg = ctx.new_page()
    dialogs = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.goto(xss_server, timeout=120_000)
    pg.wait_for_selector(".wb-step-browse", timeout=120_000)
    pg.dialogs = dialogs
    yield pg
    ctx.close()


def test_markup_in_folder_class_file_and_session_names_never_runs(xss_page):
    page = xss_page
    header = page.locator(".wb-session").first
    wait_for(lambda: FOLDER in text(header), 60, header)
    assert SESSION in text(header)  # shown as the text it is
    click_step(page, "browse")
    info = page.locator(".wb-browser-info").first
    wait_for(lambda: "page 1/" in text(info), 60, info)
    options = page.locator("select option").all_text_contents()
    assert any(CLASSES[0] in o for o in options), options  # class names reach the page, as text
    click_step(page, "audit")
    page.locator(".wb-audit-run button").first.click()
    page.wait_for_selector(".wb-audit-summary", timeout=240_000)
    for key in ("batch", "checks", "train", "export", "browse"):
        click_step(page, key)
        page.wait_for_timeout(500)
    page.wait_for_timeout(1000)
    assert page.evaluate(FLAGS_SET) == [], "markup from a name ran in the page"
    assert page.dialogs == []
    assert page.locator("svg[onload], img[onerror]").count() == 0  # no element was built from a name


def test_foreign_host_names_are_refused(xss_server):
    port = urlsplit(xss_server).port

    def get(path, headers):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        return r.status, r.read().decode()

    assert get("/", {"Host": f"localhost:{port}"})[0] == 200
    status, body = get("/", {"Host": f"rebind.example:{port}"})
    assert status == 403 and "DNS rebinding" in body and "--allow-host rebind.example" in body
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    assert get("/ws", {**upgrade, "Host": f"127.0.0.1:{port}", "Origin": f"http://rebind.example:{port}"})[0] == 403
    assert get("/static/js/bokeh.min.js", {"Host": f"rebind.example:{port}"})[0] == 403


def test_dns_rebinding_page_gets_no_app(browser, xss_server):
    """Chromium resolves a foreign name to 127.0.0.1 (what a rebinding attacker arranges): the server refuses it."""
    port = urlsplit(xss_server).port
    rebinding = browser.browser_type.launch(executable_path=CHROMIUM, args=[
        *FLAGS, "--host-resolver-rules=MAP rebind.test 127.0.0.1"])
    try:
        page = rebinding.new_page()
        response = page.goto(f"http://rebind.test:{port}/", timeout=120_000)
        assert response.status == 403
        assert "DNS rebinding" in page.content()
        page.wait_for_timeout(1000)
        assert page.locator(".wb-session").count() == 0
        ok = page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)  # the same browser, the right name: served
        assert ok.status == 200
        page.wait_for_selector(".wb-session", timeout=120_000, state="attached")
        assert re.search(r"session: ", text(page.locator(".wb-session").first))
    finally:
        rebinding.close()
