"""Hostile and broken pages end as failed checks with a clear reason, within their limits."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from monitor.fetch import Capture, Fetcher, FetchError
from tests.conftest import Route, Site
from tests.test_fetch import page


@pytest.fixture
def raw_server() -> Iterator[callable]:
    """A TCP server on 127.0.0.1 whose behaviour per connection is given by the test."""
    servers: list[socket.socket] = []

    def start(behaviour) -> str:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        servers.append(listener)

        def accept() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=behaviour, args=(connection,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}/"

    yield start
    for listener in servers:
        listener.close()


def attempt(
    url: str, mode: str = "http", *, timeout: float = 2, **options
) -> tuple[Capture | FetchError, float]:
    async def go() -> Capture:
        async with Fetcher(timeout=timeout, **options) as fetcher:
            return await fetcher.fetch(page(url), mode)

    started = time.monotonic()
    try:
        return asyncio.run(go()), time.monotonic() - started
    except FetchError as error:
        return error, time.monotonic() - started


def test_server_that_never_answers(raw_server) -> None:
    url = raw_server(lambda connection: time.sleep(30))
    error, took = attempt(url, timeout=1.5)
    assert isinstance(error, FetchError) and error.kind == "timeout"
    assert took < 4


def test_server_that_drips_one_byte_at_a_time(raw_server) -> None:
    def drip(connection: socket.socket) -> None:
        connection.recv(4096)
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n"
        )
        for _ in range(200):
            try:
                connection.sendall(b"x")
            except OSError:
                return
            time.sleep(0.1)

    error, took = attempt(raw_server(drip), timeout=1.5)
    assert isinstance(error, FetchError) and "timed out after 1.5s" in error.reason
    assert took < 4


def test_connection_reset(raw_server) -> None:
    def reset(connection: socket.socket) -> None:
        connection.recv(4096)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()

    error, _ = attempt(raw_server(reset))
    assert isinstance(error, FetchError) and error.kind == "network"
    assert "127.0.0.1" in error.reason


def test_unavailable_with_retry_after(site: Site) -> None:
    url = site.page("/busy", "<p>busy</p>", status=503, headers={"Retry-After": "120"})
    error, _ = attempt(url)
    assert isinstance(error, FetchError) and error.status == 503
    assert error.reason == "HTTP 503 Service Unavailable (retry after 120 s)"


def test_fifty_megabytes_are_refused_early(site: Site) -> None:
    def flood(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        request.end_headers()  # no length: the size is only known by reading
        chunk = b"<p>" + b"a" * 65_536 + b"</p>"
        try:
            for _ in range(50 * 16):
                request.wfile.write(chunk)
        except OSError:
            pass

    site.routes["/flood"] = Route(handler=flood)
    error, took = attempt(site.url("/flood"), timeout=20)
    assert isinstance(error, FetchError) and error.kind == "too-large"
    assert took < 10


def test_invalid_utf8_and_wrong_charset_still_give_text(site: Site) -> None:
    bad = site.raw(
        "/bad", b"<p>caf\xe9 \xff\xfe opt out</p>", content_type="text/html; charset=utf-8"
    )
    wrong = site.raw(
        "/wrong", "<p>Données</p>".encode("utf-16"), content_type="text/html; charset=utf-8"
    )
    capture, _ = attempt(bad)
    assert isinstance(capture, Capture) and "opt out" in capture.html
    result, _ = attempt(wrong)
    assert isinstance(
        result, (Capture, FetchError)
    )  # decoded with replacements or refused as binary


@pytest.mark.browser
def test_hostile_scripts_in_the_browser(site: Site) -> None:
    site.page(
        "/dialogs",
        "<main><p>Dialogs dismissed.</p></main>"
        "<script>alert('a'); confirm('b'); prompt('c');</script>",
    )
    site.page("/loop", "<main><p>never</p></main><script>while (true) {}</script>")
    site.raw("/file.zip", b"PK\x03\x04zip", content_type="application/zip")
    site.page(
        "/download",
        "<main><p>Download started.</p></main><script>location.href = '/file.zip';</script>",
    )
    site.page("/fine", "<main><p>Still healthy.</p></main>")

    async def go() -> dict[str, Capture | FetchError]:
        results: dict[str, Capture | FetchError] = {}
        async with Fetcher(timeout=3) as fetcher:
            for path in ("/dialogs", "/loop", "/download", "/fine"):
                try:
                    results[path] = await fetcher.fetch(page(site.url(path)), "browser")
                except FetchError as error:
                    results[path] = error
        return results

    results = asyncio.run(go())
    assert (
        isinstance(results["/dialogs"], Capture)
        and "Dialogs dismissed." in results["/dialogs"].html
    )
    assert isinstance(results["/loop"], FetchError) and results["/loop"].kind == "timeout"
    assert isinstance(results["/fine"], Capture) and "Still healthy." in results["/fine"].html
    download = results["/download"]
    assert isinstance(download, FetchError) or "Download started." in download.html


@pytest.mark.browser
def test_browser_reads_no_local_files_and_keeps_no_state(site: Site) -> None:
    site.page(
        "/peek",
        "<main><p>Looking.</p><iframe src='file:///etc/passwd'></iframe></main>"
        "<script>setTimeout(() => { location.href = 'file:///etc/passwd'; }, 10);</script>",
    )
    seen: list[str] = []

    def remember(request: BaseHTTPRequestHandler) -> None:
        seen.append(request.headers.get("Cookie", ""))
        body = b"<main><p>Cookie set.</p></main><script>document.cookie = 'tracker=1; max-age=3600';</script>"
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        request.send_header("Set-Cookie", "session=abc; Max-Age=3600")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    site.routes["/state"] = Route(handler=remember)

    async def go() -> Capture | FetchError:
        async with Fetcher(timeout=5) as fetcher:
            for _ in range(2):
                await fetcher.fetch(page(site.url("/state")), "browser")
            try:
                return await fetcher.fetch(page(site.url("/peek")), "browser")
            except FetchError as error:
                return error

    peek = asyncio.run(go())
    assert seen == ["", ""]  # the second check carried no cookie from the first
    assert isinstance(peek, FetchError) or "root:" not in peek.html
