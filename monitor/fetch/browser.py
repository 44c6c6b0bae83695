"""A real Chromium through Playwright: one browser per process, a fresh context per check.

Which browser: `MONITOR_BROWSER` (an executable, or a ws:// / http:// endpoint of a remote
browser) when set; else the Chromium that Playwright installed; else a system Chromium, the
headless shell first: it renders a page for about a quarter of the full browser's CPU (see
docs/performance.md), and checks never need a window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.fetch import USER_AGENT, Capture, FetchError
from monitor.fetch.http import status_reason
from monitor.targets import Step

log = logging.getLogger(__name__)

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
)
HEADLESS_SHELL = "chromium-headless-shell"
SYSTEM_CHROMIUMS = (
    HEADLESS_SHELL,
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
)
BLOCKED_RESOURCES = frozenset({"image", "font", "media"})
REMOTE_SCHEMES = ("ws://", "wss://", "http://", "https://")
# A page has settled when the DOM has not changed for this long with no request in flight.
SETTLE_QUIET = float(os.environ.get("MONITOR_SETTLE_MS", "250")) / 1000
SETTLE_LIMIT = 5.0
# Resolves once the document has gone `quiet` milliseconds without a mutation.
_DOM_QUIET = """(quiet) => new Promise((resolve) => {
  const done = () => { observer.disconnect(); resolve(); };
  let timer = setTimeout(done, quiet);
  const observer = new MutationObserver(() => {
    clearTimeout(timer);
    timer = setTimeout(done, quiet);
  });
  observer.observe(
    document, {subtree: true, childList: true, attributes: true, characterData: true}
  );
})"""


class BrowserUnavailable(RuntimeError):
    """No Chromium could be found or started; the message says what was tried."""


@dataclass(frozen=True)
class BrowserChoice:
    """Where the browser comes from, said plainly to the user."""

    source: str
    executable: str | None = None
    endpoint: str | None = None

    def describe(self) -> str:
        if self.endpoint:
            return f"remote browser at {self.endpoint} ({self.source})"
        return f"{self.executable or 'Playwright Chromium'} ({self.source})"


def choose_browser(
    playwright_executable: str | None,
    env: dict[str, str] | None = None,
    *,
    headless: bool = True,
) -> BrowserChoice:
    """Apply the discovery order; `playwright_executable` is Playwright's own Chromium path
    (Playwright picks its own headless shell itself). A visible window (`headless=False`)
    needs a full Chromium."""
    setting = (env if env is not None else os.environ).get("MONITOR_BROWSER", "").strip()
    if setting:
        if setting.startswith(REMOTE_SCHEMES):
            return BrowserChoice("MONITOR_BROWSER", endpoint=setting)
        path = shutil.which(setting) or setting
        if not Path(path).is_file():
            raise BrowserUnavailable(f"MONITOR_BROWSER={setting}: no such executable")
        return BrowserChoice("MONITOR_BROWSER", executable=path)
    if playwright_executable and Path(playwright_executable).is_file():
        return BrowserChoice("installed by Playwright", executable=None)
    for name in SYSTEM_CHROMIUMS:
        if name == HEADLESS_SHELL and not headless:
            continue
        path = shutil.which(name)
        if path:
            return BrowserChoice("system Chromium", executable=path)
    raise BrowserUnavailable(
        "no Chromium found: set MONITOR_BROWSER, run `playwright install chromium`, "
        "or install your distribution's chromium package"
    )


class BrowserPool:
    """One Chromium shared by all checks; each check gets its own short-lived context."""

    def __init__(self, timeout: float, max_pages: int = 4) -> None:
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_pages)
        self._lock = asyncio.Lock()
        self._playwright: Any = None
        self._browser: Any = None
        self.choice: BrowserChoice | None = None

    async def _ensure(self) -> Any:
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            from playwright.async_api import async_playwright

            if self._playwright is None:
                self._playwright = await async_playwright().start()
            chromium = self._playwright.chromium
            self.choice = choose_browser(chromium.executable_path)
            try:
                if self.choice.endpoint:
                    self._browser = await _connect(chromium, self.choice.endpoint, self.timeout)
                else:
                    self._browser = await self._launch(chromium)
            except Exception as exc:
                raise BrowserUnavailable(
                    f"cannot start {self.choice.describe()}: {str(exc).splitlines()[0]}"
                ) from exc
            return self._browser

    async def _launch(self, chromium: Any) -> Any:
        """Start Chromium; a start that fails (a busy machine can make the first one die)
        is tried once more."""
        assert self.choice is not None
        for attempt in (1, 2):
            try:
                return await chromium.launch(
                    executable_path=self.choice.executable,
                    args=list(CHROMIUM_FLAGS),
                    timeout=self.timeout * 1000,
                )
            except Exception:
                if attempt == 2:
                    raise
                log.warning("Chromium did not start; trying once more")
                await asyncio.sleep(1)
        raise AssertionError("unreachable")

    async def fetch(
        self,
        url: str,
        *,
        wait_for: str | None = None,
        steps: Sequence[Step] = (),
        storage_state: Path | None = None,
        on_landing: Callable[[Capture], None] | None = None,
    ) -> Capture:
        """Render a page in a fresh context. A browser that crashed (before or during the
        check) is started again and the check retried once. With `storage_state` the context
        starts from that saved session only; `on_landing` sees the page as loaded, before any
        step, and may raise FetchError (a login screen where the settings should be)."""
        from playwright.async_api import Error as PlaywrightError

        async with self._slots:
            for attempt in (1, 2):
                try:
                    browser = await self._ensure()
                except BrowserUnavailable as exc:
                    raise FetchError(str(exc), "browser", mode="browser") from None
                try:
                    return await self._fetch_in(
                        browser, url, wait_for, steps, storage_state, on_landing
                    )
                except (PlaywrightError, FetchError) as exc:
                    if browser.is_connected() or attempt == 2:
                        if isinstance(exc, FetchError):
                            raise
                        reason = str(exc).splitlines()[0][:200]
                        raise FetchError(
                            f"browser error: {reason}", "browser", mode="browser"
                        ) from None
                    log.warning("the browser went away during a check of %s; restarting it", url)
            raise AssertionError("unreachable")

    async def _fetch_in(
        self,
        browser: Any,
        url: str,
        wait_for: str | None,
        steps: Sequence[Step],
        storage_state: Path | None,
        on_landing: Callable[[Capture], None] | None,
    ) -> Capture:
        context = await browser.new_context(
            storage_state=str(storage_state) if storage_state else None,
            user_agent=f"{USER_AGENT} Chromium",
            accept_downloads=False,
            service_workers="block",
            java_script_enabled=True,
        )
        try:
            return await asyncio.wait_for(
                self._render(context, url, wait_for, steps, on_landing), timeout=self.timeout
            )
        except TimeoutError:
            raise FetchError(
                f"timed out after {self.timeout:g}s", "timeout", mode="browser"
            ) from None
        finally:
            await _quietly(context.close())

    async def _render(
        self,
        context: Any,
        url: str,
        wait_for: str | None,
        steps: Sequence[Step],
        on_landing: Callable[[Capture], None] | None,
    ) -> Capture:
        from playwright.async_api import Error as PlaywrightError

        started = time.perf_counter()
        await context.route("**/*", _block_heavy)
        page = await context.new_page()
        page.on("dialog", lambda dialog: asyncio.ensure_future(_quietly(dialog.dismiss())))
        pending: set[Any] = set()
        page.on("request", lambda request: pending.add(request))
        for ended in ("requestfinished", "requestfailed"):
            page.on(ended, lambda request: pending.discard(request))
        timeout_ms = self.timeout * 1000
        try:
            response = await page.goto(url, wait_until="load", timeout=timeout_ms)
        except PlaywrightError as exc:
            raise FetchError(_navigation_reason(exc), "network", mode="browser") from None
        status = response.status if response else 200
        chain = _redirect_chain(response)
        if status >= 400:
            raise FetchError(
                status_reason(status),
                "status",
                status=status,
                final_url=page.url,
                mode="browser",
                redirects=chain,
            )
        if wait_for:
            try:
                await page.wait_for_selector(wait_for, state="attached", timeout=timeout_ms)
            except PlaywrightError:
                raise FetchError(
                    f"wait_for {wait_for!r} never appeared", "timeout", mode="browser"
                ) from None
        else:
            await settle(page, pending, limit=min(self.timeout, SETTLE_LIMIT))

        async def snapshot() -> Capture:
            return Capture(
                url=url,
                final_url=page.url,
                status=status,
                html=await page.content(),
                mode="browser",
                elapsed_ms=round((time.perf_counter() - started) * 1000),
                redirects=chain,
            )

        if on_landing:
            on_landing(await snapshot())
        await run_steps(page, steps, timeout_ms)
        return await snapshot()

    async def close(self) -> None:
        if self._browser is not None:
            await _quietly(self._browser.close())
            self._browser = None
        if self._playwright is not None:
            await _quietly(self._playwright.stop())
            self._playwright = None


async def run_steps(page: Any, steps: Sequence[Step], default_timeout_ms: float) -> None:
    """Play the declared actions in order; a failure names the step's number and selector."""
    from playwright.async_api import Error as PlaywrightError

    for number, step in enumerate(steps, start=1):
        timeout_ms = step.timeout * 1000 if step.timeout else default_timeout_ms
        try:
            if step.click:
                await page.click(step.click, timeout=timeout_ms)
            elif step.fill:
                value = os.environ.get(step.fill.env)
                if value is None:
                    raise FetchError(
                        f"step {number} (fill {step.fill.selector!r}): "
                        f"environment variable {step.fill.env} is not set",
                        "browser",
                        mode="browser",
                    )
                await page.fill(step.fill.selector, value, timeout=timeout_ms)
            elif step.press:
                await page.keyboard.press(step.press)
            elif step.wait_for:
                await page.wait_for_selector(step.wait_for, state="attached", timeout=timeout_ms)
            elif step.select_option:
                option = step.select_option
                choice = {"value": option.value} if option.value else {"label": option.label}
                await page.select_option(option.selector, timeout=timeout_ms, **choice)
        except PlaywrightError as exc:
            raise FetchError(
                f"step {number} ({_describe(step)}) failed: {str(exc).splitlines()[0][:160]}",
                "browser",
                final_url=page.url,
                mode="browser",
            ) from None
    if steps:
        await _quietly(page.wait_for_load_state("networkidle", timeout=2000))


