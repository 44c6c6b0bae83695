"""Finding or installing a Chromium for the set-up scripts and `monitor browser`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

from monitor.fetch.browser import (
    HEADLESS_SHELL,
    BrowserChoice,
    BrowserUnavailable,
    choose_browser,
)

__all__ = ["BrowserUnavailable", "chromium_executable", "ensure_browser", "find_browser"]


def _playwright_executable() -> str | None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        return playwright.chromium.executable_path


def find_browser() -> BrowserChoice:
    """The browser a check would use now, by the documented order."""
    return choose_browser(_playwright_executable())


def chromium_executable() -> str:
    """The Chromium executable checks would start (MONITOR_BROWSER aside), for programs that
    start one themselves: the remote-browser test, the benchmark's peers."""
    playwright_executable = _playwright_executable()
    choice = choose_browser(playwright_executable, {})
    return choice.executable or str(playwright_executable)


def ensure_browser(say: Callable[[str], object]) -> BrowserChoice:
    """Find a Chromium; else `playwright install chromium`; else the distribution's package
    (as root, with apt-get). Says what it tries."""
    try:
        return find_browser()
    except BrowserUnavailable as exc:
        if os.environ.get("MONITOR_BROWSER"):
            raise
        say(f"{exc}; trying `playwright install chromium`")
    attempt = subprocess.run(
        [sys.executable, "-m", "playwright", "install", "chromium"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if attempt.returncode == 0:
        return find_browser()
    say(
        "playwright could not download Chromium "
        f"({(attempt.stderr or attempt.stdout).strip().splitlines()[-1:] or ['no output']}); "
        "trying the distribution's chromium package"
    )
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=900)
        for package in (HEADLESS_SHELL, "chromium"):  # the shell is lighter, when packaged
            installed = subprocess.run(
                ["apt-get", "install", "-y", "-qq", package], env=env, check=False, timeout=1800
            )
            if installed.returncode == 0:
                break
        return find_browser()
    raise BrowserUnavailable(
        "no Chromium available: install your distribution's chromium package "
        "(e.g. `sudo apt-get install chromium-headless-shell`, or `chromium`) or set "
        "MONITOR_BROWSER to a Chromium executable"
    )
