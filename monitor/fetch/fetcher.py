"""One entry point for all fetches: HTTP or the shared browser, by mode."""

from __future__ import annotations

from monitor.fetch import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, Capture, FetchMode
from monitor.fetch.browser import BrowserPool
from monitor.fetch.http import HttpFetcher
from monitor.targets import Page


class Fetcher:
    """Owns the HTTP client and the browser pool (started only when a page first needs it)."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        browser_pages: int = 4,
    ) -> None:
        self.http = HttpFetcher(timeout, max_bytes)
        self.browser = BrowserPool(timeout, browser_pages)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.close()
        await self.browser.close()

    async def fetch(self, page: Page, mode: FetchMode) -> Capture:
        if mode == "browser":
            return await self.browser.fetch(page.url, wait_for=page.decl.wait_for)
        return await self.http.fetch(page.url)
