"""A store with real history for the web tests, and `monitor serve` run as a user runs it.

The history is made by real `monitor check-now` runs against pages served on 127.0.0.1,
changed between runs: a relevant change that drops an expected phrase, a minor one, a page
whose text holds markup meant to attack the review page, a page that starts failing, and a
page that is no longer declared when the site is served.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from click.testing import CliRunner

from monitor.cli import main
from tests.conftest import Site, help_article, write_targets

TOKEN = "web-test-token-5b1f"
HOSTILE = '<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2">'
EXPECTED = "new and resumed conversations"
GUIDE = "https://guides.example.org/acme-chat"


@dataclass(frozen=True)
class History:
    db_url: str
    targets_dir: Path
    training_changes: list[int]  # oldest first
    hostile_change: int
    undeclared_change: int


def _check_now(targets_dir: Path, db_url: str) -> dict[str, dict]:
    import json

    result = CliRunner().invoke(
        main, ["check-now", "--json", "--targets", str(targets_dir), "--db", db_url]
    )
    assert result.exit_code in (0, 1), result.output
    return {line["target"]: line for line in map(json.loads, result.stdout.splitlines())}


def _training(*paragraphs: str) -> str:
    return help_article("Is my chat used for training?", *paragraphs)


def build_history(site: Site, directory: Path, db_url: str) -> History:
    """Four check-now runs with the pages edited between them."""
    targets_dir = directory / "targets"
    training = site.page(
        "/acme/training",
        _training(
            "You can opt out of model training in Privacy Settings.",
            f"The setting applies to {EXPECTED}.",
            "Contact us by mail.",
        ),
    )
    hostile = site.page(
        "/acme/hostile",
        help_article("Community posts", "Posts are public.", HOSTILE.replace("<", "&lt;")),
    )
    ads = site.page("/globex/ads", help_article("Ads", "We show ads based on your settings."))
    old = site.page("/globex/old", help_article("Old page", "Your data is retained for a year."))
    acme_pages = [
        {
            "id": "acme-training",
            "url": training,
            "fetch": "http",
            "title": "Is my chat used for training?",
            "expect": [EXPECTED],
            "guide": GUIDE,
        },
        {"id": "acme-hostile", "url": hostile, "fetch": "http"},
    ]
    globex_pages = [
        {"id": "globex-ads", "url": ads, "fetch": "http", "title": "Ads settings"},
        {"id": "globex-old", "url": old, "fetch": "http"},
    ]
    write_targets(targets_dir, "Acme", acme_pages)
    write_targets(targets_dir, "Globex", globex_pages)
    _check_now(targets_dir, db_url)

    site.page(
        "/acme/training",
        _training(
            "You can turn off model training in Privacy Settings.",
            "The setting applies to new conversations only.",
            "Contact us by mail.",
        ),
    )
    site.page(
        "/acme/hostile",
        help_article(
            "Community posts",
            "Posts are public unless you opt out.",
            (HOSTILE + " again").replace("<", "&lt;"),
        ),
    )
    site.page("/globex/old", help_article("Old page", "Your data is retained for two years."))
    second = _check_now(targets_dir, db_url)

    site.page(
        "/acme/training",
        _training(
            "You can turn off model training in Privacy Settings.",
            "The setting applies to new conversations only.",
            "Write to us by mail.",
        ),
    )
    site.page("/globex/ads", "<h1>Server error</h1>", status=500)
    third = _check_now(targets_dir, db_url)
    assert third["globex-ads"]["status"] == "error"

    write_targets(targets_dir, "Globex", globex_pages[:1])  # globex-old is no longer declared
    upcoming = {"id": "acme-upcoming", "url": site.url("/acme/upcoming"), "fetch": "http"}
    write_targets(targets_dir, "Acme", [*acme_pages, upcoming])  # declared, never checked
    return History(
        db_url=db_url,
        targets_dir=targets_dir,
        training_changes=[
            second["acme-training"]["change_id"],
            third["acme-training"]["change_id"],
        ],
        hostile_change=second["acme-hostile"]["change_id"],
        undeclared_change=second["globex-old"]["change_id"],
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    base: str
    process: subprocess.Popen[str]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30)


@contextmanager
def serve(history: History, *args: str, token: str | None = TOKEN) -> Iterator[Server]:
    """`monitor serve` in a subprocess on a free port of 127.0.0.1, until the block ends."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["MONITOR_BASE_URL"] = f"http://127.0.0.1:{port}"
    if token:
        env["MONITOR_WEB_TOKEN"] = token
    command = [str(Path(sys.executable).parent / "monitor"), "serve", "--port", str(port)]
    command += ["--db", history.db_url, "--targets", str(history.targets_dir), *args]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"monitor serve exited: {process.stderr.read()}")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("monitor serve did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield Server(base, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()
