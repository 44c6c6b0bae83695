"""Checks spread over processes, for runs of many plain HTTP pages.

A Python process runs Python on one core at a time, and a check of a plain HTTP page is
mostly Python (reading the response, extracting its text, writing the check). So a run
forks helper processes before its event loop, its threads and its browser start; each
helper checks a share of the pages that need no browser, with its own HTTP client and its
own connections to the store. The one browser stays in the main process: a helper's page
that turns out to need it is rendered there, over the helper's pipe. A helper that dies
leaves the pages it had not reported to the main process, which checks them itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from monitor.check import CheckResult
from monitor.fetch import Capture, FetchError
from monitor.fetch.browser import BrowserPool
from monitor.targets import Page, Step

log = logging.getLogger(__name__)

# A helper's start must pay for itself: at 100 and 200 plain pages two processes gained
# little and not consistently (first runs of 0.97 against 1.10 s, and of 1.33 against
# 1.27 s); at 1,000, a first run took a fifth less.
PAGES_PER_PROCESS = 100
# Two per core, not one: a process whose write waits for SQLite's lock (its busy timeout
# sleeps) leaves its core to another. Over bench/check_now.py's 1,000 pages on 2 cores, four
# processes took a first run in 0.90 of two's time and an unchanged one in 0.95 (6 rounds
# each, taken in turn); six gained nothing more.
PROCESSES_PER_CORE = 2
MAX_PROCESSES = 8

OnResult = Callable[[CheckResult], None]
# Checks pages already in the store, reporting each result (`Checker.check_each`).
CheckPages = Callable[[list[Page], OnResult], Awaitable[object]]
# The same in a helper, which builds its own store and fetcher around the browser it is given.
CheckShare = Callable[[list[Page], "RemoteBrowser", OnResult], Awaitable[object]]


def spreadable(page: Page) -> bool:
    """A page a helper can check on its own: one that is not known to need the browser."""
    decl = page.decl
    return decl.fetch != "browser" and not decl.wait_for and not decl.auth


def process_count(pages: Sequence[Page], requested: int | None) -> int:
    """How many processes share the run: `requested`, or two per usable core when there are
    enough plain HTTP pages to keep each busy. One where processes cannot be forked safely
    (not Linux, or threads already running: a fork copies none of them)."""
    if sys.platform != "linux" or threading.active_count() > 1:
        return 1
    if requested is not None:
        return requested
    cores = len(os.sched_getaffinity(0))
    eligible = sum(map(spreadable, pages))
    return max(1, min(cores * PROCESSES_PER_CORE, MAX_PROCESSES, eligible // PAGES_PER_PROCESS))


@dataclass
class _Helper:
    """The main process's end of one helper."""

    process: BaseProcess
    connection: Connection
    share: list[int]  # indices into the run's pages
    reported: set[int] = field(default_factory=set)
    gone: asyncio.Event = field(default_factory=asyncio.Event)


