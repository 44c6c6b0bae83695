"""Fetching over HTTP and through the real Chromium, against pages served on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monitor.fetch import Capture, Fetcher, FetchError
from monitor.fetch.browser import BrowserChoice, BrowserUnavailable, choose_browser
from monitor.targets import Page, PageDecl
from tests.conftest import Site


def page(url: str, **fields) -> Page:
    return Page(PageDecl(id="p", url=url, **fields), "Test", (), Path("t.yaml"))


def fetch(
    url: str, mode: str = "http", *, timeout: float = 10, max_bytes: int = 5_000_000, **fields
) -> Capture:
    async def go() -> Capture:
        async with Fetcher(timeout=timeout, max_bytes=max_bytes) as fetcher:
            return await fetcher.fetch(page(url, **fields), mode)

    return asyncio.run(go())


def fetch_error(url: str, mode: str = "http", **options) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(url, mode, **options)
    return caught.value


def test_charset_from_header_and_from_meta(site: Site) -> None:
    body = "<p>Données personnelles</p>"
    header = site.raw(
        "/latin1", body.encode("latin-1"), content_type="text/html; charset=iso-8859-1"
    )
    meta = site.raw(
        "/meta", b'<meta charset="windows-1252">' + body.encode("cp1252"), content_type="text/html"
    )
    # A header charset that cannot decode the page gives way to the page's own declaration;
    # one that can wins over it, as in a browser.
    wrong = site.raw(
        "/wrong",
        b'<meta charset="windows-1252">' + body.encode("cp1252"),
        content_type="text/html; charset=utf-8",
    )
    both = site.raw(
        "/both",
        b'<meta charset="windows-1252">' + "<p>Ð</p>".encode(),
        content_type="text/html; charset=utf-8",
    )
    assert "Données" in fetch(header).html
    assert "Données" in fetch(meta).html
    assert "Données" in fetch(wrong).html
    assert "<p>Ð</p>" in fetch(both).html


def test_redirect_chain_is_recorded(site: Site) -> None:
    site.page("/c", "<p>final</p>")
    site.redirect("/b", "/c", 301)
    start = site.redirect("/a", site.url("/b"))
    capture = fetch(start)
    assert capture.final_url == site.url("/c")
    assert capture.redirects == (start, site.url("/b"))


def test_redirect_to_a_non_http_scheme_is_refused(site: Site) -> None:
    error = fetch_error(site.redirect("/r", "file:///etc/passwd"))
    assert error.kind == "redirect" and "non-HTTP" in error.reason


def test_size_cap(site: Site) -> None:
    big = site.page("/big", "<p>" + "x" * 200_000 + "</p>")
    error = fetch_error(big, max_bytes=100_000)
    assert error.kind == "too-large" and "larger than" in error.reason


def test_binary_is_not_a_page(site: Site) -> None:
    assert (
        fetch_error(site.raw("/img", b"\x89PNG\r\n\x1a\n\x00\x00", content_type="image/png")).kind
        == "content"
    )


def test_status_errors_carry_the_status(site: Site) -> None:
    site.page("/down", "<p>down</p>", status=503)
    error = fetch_error(site.url("/down"))
    assert (error.kind, error.status, error.reason) == (
        "status",
        503,
        "HTTP 503 Service Unavailable",
    )


def test_user_agent_names_the_monitor(site: Site) -> None:
    seen = {}

    def handler(request) -> None:
        seen["ua"] = request.headers["User-Agent"]
        request.send_response(200)
        request.send_header("Content-Length", "2")
        request.end_headers()
        request.wfile.write(b"ok")

    from tests.conftest import Route

    site.routes["/ua"] = Route(handler=handler)
    fetch(site.url("/ua"))
    assert seen["ua"].startswith("optout-monitor/")


def test_choose_browser_order(tmp_path: Path) -> None:
    exe = tmp_path / "chrome"
    exe.write_text("")
    assert (
        choose_browser(None, {"MONITOR_BROWSER": "ws://127.0.0.1:3000/x"}).endpoint
        == "ws://127.0.0.1:3000/x"
    )
    assert choose_browser(None, {"MONITOR_BROWSER": str(exe)}) == BrowserChoice(
        "MONITOR_BROWSER", str(exe)
    )
    assert choose_browser(str(exe), {}).source == "installed by Playwright"
    with pytest.raises(BrowserUnavailable, match="MONITOR_BROWSER=/nope: no such executable"):
        choose_browser(None, {"MONITOR_BROWSER": "/nope"})


def test_the_headless_shell_is_preferred_unless_a_window_is_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("chromium", "chromium-headless-shell"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert choose_browser(None, {}).executable == str(tmp_path / "chromium-headless-shell")
    assert choose_browser(None, {}, headless=False).executable == str(tmp_path / "chromium")


@pytest.mark.browser
def test_browser_renders_scripts_and_blocks_heavy_resources(site: Site) -> None:
    site.raw("/logo.png", b"\x89PNG", content_type="image/png")
    site.raw("/font.woff2", b"wOF2", content_type="font/woff2")
    url = site.page(
        "/app",
        """<html><head>
