"""Saved browser sessions (Playwright storage states) for settings pages behind a login.

Files live in MONITOR_SECRETS (default snapshots/secrets/), the directory 0700 and each file
0600. Nothing here ever prints or logs a file's contents: only names, ages and paths.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.extract import count_matches, parse
from monitor.fetch import Capture, FetchError

DEFAULT_SECRETS = Path("snapshots/secrets")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
LOGIN_URL_HINT = re.compile(r"/(login|log-in|signin|sign-in|sign_in|auth|sso)\b", re.I)
PASSWORD_FIELD = re.compile(r"<input[^>]+type=[\"']?password", re.I)


class AuthError(Exception):
    """A bad session name or state file; the message says which and why."""


def secrets_dir() -> Path:
    """The secrets directory, created owner-only on first use."""
    path = Path(os.environ.get("MONITOR_SECRETS") or DEFAULT_SECRETS)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def state_path(name: str) -> Path:
    if not NAME_PATTERN.match(name):
        raise AuthError(f"session name {name!r}: use lowercase letters, digits, - and _")
    return secrets_dir() / f"{name}.json"


def write_state(name: str, state: dict) -> Path:
    """Write a storage state owner-only (the file never exists with wider permissions)."""
    target = state_path(name)
    fd = os.open(target.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle)
    os.replace(target.with_suffix(".tmp"), target)
    target.chmod(0o600)
    return target


def import_state(name: str, source: Path) -> Path:
    """Copy a state file exported elsewhere, after checking it looks like one."""
    try:
        state = json.loads(Path(source).read_text())
    except (OSError, ValueError) as exc:
        message = f"{source}: not a readable JSON storage state ({type(exc).__name__})"
        raise AuthError(message) from None
    if not isinstance(state, dict) or not isinstance(state.get("cookies"), list):
        raise AuthError(f"{source}: not a Playwright storage state (no 'cookies' list)")
    return write_state(name, state)


@dataclass(frozen=True)
class SavedSession:
    name: str
    age_seconds: float
    pages: tuple[str, ...]


def list_sessions(pages_by_auth: dict[str, list[str]]) -> list[SavedSession]:
    """Names, ages and the pages using each session; sessions named by pages but missing too."""
    now = time.time()
    found = {p.stem: now - p.stat().st_mtime for p in secrets_dir().glob("*.json")}
    names = sorted(set(found) | set(pages_by_auth))
    return [SavedSession(n, found.get(n, -1.0), tuple(pages_by_auth.get(n, ()))) for n in names]


def session_expired(capture: Capture, requested_url: str, logged_in: str | None) -> bool:
    """Did an authenticated page land on a login screen instead of the page itself?

    With a `logged_in:` selector its absence decides; otherwise a redirect to a login-like
    URL or a password field on the page (where the requested URL was not itself a login URL).
    """
    if logged_in is not None:
        return count_matches(parse(capture.html), logged_in) == 0
    final_path = urlsplit(capture.final_url).path
    if final_path != urlsplit(requested_url).path and LOGIN_URL_HINT.search(final_path):
        return True
    return bool(PASSWORD_FIELD.search(capture.html)) and not LOGIN_URL_HINT.search(
        urlsplit(requested_url).path
    )


def expired_error(name: str, capture: Capture) -> FetchError:
    return FetchError(
        f"session expired: run `monitor auth save {name}`",
        "browser",
        final_url=capture.final_url,
        mode="browser",
    )


def check_plain_http(url: str, final_url: str) -> None:
    """A page with auth is never sent over plain HTTP to another host."""
    start, end = urlsplit(url), urlsplit(final_url)
    if end.scheme == "http" and end.hostname != start.hostname:
        raise FetchError(
            f"refused: authenticated page redirected over plain http to {end.hostname}",
            "redirect",
            mode="browser",
        )


async def save_session(
    name: str,
    login_url: str,
    *,
    done_selector: str | None,
    headless: bool,
    timeout: float,
    act: Callable[[Any], Awaitable[None]] | None = None,
) -> Path:
    """Open the login page, let the person (or `act`, in tests) log in, then save the state.

    Done when `done_selector` appears, or, without one, when the person closes the window.
    """
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    from monitor.fetch.browser import CHROMIUM_FLAGS, choose_browser

    target = state_path(name)
    async with async_playwright() as playwright:
        choice = choose_browser(playwright.chromium.executable_path, headless=headless)
        browser = await playwright.chromium.launch(
            executable_path=choice.executable, args=list(CHROMIUM_FLAGS), headless=headless
        )
        try:
            context = await browser.new_context()
            page = await context.new_page()
            try:
                await page.goto(login_url, timeout=timeout * 1000)
                if act is not None:
                    await act(page)
                if done_selector:
                    await page.wait_for_selector(done_selector, timeout=timeout * 1000)
                else:
                    await page.wait_for_event("close", timeout=0)
            except PlaywrightError as exc:
                first_line = str(exc).splitlines()[0][:200]
                raise AuthError(f"{login_url}: nothing saved ({first_line})") from None
            return write_state(target.stem, await context.storage_state())
        finally:
            await browser.close()
