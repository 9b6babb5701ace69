"""Hardening of the command line: escaped file names, and ``serve`` off loopback only with a login or --no-auth."""

import http.cookiejar
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.browser.serving import ROOT, free_port, serve_env, served
from workbench.cli import printable
from workbench.errors import WorkbenchError
from workbench.ui.guard import ServeError, allowed_hosts, auth_options, host_name, is_loopback, websocket_origins

ESC_NAME = "evil\x1b]0;pwned\x07\x1b[2J\u202etxt.png"  # sets the terminal title, clears the screen, reverses text


# -- printable: what the CLI writes ------------------------------------------------------------------
def test_printable_keeps_ordinary_text():
    for text in ("digits-train: 1437 images\n", "a\tb", "café 日本 ± ✓", "C:\\data\\x.png", ""):
        assert printable(text) == text


def test_printable_escapes_terminal_codes_and_bidi():
    out = printable(ESC_NAME)
    assert out == "evil\\u001b]0;pwned\\u0007\\u001b[2J\\u202etxt.png"
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0x202A <= ord(c) <= 0x202E for c in out)
    assert printable("\x9b31m") == "\\u009b31m"  # the one-byte CSI
    assert printable("100%\r") == "100%\\u000d" and printable("100%\r", keep_cr=True) == "100%\r"
    assert json.loads(printable(json.dumps({"f": "a\u202eb\x9b"}, ensure_ascii=False))) == {"f": "a\u202eb\x9b"}


@pytest.fixture
def folder_with_escape_names(tmp_path, digits):
    """An image folder (two classes of real digits) whose class folder and one corrupt file carry terminal codes."""
    train, _ = digits
    root = tmp_path / "imgs"
    for label, cls in ((0, "zero"), (1, "one\x1b[31m")):
        (root / cls).mkdir(parents=True)
        idx = (train.Y == label).nonzero().flatten()[:12]
        for i in idx.tolist():
            pixels = (train.preprocessing.denormalize(train.X[i]).clamp(0, 1)[0].numpy() * 255).astype(np.uint8)
            Image.fromarray(pixels).resize((16, 16)).save(root / cls / f"{i}.png")
    (root / "zero" / ESC_NAME).write_bytes(b"not an image")
    return root


def _audit(path, *extra):
    return subprocess.run([sys.executable, "-m", "workbench.cli", "audit", str(path), "--no-progress", *extra],
                          capture_output=True, text=True, cwd=ROOT, env=serve_env(), timeout=600)


def test_audit_cli_never_prints_raw_escape_codes(folder_with_escape_names):
    done = _audit(folder_with_escape_names)
    assert done.returncode == 0, done.stderr
    for stream in (done.stdout, done.stderr):
        assert "\x1b" not in stream and "\x07" not in stream and "\u202e" not in stream
    assert "corrupt" in done.stdout
    # the file is named, visibly escaped (as \\x1b by the audit's own messages, or \\u001b by the CLI's output)
    assert "evil\\x1b]0;pwned\\x07" in done.stdout or "evil\\u001b]0;pwned\\u0007" in done.stdout


def test_audit_cli_json_stays_valid_with_escape_names(folder_with_escape_names):
    done = _audit(folder_with_escape_names, "--json")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    report = json.loads(done.stdout)
    corrupt = [i["detail"] for i in report["issues"] if i["issue"] == "corrupt"]
    # the finding names the file, its control characters written out visibly (never raw)
    assert len(corrupt) == 1 and corrupt[0].startswith("zero/evil") and "\x1b" not in corrupt[0]