class Spread:
    """A run's pages shared among this process and forked helpers.

    Create it before the event loop starts (the fork needs a process without threads); then
    `run` inside the loop."""

    def __init__(self, pages: Sequence[Page], processes: int, check_share: CheckShare) -> None:
        self.pages = list(pages)
        eligible = [n for n, page in enumerate(self.pages) if spreadable(page)]
        shares = [eligible[n::processes] for n in range(processes)]
        spread = set(eligible) - set(shares[0])
        self.mine = [n for n in range(len(self.pages)) if n not in spread]
        self.helpers: list[_Helper] = []
        context = multiprocessing.get_context("fork")
        for share in shares[1:]:
            if not share:
                continue
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_helper_main,
                args=(theirs, [self.pages[n] for n in share], check_share),
                daemon=True,
                name="monitor-helper",
            )
            process.start()
            theirs.close()
            self.helpers.append(_Helper(process, ours, share))
        log.info(
            "%d pages shared among %d processes: %d here (with those that need the browser), "
            "%s in helper processes %s",
            len(self.pages),
            len(self.helpers) + 1,
            len(self.mine),
            "/".join(str(len(helper.share)) for helper in self.helpers),
            ", ".join(str(helper.process.pid) for helper in self.helpers),
        )

    async def run(
        self, check_mine: CheckPages, browser: BrowserPool, on_result: OnResult
    ) -> list[CheckResult]:
        """Check this process's share while the helpers check theirs and this process renders
        their browser pages; results come back in the order of the pages."""
        results: dict[int, CheckResult] = {}
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        def receive(helper: _Helper, message: tuple[Any, ...]) -> None:
            kind = message[0]
            if kind == "result":
                index, fields = message[1], message[2]
                result = CheckResult(page=self.pages[helper.share[index]], **fields)
                helper.reported.add(index)
                results[helper.share[index]] = result
                on_result(result)
            elif kind == "browser":
                log.debug("rendering %s for helper process %d", message[2], helper.process.pid)
                task = loop.create_task(_render_for(helper.connection, browser, *message[1:]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            else:  # "gone": the pipe closed, the helper ended
                helper.gone.set()

        for helper in self.helpers:
            threading.Thread(
                target=_read, args=(helper.connection, loop, receive, helper), daemon=True
            ).start()

        by_id = {page.id: n for n, page in enumerate(self.pages)}

        def mine_done(result: CheckResult) -> None:
            results[by_id[result.page.id]] = result
            on_result(result)

        await check_mine([self.pages[n] for n in self.mine], mine_done)
        for helper in self.helpers:
            await helper.gone.wait()
            await asyncio.to_thread(helper.process.join)
            helper.connection.close()
            left = [helper.share[n] for n in range(len(helper.share)) if n not in helper.reported]
            if left:
                log.warning(
                    "a helper process ended (exit status %s) before checking %d page(s); "
                    "checking them here",
                    helper.process.exitcode,
                    len(left),
                )
                await check_mine([self.pages[n] for n in left], mine_done)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return [results[n] for n in range(len(self.pages))]


def _read(
    connection: Connection,
    loop: asyncio.AbstractEventLoop,
    receive: Callable[[Any, tuple[Any, ...]], None],
    owner: Any,
) -> None:
    """Hand each message from the pipe to the event loop, then ("gone",) when it closes."""
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            message = ("gone",)
        try:
            loop.call_soon_threadsafe(receive, owner, message)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            return
        if message[0] == "gone":
            return


async def _render_for(
    connection: Connection,
    browser: BrowserPool,
    request: int,
    url: str,
    wait_for: str | None,
    steps: tuple[Step, ...],
    storage_state: Path | None,
) -> None:
    """Render a page for a helper and send it the capture, or how the fetch failed."""
    try:
        capture = await browser.fetch(
            url, wait_for=wait_for, steps=steps, storage_state=storage_state
        )
        reply: tuple[Any, ...] = ("capture", request, capture)
    except FetchError as exc:
        reply = ("failed", request, vars(exc))
    except Exception as exc:  # the helper's check must end, whatever happened here
        log.exception("rendering %s for a helper process failed", url)
        failure = FetchError(f"browser error: {type(exc).__name__}: {exc}", "browser")
        reply = ("failed", request, vars(failure) | {"mode": "browser"})
    with contextlib.suppress(OSError):  # the helper has gone; its pages are checked here
        connection.send(reply)


class RemoteBrowser:
    """A helper's browser: the main process's, reached over the helper's pipe."""

    def __init__(self, connection: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.connection = connection
        self.loop = loop
        self._waiting: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self._next = 0

    def answer(self, _owner: object, message: tuple[Any, ...]) -> None:
        """Settle the fetch a reply is for (unless that check was cancelled meanwhile)."""
        if message[0] == "gone":  # the main process has gone: nothing will answer
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(FetchError("the main process has gone", "browser"))
            return
        future = self._waiting.pop(message[1])
        if not future.done():
            future.set_result(message)

    async def fetch(
        self,
        url: str,
        *,
        wait_for: str | None = None,
        steps: Sequence[Step] = (),
        storage_state: Path | None = None,
        on_landing: Callable[[Capture], None] | None = None,
    ) -> Capture:
        if on_landing is not None:  # pages behind a login are never spread
            raise ValueError("a helper's browser takes no on_landing check")
        self._next += 1
        future = self.loop.create_future()
        self._waiting[self._next] = future
        self.connection.send(("browser", self._next, url, wait_for, tuple(steps), storage_state))
        reply = await future
        if reply[0] == "failed":
            raise FetchError(**reply[2])
        capture: Capture = reply[2]
        return capture

    async def close(self) -> None:
        """Nothing to close: the browser belongs to the main process."""


def _helper_main(connection: Connection, share: list[Page], check_share: CheckShare) -> None:
    """A helper's life: check its share, reporting each result over the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    positions = {page.id: n for n, page in enumerate(share)}

    async def run() -> None:
        browser = RemoteBrowser(connection, asyncio.get_running_loop())
        threading.Thread(
            target=_read,
            args=(connection, browser.loop, browser.answer, None),
            daemon=True,
        ).start()

        def report(result: CheckResult) -> None:
            fields = {k: v for k, v in vars(result).items() if k != "page"}
            connection.send(("result", positions[result.page.id], fields))

        await check_share(share, browser, report)

    asyncio.run(run())
    connection.close()
