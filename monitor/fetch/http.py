"""Plain HTTP fetching with aiohttp: redirects followed and recorded, size cap, charset.

aiohttp rather than httpx: over 200 pages of 275 KB it spent a quarter of httpx's CPU
(0.11 s against 0.40 s), and plain HTTP checks are mostly that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from monitor.fetch import MAX_REDIRECTS, USER_AGENT, Capture, FetchError

_TEXT_TYPES = ("text/", "application/xhtml", "application/xml")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


def status_reason(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def decode_html(body: bytes, header_charset: str | None) -> str:
    """Decode with the header's charset, else the document's own declaration, else UTF-8."""
    for charset in _charsets(body, header_charset):
        if not charset:
            continue
        try:
            return body.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return body.decode("utf-8", errors="replace")


def _charsets(body: bytes, header_charset: str | None) -> Iterator[str | None]:
    """The charsets to try, in turn. The document's own declaration (`<meta charset>`, its
    http-equiv form, or an XML declaration) is looked for only when the header's fails or is
    missing: BeautifulSoup, which reads it, takes a tenth of a second to import."""
    yield header_charset
    from bs4.dammit import EncodingDetector

    yield EncodingDetector.find_declared_encoding(body[:4096], is_html=True)
    yield "utf-8"


class HttpFetcher:
    """One shared session (opened on first use, inside the running event loop), keeping no
    cookies between checks; each fetch is bounded in time and size."""

    def __init__(self, timeout: float, max_bytes: int) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={
                    "User-Agent": USER_AGENT,
                    "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
                    "Accept-Language": "en-US,en;q=0.8",
                },
                timeout=aiohttp.ClientTimeout(total=None, connect=min(self.timeout, 10.0)),
                connector=aiohttp.TCPConnector(limit=64),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Capture:
        """GET the page; with the validators of the last fetch, a page the server says is
        unchanged comes back as a `not_modified` capture without a body."""
        conditions = {
            name: value
            for name, value in (("If-None-Match", etag), ("If-Modified-Since", last_modified))
            if value
        }
        try:
            async with asyncio.timeout(self.timeout):  # in this task: no task per fetch
                return await self._fetch(url, conditions)
        except TimeoutError:
            raise FetchError(f"timed out after {self.timeout:g}s", "timeout") from None

    async def _fetch(self, url: str, conditions: dict[str, str]) -> Capture:
        started = time.perf_counter()
        chain: list[str] = []
        current = url

        def capture(html: str, response: Any, **fields: Any) -> Capture:
            return Capture(
                url=url,
                final_url=current,
                status=response.status,
                html=html,
                mode="http",
                elapsed_ms=round((time.perf_counter() - started) * 1000),
                redirects=tuple(chain),
                etag=response.headers.get("etag", conditions.get("If-None-Match")),
                last_modified=response.headers.get(
                    "last-modified", conditions.get("If-Modified-Since")
                ),
                **fields,
            )

        while True:
            try:
                async with self._client().get(
                    current, headers=conditions, allow_redirects=False
                ) as response:
                    if response.status == HTTPStatus.NOT_MODIFIED and conditions:
                        return capture("", response, not_modified=True)
                    location = response.headers.get("location")
                    if response.status in _REDIRECTS and location is not None:
                        chain.append(current)
                        current = self._next_hop(urljoin(current, location), chain)
                        continue
                    if response.status >= 400:
                        reason = status_reason(response.status)
                        retry_after = response.headers.get("retry-after", "").strip()
                        if retry_after:
                            unit = " s" if retry_after.isdigit() else ""
                            reason += f" (retry after {retry_after[:40]}{unit})"
                        raise FetchError(
                            reason,
                            "status",
                            status=response.status,
                            final_url=current,
                            redirects=tuple(chain),
                        )
                    body = await self._read_capped(response)
                    content_type = response.headers.get("content-type", "text/html")
                    _check_text(content_type, body)
                    return capture(
                        decode_html(body, response.charset),
                        response,
                        content_type=content_type.split(";")[0].strip(),
                    )
            except TimeoutError:  # connecting took too long (an OSError: caught first)
                raise FetchError(f"timed out after {self.timeout:g}s", "timeout") from None
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                raise FetchError(
                    f"cannot reach {urlsplit(current).netloc}: {_network_reason(exc)}",
                    "network",
                    final_url=current,
                ) from None

    def _next_hop(self, target: str, chain: list[str]) -> str:
        scheme = urlsplit(target).scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchError(
                f"redirected to a non-HTTP URL: {target[:200]}", "redirect", redirects=tuple(chain)
            )
        if target in chain:
            raise FetchError(
                f"redirect loop: {' → '.join([*chain, target][-4:])}",
                "redirect",
                redirects=tuple(chain),
            )
        if len(chain) >= MAX_REDIRECTS:
            raise FetchError(
                f"more than {MAX_REDIRECTS} redirects", "redirect", redirects=tuple(chain)
            )
        return target

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit():
            if int(declared) > self.max_bytes:
                raise FetchError(_too_large(self.max_bytes), "too-large")
            # aiohttp reads no more than declared, and at once: 0.29 against 0.31 ms of CPU a
            # page of 275 KB read in 64 KB chunks (medians of 8 rounds of 300).
            return await response.read()
        parts: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(_too_large(self.max_bytes), "too-large")
            parts.append(chunk)
        return b"".join(parts)


def _too_large(limit: int) -> str:
    return f"page is larger than the {limit / 1024 / 1024:g} MB limit"


def _check_text(content_type: str, body: bytes) -> None:
    kind = content_type.split(";")[0].strip().lower()
    if kind and not kind.startswith(_TEXT_TYPES) and "html" not in kind:
        raise FetchError(f"not a web page (content type {kind})", "content")
    if b"\x00" in body[:4096]:
        raise FetchError("not a web page (binary content)", "content")


def _network_reason(exc: BaseException) -> str:
    """The most specific cause: aiohttp wraps the OS error ("connection refused", DNS...)."""
    cause: BaseException | None = exc
    while cause is not None:
        cause = getattr(cause, "os_error", None) or cause
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
