"""An unchanged page costs little: conditional requests (ETag, Last-Modified) and, when the
raw page is byte for byte the last one, no extraction; neither may hide a real change."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor import check as check_module
from monitor.cli import main
from monitor.extract import decompress, source
from monitor.store import Store
from tests.conftest import Route, Site, help_article, write_targets

SETTING = "Turn off Help improve our models in Privacy Settings."


class Validating:
    """A page that honours If-None-Match / If-Modified-Since and logs what it was sent."""

    def __init__(self, html: str, etag: str, status: int = 200) -> None:
        self.html, self.etag, self.status = html, etag, status
        self.seen: list[dict[str, str | None]] = []

    def __call__(self, request: BaseHTTPRequestHandler) -> None:
        sent = {
            "etag": request.headers.get("If-None-Match"),
            "since": request.headers.get("If-Modified-Since"),
        }
        self.seen.append(sent)
        body = self.html.encode()
        status = self.status
        if status == 200 and sent["etag"] == self.etag:
            status, body = 304, b""
        request.send_response(status)
        request.send_header("ETag", self.etag)
        request.send_header("Last-Modified", "Tue, 03 Nov 2026 10:00:00 GMT")
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


def check(targets: Path, db: str) -> dict:
    result = CliRunner().invoke(
        main, ["check-now", "--json", "--retry-delay", "0", "--targets", str(targets), "--db", db]
    )
    return json.loads(result.stdout.splitlines()[0])


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_CONFIRM_DELAY", "0")


def test_a_page_the_server_says_is_unchanged_is_not_downloaded_again(
    site: Site, targets_dir: Path, db_url: str, quick: None
) -> None:
    page = Validating(help_article("Training", SETTING), '"v1"')
    site.routes["/p"] = Route(handler=page)
    write_targets(targets_dir, "Example", [{"id": "p", "url": site.url("/p"), "fetch": "http"}])

    assert check(targets_dir, db_url)["status"] == "first"
    assert page.seen[-1] == {"etag": None, "since": None}
    assert check(targets_dir, db_url)["status"] == "unchanged"
    assert page.seen[-1] == {"etag": '"v1"', "since": "Tue, 03 Nov 2026 10:00:00 GMT"}
    store = Store(db_url)
    assert [c.status for c in store.checks("p")] == [304, 200]

    page.html, page.etag = help_article("Training", SETTING.replace("off", "on")), '"v2"'
    line = check(targets_dir, db_url)
    assert line["status"] == "changed"
    assert page.seen[-2]["etag"] == '"v1"'  # asked conditionally, got the new page
    assert "on" in (store.version(store.page_state("p").version_id).text or "")


def test_answering_again_with_not_modified_is_a_recovery_and_keeps_the_raw_page(
    site: Site, targets_dir: Path, sqlite_url: str, quick: None
) -> None:
    html = help_article("Training", SETTING)
    page = Validating(html, '"v1"')
    site.routes["/p"] = Route(handler=page)
    write_targets(targets_dir, "Example", [{"id": "p", "url": site.url("/p"), "fetch": "http"}])
    assert check(targets_dir, sqlite_url)["status"] == "first"

    page.status = 503
    assert check(targets_dir, sqlite_url)["status"] == "error"
    page.status = 200
    line = check(targets_dir, sqlite_url)
    assert (line["status"], line["severity"]) == ("changed", "minor")
    assert page.seen[-1]["etag"] == '"v1"'
    store = Store(sqlite_url)
    kinds = [change.kind for change in store.changes("p")]
    assert sorted(kinds) == ["failure", "recovery"]
    raw = store.capture_of(store.page_state("p").version_id or 0)
    assert raw is not None and decompress(raw).encode() == source(html)


def test_the_same_raw_page_is_not_read_again_but_a_changed_one_is(
    site: Site, targets_dir: Path, sqlite_url: str, quick: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    real_extract = check_module.extract

    def counting_extract(html: str, **rules: object) -> object:
        reads.append(html)
        return real_extract(html, **rules)  # type: ignore[arg-type]

    monkeypatch.setattr(check_module, "extract", counting_extract)
    url = site.page("/p", help_article("Training", SETTING))  # no validators sent
    write_targets(targets_dir, "Example", [{"id": "p", "url": url, "fetch": "http"}])
    assert check(targets_dir, sqlite_url)["status"] == "first"
    assert check(targets_dir, sqlite_url)["status"] == "unchanged"
    assert len(reads) == 1

    # Different bytes, same text: read again, still unchanged.
    site.page("/p", help_article("Training", SETTING) + "<!-- build 2 -->")
    assert check(targets_dir, sqlite_url)["status"] == "unchanged"
    assert len(reads) == 2
    # Only a script's body differs: extraction would never read it, so it is not read again.
    site.page("/p", help_article("Training", SETTING) + "<!-- build 2 --><script>b=3</script>")
    assert check(targets_dir, sqlite_url)["status"] == "unchanged"
    assert len(reads) == 3
    site.page("/p", help_article("Training", SETTING) + "<!-- build 2 --><script>b=4</script>")
    assert check(targets_dir, sqlite_url)["status"] == "unchanged"
    assert len(reads) == 3
    site.page("/p", help_article("Training", SETTING.replace("off", "on")))
    assert check(targets_dir, sqlite_url)["status"] == "changed"


def test_a_rules_change_forgets_the_last_fetch(
    site: Site, targets_dir: Path, sqlite_url: str, quick: None
) -> None:
    page = Validating(help_article("Training", SETTING, extra="<p class='promo'>New!</p>"), '"v1"')
    site.routes["/p"] = Route(handler=page)
    declared = {"id": "p", "url": site.url("/p"), "fetch": "http"}
    write_targets(targets_dir, "Example", [declared])
    check(targets_dir, sqlite_url)
    state = Store(sqlite_url).page_state("p")
    assert (state.etag, state.raw_hash is not None) == ('"v1"', True)

    write_targets(targets_dir, "Example", [{**declared, "remove": [".promo"]}])
    assert check(targets_dir, sqlite_url)["status"] == "unchanged"
    assert page.seen[-1]["etag"] is None  # the page is read in full under the new rules
    assert "New!" not in (Store(sqlite_url).page_state("p").text or "")