async def settle(page: Any, pending: set[Any], *, limit: float) -> None:
    """Wait until the page has settled: no request in flight and the DOM unchanged for
    SETTLE_QUIET seconds (at most `limit`). Playwright's "networkidle" waits a fixed 500 ms
    after the last request; most pages built by scripts are done sooner."""

    from playwright.async_api import Error as PlaywrightError

    async def quiet() -> None:
        while True:
            try:
                await page.evaluate(_DOM_QUIET, SETTLE_QUIET * 1000)
            except PlaywrightError:  # a script navigated away: wait for the next document
                if page.is_closed():
                    return
                await asyncio.sleep(SETTLE_QUIET)
                continue
            if not pending:
                return

    with contextlib.suppress(TimeoutError):  # still busy at the limit: read it as it is
        await asyncio.wait_for(quiet(), timeout=limit)


def _describe(step: Step) -> str:
    if step.click:
        return f"click {step.click!r}"
    if step.fill:
        return f"fill {step.fill.selector!r}"
    if step.press:
        return f"press {step.press!r}"
    if step.wait_for:
        return f"wait_for {step.wait_for!r}"
    assert step.select_option
    return f"select_option {step.select_option.selector!r}"


async def _connect(chromium: Any, endpoint: str, timeout: float) -> Any:
    """A Playwright browser server speaks ws://; a DevTools endpoint is reached over CDP."""
    if endpoint.startswith(("http://", "https://")) or "/devtools/" in endpoint:
        return await chromium.connect_over_cdp(endpoint, timeout=timeout * 1000)
    return await chromium.connect(endpoint, timeout=timeout * 1000)


async def _block_heavy(route: Any) -> None:
    request = route.request
    if request.resource_type in BLOCKED_RESOURCES or not request.url.startswith(
        ("http:", "https:", "data:")
    ):
        await route.abort()
    else:
        await route.continue_()


def _redirect_chain(response: Any) -> tuple[str, ...]:
    chain: list[str] = []
    request = response.request.redirected_from if response else None
    while request is not None:
        chain.append(request.url)
        request = request.redirected_from
    return tuple(reversed(chain))


def _navigation_reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0]
    if "ERR_TOO_MANY_REDIRECTS" in text:
        return "redirect loop (too many redirects)"
    if "ERR_CONNECTION_REFUSED" in text:
        return "connection refused"
    if "Timeout" in text:
        return "navigation timed out"
    return text.removeprefix("Page.goto: ")[:200]


async def _quietly(awaitable: Any) -> None:
    with contextlib.suppress(Exception):
        await awaitable
