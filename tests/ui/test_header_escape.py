"""The page header shows the session's name as text: markup from a folder or a user never becomes HTML."""

import workbench as wb
from workbench.ui.app import session_label


def test_header_escapes_markup_in_the_session_name(digits, tmp_path):
    train, test = digits
    name = "<script>alert(1)</script><img src=x onerror=alert(2)> & co"
    s = wb.Session(wb.models.linear, train, test, seed=0, root=tmp_path / "runs", name=name)
    html = session_label(s).object
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; &amp; co" in html
    plain = wb.Session(wb.models.linear, train, test, seed=0, root=tmp_path / "runs", name="digits")
    assert session_label(plain).object.endswith(">session: digits · linear · seed 0 · cpu</span>")