# -- who may reach the app ---------------------------------------------------------------------------
def test_loopback_and_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("127.3.2.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    local = allowed_hosts("127.0.0.1")
    assert local == {"localhost", "127.0.0.1", "::1"}
    assert "evil.example" not in local and allowed_hosts("127.0.0.1", ["Lab.Example"]) >= {"lab.example"}
    assert host_name("LOCALHOST:5006") == "localhost" and host_name("[::1]:80") == "::1"
    assert host_name("http://evil.example:5006") == "evil.example" and host_name("") == ""
    assert websocket_origins({"localhost", "::1"}, 5006) == ["localhost:5006"]


def test_auth_choice_on_loopback_and_network(monkeypatch):
    assert auth_options("127.0.0.1", False, None, False) == ({}, None)
    with pytest.raises(ServeError) as e:
        auth_options("0.0.0.0", False, None, False)
    assert isinstance(e.value, WorkbenchError)
    assert all(flag in str(e.value) for flag in ("--token", "--password", "--no-auth"))
    opts, token = auth_options("0.0.0.0", True, None, False)
    assert opts["basic_auth"] == token and len(token) >= 32 and len(opts["cookie_secret"]) >= 40
    assert auth_options("0.0.0.0", True, None, False)[1] != token  # a fresh secret every start
    assert auth_options("0.0.0.0", False, "s3cret-pw", False)[0]["basic_auth"] == "s3cret-pw"
    monkeypatch.setenv("WORKBENCH_PASSWORD", "from-env")
    assert auth_options("10.0.0.2", False, "", False)[0]["basic_auth"] == "from-env"
    monkeypatch.delenv("WORKBENCH_PASSWORD")
    with pytest.raises(ServeError, match="WORKBENCH_PASSWORD"):
        auth_options("10.0.0.2", False, "", False)
    with pytest.raises(ServeError, match="not several"):
        auth_options("0.0.0.0", True, "pw", False)
    assert auth_options("0.0.0.0", False, None, True) == ({}, None)


def test_serve_on_the_network_without_auth_refuses_to_start():
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "serve", "--address", "0.0.0.0", "--port", str(port)],
                          capture_output=True, text=True, cwd=ROOT, env=serve_env(), timeout=300)
    assert done.returncode == 2
    assert all(flag in done.stderr for flag in ("--token", "--password", "--no-auth")), done.stderr
    assert "Recipe Workbench on" not in done.stdout  # nothing was served


def test_serve_no_auth_on_the_network_starts_with_a_warning(tmp_path):
    with served(["--address", "0.0.0.0", "--no-auth", "--root", str(tmp_path / "runs")], tmp_path / "serve.log") as (
            url, _, log):
        with urllib.request.urlopen(url, timeout=300) as r:
            assert r.status == 200
        text = log.read_text()
    assert "WARNING: --no-auth on 0.0.0.0" in text


def test_serve_with_a_token_asks_for_it(tmp_path):
    with served(["--address", "0.0.0.0", "--token", "--root", str(tmp_path / "runs")], tmp_path / "serve.log") as (
            url, _, log):
        token = re.search(r"this token \(shown only now\): (\S+)", log.read_text()).group(1)
        anonymous = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with anonymous.open(url, timeout=300) as r:  # redirected to the login page, no app
            assert "/login" in r.url and "<title>Recipe Workbench</title>" not in r.read().decode()
        wrong = urllib.parse.urlencode({"username": "me", "password": "guess"}).encode()
        with anonymous.open(url + "login", data=wrong, timeout=300) as r:
            assert "error" in r.url
        with anonymous.open(url, timeout=300) as r:
            assert "/login" in r.url
        right = urllib.parse.urlencode({"username": "me", "password": token}).encode()
        with anonymous.open(url + "login", data=right, timeout=300) as r:
            assert r.status == 200 and "/login" not in r.url
        with anonymous.open(url, timeout=300) as r:  # the cookie keeps the login
            assert r.status == 200 and "/login" not in r.url and "<title>Recipe Workbench</title>" in r.read().decode()


def test_serve_names_a_missing_script_before_serving(tmp_path):
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "serve", str(tmp_path / "nope.py"), "--port",
                           str(free_port())], capture_output=True, text=True, cwd=ROOT, env=serve_env(), timeout=300)
    assert done.returncode == 2 and "no such script" in done.stderr and "nope.py" in done.stderr
