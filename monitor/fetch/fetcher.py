"""One entry point for all fetches: HTTP or the shared browser, by mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from monitor import auth
from monitor.fetch import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, Capture, FetchError, FetchMode
from monitor.fetch.browser import BrowserPool
from monitor.fetch.http import HttpFetcher
from monitor.targets import Page, Step


@dataclass
class _HostTurn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last: float = 0.0


class Browser(Protocol):
    """What renders pages: the browser pool, or another process's over a pipe."""

    async def fetch(
        self,
        url: str,
        *,
        wait_for: str | None = None,
        steps: Sequence[Step] = (),
        storage_state: Path | None = None,
        on_landing: Callable[[Capture], None] | None = None,
    ) -> Capture: ...

    async def close(self) -> None: ...


class Fetcher:
    """Owns the HTTP client and the browser pool (started only when a page first needs it),
    unless it is given a `browser` that renders elsewhere."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        browser_pages: int = 4,
        host_gap: float = 0.0,
        browser: Browser | None = None,
    ) -> None:
        self.http = HttpFetcher(timeout, max_bytes)
        self.browser = browser or BrowserPool(timeout, browser_pages)
        self.host_gap = host_gap
        self._hosts: dict[str, _HostTurn] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.close()
        await self.browser.close()

    async def fetch(
        self,
        page: Page,
        mode: FetchMode,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> Capture:
        """Fetch by `mode`; the validators of the last fetch make an HTTP request
        conditional (a browser always loads the page in full)."""
        if self.host_gap:
            await self._polite(urlsplit(page.url).netloc)
        decl = page.decl
        if decl.auth:
            return await self._fetch_signed_in(page, decl.auth)
        if mode == "browser":
            return await self.browser.fetch(page.url, wait_for=decl.wait_for, steps=decl.steps)
        return await self.http.fetch(page.url, etag=etag, last_modified=last_modified)

    async def _polite(self, host: str) -> None:
        """Keep at least `host_gap` seconds between the starts of two requests to one host."""
        turn = self._hosts.setdefault(host, _HostTurn())
        async with turn.lock:
            wait = turn.last + self.host_gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            turn.last = time.monotonic()

    async def _fetch_signed_in(self, page: Page, name: str) -> Capture:
        """A page behind a login: always the browser, from the saved session and nothing else."""
        state = auth.state_path(name)
        if not state.is_file():
            raise FetchError(
                f"no saved session {name!r}: run `monitor auth save {name}`",
                "browser",
                mode="browser",
            )

        def on_landing(landed: Capture) -> None:
            auth.check_plain_http(page.url, landed.final_url)
            if auth.session_expired(landed, page.url, page.decl.logged_in):
                raise auth.expired_error(name, landed)

        return await self.browser.fetch(
            page.url,
            wait_for=page.decl.wait_for,
            steps=page.decl.steps,
            storage_state=state,
            on_landing=on_landing,
        )
