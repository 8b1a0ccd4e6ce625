"""The headless-Chromium check itself: it must see uncaught exceptions, console.error, failed loads and images that do
not decode (otherwise "the report loads without console errors" would be a test that cannot fail)."""

from __future__ import annotations

import base64
import io

import pytest
from matplotlib.figure import Figure

from repdyn.analysis.browser import find_chromium, render_page

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="no chromium on PATH: run launch/install_chromium.sh (Debian package chromium)"
)


def _png_b64() -> str:
    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1], [0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def test_clean_page_with_embedded_png(tmp_path):
    page = tmp_path / "ok.html"
    page.write_text(f'<html><head><title>t</title></head><body><img src="data:image/png;base64,{_png_b64()}"></body>')
    res = render_page(page, tmp_path / "ok.png", width=400, height=300)
    assert res.ok and res.console_errors == [] and (res.n_images, res.broken_images) == (1, 0)
    assert res.title == "t"
    assert res.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_are_seen(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        "<html><body><img src='missing.png'><img src='data:image/png;base64,AAAA'>"
        "<script>console.error('boom'); notDefined();</script></body></html>"
    )
    res = render_page(page, None, width=400, height=300)
    assert not res.ok
    text = "\n".join(res.console_errors)
    assert "Uncaught ReferenceError" in text and "console.error: boom" in text and "missing.png" in text
    assert (res.n_images, res.broken_images) == (2, 2)


def test_missing_page_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="html_path"):
        render_page(tmp_path / "nope.html")