<style>@font-face { font-family: F; src: url(/font.woff2); } body { font-family: F; }</style></head>
<body><img src="/logo.png"><div id="out"></div>
<script>setTimeout(() => { document.getElementById('out').innerHTML = '<h1 id=done>Ready</h1>'; }, 100);</script>
</body></html>""",
    )
    capture = fetch(url, "browser", wait_for="#done")
    assert capture.mode == "browser" and "Ready" in capture.html
    assert "/logo.png" not in site.hits and "/font.woff2" not in site.hits


@pytest.mark.browser
def test_browser_errors_are_clear(site: Site) -> None:
    site.page("/missing-here", "<p>gone</p>", status=404)
    assert fetch_error(site.url("/missing-here"), "browser").reason == "HTTP 404 Not Found"
    never = site.page("/never", "<p>no marker</p>")
    error = fetch_error(never, "browser", timeout=2, wait_for="#marker")
    assert error.kind == "timeout"
    site.redirect("/x", "/y")
    site.redirect("/y", "/x")
    assert "redirect" in fetch_error(site.url("/x"), "browser").reason


@pytest.mark.browser
def test_one_browser_serves_many_checks(site: Site) -> None:
    urls = [site.page(f"/p{i}", f"<main><p>page {i}</p></main>") for i in range(6)]

    async def go() -> list[Capture]:
        async with Fetcher(timeout=10, browser_pages=3) as fetcher:
            captures = await asyncio.gather(*(fetcher.fetch(page(u), "browser") for u in urls))
            launched = fetcher.browser._browser
            assert launched is not None and len(launched.contexts) == 0  # contexts closed
            return captures

    captures = asyncio.run(go())
    assert [f"page {i}" in c.html for i, c in enumerate(captures)] == [True] * 6


@pytest.mark.browser
def test_the_browser_waits_for_late_content(site: Site) -> None:
    """A page has settled when no request is in flight and its DOM has been quiet: content
    that arrives by a slow request, in several steps, or on the page a script moves to, is
    there."""
    site.page("/late-data", "Retention is 30 days.", delay=0.8)
    late = site.page(
        "/late",
        "<main id='m'>Loading…</main><script>"
        "fetch('/late-data').then(r => r.text()).then(t => { m.textContent = t; });"
        "</script>",
    )
    steps = site.page(
        "/steps",
        "<main id='m'></main><script>let n = 0; const add = () => {"
        "  m.insertAdjacentHTML('beforeend', `<p>step ${++n}</p>`);"
        "  if (n < 5) setTimeout(add, 120); }; add();</script>",
    )
    assert "Retention is 30 days." in fetch(late, "browser").html
    assert "step 5" in fetch(steps, "browser").html
    site.page("/after", "<main><p>Moved here by a script.</p></main>")
    moving = site.page("/moving", "<script>setTimeout(() => location.href = '/after', 50)</script>")
    assert "Moved here by a script." in fetch(moving, "browser").html
