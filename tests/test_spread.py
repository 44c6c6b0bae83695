"""`check-now` sharing its pages among processes: run as a user runs it (a forked helper needs
a process without threads, which a test runner is not), against pages served on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from monitor.spread import process_count
from monitor.store import Store
from monitor.targets import load_targets
from tests.conftest import MONITOR, Route, Site, help_article, write_targets

SCRIPTED = """<!doctype html><html><body><div id="app"></div>
<noscript>You need to enable JavaScript to run this app.</noscript>
<script>
document.getElementById('app').innerHTML =
  '<main><h1>Data Controls</h1><p>Page {n}: improve the model, on by default.</p></main>';
</script></body></html>"""


def check_now(targets_dir: Path, db: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MONITOR, "-vv", "check-now", "--json", "--targets", str(targets_dir), "--db", db, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[dict[str, dict], str]:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    by_page = {line["target"]: line for line in lines}
    assert len(by_page) == len(lines), "a page was reported twice"
    return by_page, stderr


def checks_per_page(db: str) -> dict[str, int]:
    store = Store(db)
    try:
        return {page.id: store.count_checks(page.id) for page in store.pages()}
    finally:
        store.close()


@pytest.mark.browser
def test_pages_shared_among_processes_and_one_browser(
    site: Site, targets_dir: Path, db_url: str
) -> None:
    declared = [
        {
            "id": f"plain-{n}",
            "url": site.page(f"/plain/{n}", help_article(f"Plain {n}", f"Opt out, step {n}.")),
            "fetch": "http",
        }
        for n in range(10)
    ]
    # Auto pages built by scripts: whichever process checks them, the main one renders them.
    declared += [
        {"id": f"app-{n}", "url": site.page(f"/app/{n}", SCRIPTED.format(n=n)), "select": "main"}
        for n in range(2)
    ]
    write_targets(targets_dir, "Spread", declared)

    first, stderr = finish(check_now(targets_dir, db_url, "--processes", "2"))
    assert {line["status"] for line in first.values()} == {"first"}
    assert set(first) == {page["id"] for page in declared}
    assert {first[f"app-{n}"]["fetch"] for n in range(2)} == {"browser"}
    helpers = re.search(r"in helper processes (\d+)", stderr)
    assert helpers, stderr
    assert f"for helper process {helpers.group(1)}" in stderr  # an app page came from it
    assert stderr.count("browser: ") == 1  # one browser, in the main process
    assert set(checks_per_page(db_url).values()) == {1}

    again, _ = finish(check_now(targets_dir, db_url, "--processes", "2"))
    assert {line["status"] for line in again.values()} == {"unchanged"}
    store = Store(db_url)
    try:
        text = store.page_state("app-1").text or ""
    finally:
        store.close()
    assert "Page 1: improve the model, on by default." in text


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_helper_that_dies_leaves_its_pages_to_the_main_process(
    site: Site, targets_dir: Path, sqlite_url: str
) -> None:
    requested, release = threading.Event(), threading.Event()

    def hang_once(handler: BaseHTTPRequestHandler) -> None:
        """The first request waits until the test has killed the helper that made it."""
        body = help_article("Slow", "We keep chats for 30 days.").encode()
        if not requested.is_set():
            requested.set()
            release.wait(30)
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    declared = [
        {"id": f"p-{n}", "url": site.page(f"/p/{n}", help_article(f"P{n}", f"Step {n}."))}
        for n in range(6)
    ]
    declared[1]["url"] = site.url("/slow")  # the second page goes to the helper
    site.routes["/slow"] = Route(handler=hang_once)
    write_targets(targets_dir, "Dying", declared)

    process = check_now(targets_dir, sqlite_url, "--processes", "2", "--concurrency", "1")
    try:
        assert requested.wait(60), "the slow page was never requested"
        helpers = children(process.pid)
        assert len(helpers) == 1
        os.kill(helpers[0], signal.SIGKILL)
        time.sleep(0.2)
    finally:
        release.set()
    lines, stderr = finish(process)
    assert "ended (exit status -9) before checking" in stderr
    assert {line["status"] for line in lines.values()} == {"first"}
    assert set(lines) == {page["id"] for page in declared}
    assert all(count >= 1 for count in checks_per_page(sqlite_url).values())


def test_how_many_processes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_targets(
        tmp_path,
        "Count",
        [{"id": f"h-{n}", "url": f"http://127.0.0.1/h/{n}", "fetch": "http"} for n in range(250)]
        + [
            {"id": f"b-{n}", "url": f"http://127.0.0.1/b/{n}", "fetch": "browser"}
            for n in range(300)
        ],
    )
    pages = load_targets(tmp_path)
    plain = [page for page in pages if page.decl.fetch == "http"]
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert process_count(plain, None) == 2  # one per 100 pages that need no browser
    assert process_count(pages, None) == 2  # browser pages stay in the main process
    assert process_count(plain[:199], None) == 1
    assert process_count(plain * 4, None) == 8  # two per core
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2})
    assert process_count(plain * 4, None) == 6
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)))
    assert process_count(plain * 4, None) == 8  # MAX_PROCESSES
    assert process_count(pages, 3) == 3
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    assert process_count(pages, 3) == 1  # a fork would copy none of the running threads
