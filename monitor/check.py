"""One check = fetch → extract → compare → store; many checks with bounded concurrency.

The CLI, the scheduler and tests all run checks through `Checker`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from monitor.compare import assess
from monitor.extract import Extraction, SelectorMissing, extract
from monitor.fetch import Capture, Fetcher, FetchError, FetchMode
from monitor.store import CheckRecord, NewChange, PageState, Store
from monitor.store.models import utcnow
from monitor.targets import Page

log = logging.getLogger(__name__)

Status = Literal["first", "unchanged", "changed", "error"]
# Names the destinations (key, label) that want a change of a page at a severity.
Router = Callable[[Page, str], tuple[tuple[str, str], ...]]


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


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _change(kind: str, severity: str, reasons: list[str]) -> NewChange:
    return NewChange(
        kind=kind, severity=severity, summary="; ".join(reasons), reasons=reasons, terms=[], diff=[]
    )


def _quiet_summary(record: CheckRecord) -> str:
    if record.outcome == "first" and record.text is not None:
        return f"first version: {len(record.text.splitlines())} blocks"
    return record.error or "no change"


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

    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        *,
        concurrency: int = 8,
        route: Router | None = None,
        failures_before_alert: int = 1,
        retry_delay: float = 2.0,
    ) -> None:
        self.store = store
        self.concurrency = concurrency
        self.route = route
        self.failures_before_alert = failures_before_alert
        self.observer = Observer(fetcher, retry_delay=retry_delay)

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
        try:
            observation = await self.observer.observe(page, state.last_mode)
        except PageFailure as failure:
            record = CheckRecord(
                page.id,
                started_at,
                _ms_since(started),
                "error",
                fetch_mode=failure.mode,
                status=failure.status,
                error=failure.reason,
                change=self._failure(state, failure),
            )
        except Exception as exc:  # a bug must not stop the other checks
            log.exception("check of %s failed unexpectedly", page.id)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            record = CheckRecord(page.id, started_at, _ms_since(started), "error", error=reason)
        else:
            record = self._compare(page, state, observation, started_at, _ms_since(started))
        if record.change and self.route:
            record = replace(record, deliveries=self.route(page, record.change.severity))
        recorded = await asyncio.to_thread(self.store.record_check, record)
        return CheckResult(
            page,
            record.outcome,  # type: ignore[arg-type]
            record.duration_ms,
            severity=record.change.severity if record.change else None,
            change_id=recorded.change_id,
            summary=record.change.summary if record.change else _quiet_summary(record),
            error=record.error,
            fetch_mode=record.fetch_mode,
        )

    def _compare(
        self,
        page: Page,
        state: PageState,
        observation: Observation,
        started_at: datetime,
        duration_ms: int,
    ) -> CheckRecord:
        """The check's record when the page answered: first, unchanged or changed."""
        capture, text = observation.capture, observation.extraction.text
        change = None
        if state.text is None:
            outcome = "first"
        elif state.text == text:
            outcome = "unchanged"
            if self._was_failing(state):
                change = _change("recovery", "minor", [self._recovered(state)])
        else:
            outcome = "changed"
            assessment = assess(state.text, text, watch=page.decl.watch)
            reasons = list(assessment.reasons)
            if self._was_failing(state):
                reasons.append(self._recovered(state))
            change = NewChange(
                kind="content",
                severity=assessment.severity,
                summary="; ".join(reasons[:3]),
                reasons=reasons,
                terms=list(assessment.terms),
                diff=[hunk.to_json() for hunk in assessment.hunks],
            )
        return CheckRecord(
            page.id,
            started_at,
            duration_ms,
            outcome,
            fetch_mode=capture.mode,
            status=capture.status,
            text=None if outcome == "unchanged" else text,
            final_url=capture.final_url,
            change=change,
        )

    def _failure(self, state: PageState, failure: PageFailure) -> NewChange | None:
        """A page that worked and now fails (after the retry) is a critical change, once:
        when its failures in a row reach `failures_before_alert`."""
        if state.version_id is None or state.consecutive_failures + 1 != self.failures_before_alert:
            return None
        reason = (
            f"page now answers {failure.status}"
            if failure.status
            else f"page can no longer be read: {failure.reason}"
        )
        if failure.status and failure.reason not in reason:
            reason += f" ({failure.reason})"
        return _change("failure", "critical", [reason])

    def _was_failing(self, state: PageState) -> bool:
        return (
            state.last_outcome == "error"
            and state.consecutive_failures >= self.failures_before_alert
        )

    @staticmethod
    def _recovered(state: PageState) -> str:
        return (
            f"recovered: the page answers again after {state.consecutive_failures} failed check(s)"
        )


class Observer:
    """Fetch and extract one page: the part of a check that looks at the live page."""

    def __init__(self, fetcher: Fetcher, *, retry_delay: float = 2.0) -> None:
        self.fetcher = fetcher
        self.retry_delay = retry_delay

    async def observe(self, page: Page, last_mode: str | None = None) -> Observation:
        """Fetch and extract, choosing the browser for `auto` pages whose text needs scripts
        (`last_mode`: the mode that worked last time). A failure is retried once."""
        mode: FetchMode
        if page.decl.fetch == "auto":
            mode = "browser" if last_mode == "browser" or page.decl.wait_for else "http"
        else:
            mode = page.decl.fetch
        try:
            observation = await self._observe(page, mode)
        except PageFailure:  # confirm a failure before it counts
            await asyncio.sleep(self.retry_delay)
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
