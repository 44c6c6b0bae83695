"""The whole loop offline: serve a help page on 127.0.0.1, check it, change it, show the change."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from monitor.check import Checker, CheckResult
from monitor.fetch import Fetcher
from monitor.store import Store
from monitor.targets import load_targets

ARTICLE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Can I stop my chats being used for training?</title></head><body>
<nav><a href="/">Example AI Help Center</a></nav>
<div class="cookie-banner">We use cookies. <button>Accept</button></div>
<main><article>
<h1>Can I stop my chats being used for training?</h1>
<p>Last updated: {updated}</p>
<p>Yes. Open <a href="/settings/privacy">Settings → Privacy</a> and switch off
<strong>{toggle}</strong>.</p>
<p>Once you opt out, we will not use {scope} for future model training.</p>
<ul><li>Applies to Free and Plus accounts.</li><li>Team and API accounts are never used.</li></ul>
</article></main></body></html>"""

BEFORE = {
    "updated": "2 days ago",
    "toggle": "Help improve our models",
    "scope": "new and resumed conversations",
}
AFTER = {"updated": "today", "toggle": "Model improvement", "scope": "new conversations"}


class _DemoSite:
    """One page whose content the demo changes between checks."""

    def __init__(self) -> None:
        self.values = dict(BEFORE)
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = ARTICLE.format(**site.values).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/help/training"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_demo(say: Callable[[str], None], show_change: Callable[[Store, int], None]) -> None:
    """Three checks of a local page: first, unchanged, then changed after an edit."""
    site = _DemoSite()
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as scratch:
        base = Path(scratch)
        targets = base / "targets"
        targets.mkdir()
        (targets / "example-ai.yaml").write_text(
            yaml.safe_dump(
                {
                    "provider": "Example AI",
                    "pages": [
                        {
                            "id": "example-training",
                            "url": site.url,
                            "fetch": "http",
                            "title": "Can I stop my chats being used for training?",
                            "ignore": ["Last updated: .*"],
                        }
                    ],
                },
                sort_keys=False,
            )
        )
        db_url = f"sqlite:///{base / 'demo.db'}"
        store = Store(db_url)
        pages = load_targets(targets)
        say(f"serving a help page at {site.url}; store {db_url}")
        try:
            for step, note in (
                ("1", "first check: the page's first version is stored"),
                ("2", "second check: nothing changed, only a check row is added"),
                ("3", "the provider renames the toggle and narrows the scope"),
            ):
                if step == "3":
                    site.values = dict(AFTER)
                result = asyncio.run(_check(store, pages))
                say(
                    f"[{step}] {note} → status {result.status}"
                    + (
                        f", severity {result.severity}, change {result.change_id}"
                        if result.change_id
                        else ""
                    )
                )
            if result.change_id:
                show_change(store, result.change_id)
        finally:
            store.close()
            site.close()


async def _check(store: Store, pages: list[Any]) -> CheckResult:
    async with Fetcher(timeout=10) as fetcher:
        return (await Checker(store, fetcher).check_all(pages))[0]
