"""One check = fetch → extract → compare → store; many checks with bounded concurrency.

The CLI, the scheduler and tests all run checks through `Checker`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from monitor.compare import Assessment, assess
from monitor.extract import Extraction, SelectorMissing, extract
from monitor.fetch import Capture, Fetcher, FetchError, FetchMode
from monitor.store import CheckRecord, NewChange, PageState, Store
from monitor.store.models import utcnow
from monitor.targets import Page

log = logging.getLogger(__name__)

Status = Literal["first", "unchanged", "changed", "error"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, as `check-now --json` prints it."""

    page: Page
    status: Status
    duration_ms: int
    severity: str | None = None
    change_id: int | None = None
    summary: str = ""
    error: str | None = None
    fetch_mode: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.page.id,
            "url": self.page.url,
            "status": self.status,
            "severity": self.severity,
            "change_id": self.change_id,
            "summary": self.summary,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "fetch": self.fetch_mode,
        }


def _first_line(exc: SQLAlchemyError) -> str:
    cause = getattr(exc, "orig", None) or exc
    return str(cause).strip().splitlines()[0][:300] if str(cause).strip() else type(cause).__name__


class PageFailure(Exception):
    """A check that got no usable text: the page failed to load or its structure moved."""

    def __init__(self, reason: str, *, status: int | None = None, mode: str | None = None):
        super().__init__(reason)
        self.reason, self.status, self.mode = reason, status, mode


@dataclass(frozen=True)
class Observation:
    capture: Capture
    extraction: Extraction


class Checker:
    """Runs checks against one store with one fetcher (and so one browser)."""

    def __init__(self, store: Store, fetcher: Fetcher, *, concurrency: int = 8) -> None:
        self.store = store
        self.fetcher = fetcher
        self.concurrency = concurrency

    async def check_all(
        self, pages: Sequence[Page], on_result: Callable[[CheckResult], None] | None = None
    ) -> list[CheckResult]:
        """Check pages concurrently; results come back in the order of `pages`."""
        await asyncio.to_thread(self.store.sync_pages, pages)
        slots = asyncio.Semaphore(self.concurrency)

        async def bounded(page: Page) -> CheckResult:
            async with slots:
                result = await self.check(page)
            if on_result:
                on_result(result)
            return result

        return list(await asyncio.gather(*(bounded(page) for page in pages)))

    async def check(self, page: Page) -> CheckResult:
        """Check one page and record the outcome; never raises for a page's own failure,
        nor when the store is unreachable (the check is then reported, not recorded)."""
        started = time.perf_counter()
        try:
            return await self._check(page)
        except SQLAlchemyError as exc:
            reason = f"could not use the store: {_first_line(exc)}"
            log.error("page %s: %s", page.id, reason)
            duration = round((time.perf_counter() - started) * 1000)
            return CheckResult(page, "error", duration, error=reason, summary=reason)

    async def _check(self, page: Page) -> CheckResult:
        started_at = utcnow()
        started = time.perf_counter()
        state = await asyncio.to_thread(self.store.page_state, page.id)

        def elapsed() -> int:
            return round((time.perf_counter() - started) * 1000)

        try:
            observation = await self.observe(page, state)
        except PageFailure as failure:
            record = CheckRecord(
                page.id,
                started_at,
                elapsed(),
                "error",
                fetch_mode=failure.mode,
                status=failure.status,
                error=failure.reason,
            )
            await asyncio.to_thread(self.store.record_check, record)
            return CheckResult(
                page,
                "error",
                record.duration_ms,
                error=failure.reason,
                summary=failure.reason,
                fetch_mode=failure.mode,
            )
        except Exception as exc:  # a bug must not stop the other checks
            log.exception("check of %s failed unexpectedly", page.id)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            record = CheckRecord(page.id, started_at, elapsed(), "error", error=reason)
            await asyncio.to_thread(self.store.record_check, record)
            return CheckResult(page, "error", record.duration_ms, error=reason, summary=reason)

        capture, text = observation.capture, observation.extraction.text
        status: Status
        assessment: Assessment | None = None
        if state.text is None:
            status, summary = "first", f"first version: {len(text.splitlines())} blocks"
        elif state.text == text:
            status, summary = "unchanged", "no change"
        else:
            assessment = assess(state.text, text, watch=page.decl.watch)
            status, summary = "changed", assessment.summary
        change = None
        if assessment is not None:
            change = NewChange(
                kind="content",
                severity=assessment.severity,
                summary=assessment.summary,
                reasons=list(assessment.reasons),
                terms=list(assessment.terms),
                diff=[hunk.to_json() for hunk in assessment.hunks],
            )
        record = CheckRecord(
            page.id,
            started_at,
            elapsed(),
            status,
            fetch_mode=capture.mode,
            status=capture.status,
            text=None if status == "unchanged" else text,
            final_url=capture.final_url,
            change=change,
        )
        recorded = await asyncio.to_thread(self.store.record_check, record)
        return CheckResult(
            page,
            status,
            record.duration_ms,
            severity=assessment.severity if assessment else None,
            change_id=recorded.change_id,
            summary=summary,
            fetch_mode=capture.mode,
        )

    async def observe(self, page: Page, state: PageState) -> Observation:
        """Fetch and extract, choosing the browser for `auto` pages whose text needs scripts."""
        mode: FetchMode
        if page.decl.fetch == "auto":
            mode = "browser" if state.last_mode == "browser" or page.decl.wait_for else "http"
        else:
            mode = page.decl.fetch
        observation = await self._observe(page, mode)
        if (
            page.decl.fetch == "auto"
            and mode == "http"
            and (observation is None or observation.extraction.script_wall)
        ):
            observation = await self._observe(page, "browser")
        if observation is None:
            raise PageFailure(f"select {page.decl.select!r} matches nothing", mode=mode)
        return observation

    async def _observe(self, page: Page, mode: FetchMode) -> Observation | None:
        """None when `select` matched nothing (the caller decides whether a browser helps)."""
        try:
            capture = await self.fetcher.fetch(page, mode)
        except FetchError as exc:
            raise PageFailure(exc.reason, status=exc.status, mode=exc.mode) from None
        try:
            extraction = await asyncio.to_thread(
                extract,
                capture.html,
                base_url=capture.final_url,
                select=page.decl.select,
                remove=page.decl.remove,
                ignore=page.decl.ignore,
            )
        except SelectorMissing:
            return None
        return Observation(capture, extraction)
