"""Fetching: turn a page declaration into a Capture (raw HTML, final URL, status, timings).

Two fetchers sit behind one interface: plain HTTP (aiohttp) for pages that need no scripts,
and a real Chromium (Playwright) for pages built by scripts. `Fetcher` owns both and starts
the browser only when a page first needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FetchMode = Literal["http", "browser"]

USER_AGENT = (
    "optout-monitor/0.1 (+https://github.com/optout-monitor/optout-monitor; policy-change monitor)"
)
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 10


@dataclass(frozen=True)
class Capture:
    """What one fetch saw."""

    url: str
    final_url: str
    status: int
    html: str
    mode: FetchMode
    elapsed_ms: int
    redirects: tuple[str, ...] = ()
    content_type: str = "text/html"
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False


@dataclass
class FetchError(Exception):
    """A fetch that produced no usable page; `reason` is written for people."""

    reason: str
    kind: Literal["timeout", "status", "network", "too-large", "redirect", "content", "browser"]
    status: int | None = None
    final_url: str | None = None
    mode: FetchMode = "http"
    redirects: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return self.reason


from monitor.fetch.fetcher import Fetcher  # noqa: E402

__all__ = ["Capture", "FetchError", "FetchMode", "Fetcher"]
