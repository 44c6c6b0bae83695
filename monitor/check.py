"""One check = fetch → extract → compare → store; many checks with bounded concurrency.

The CLI, the scheduler and tests all run checks through `Checker`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from monitor.churn import mask
from monitor.compare import Assessment, assess, capped, with_reason
from monitor.compare import failure as compare_failure
from monitor.extract import Extraction, SelectorMissing, extract, normalise_url
from monitor.fetch import Capture, Fetcher, FetchError, FetchMode
from monitor.store import CheckRecord, NewChange, PageState, Store, VersionRow, content_hash
from monitor.store.models import utcnow
from monitor.targets import Page

log = logging.getLogger(__name__)

Status = Literal["first", "unchanged", "changed", "error"]
# A page returning to a text it showed within this window is an A/B variant, not news.
VARIANT_WINDOW = timedelta(days=14)
VARIANT_REASON = "returned to an earlier variant"


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


class PageFailure(Exception):
    """A check that got no usable text: the page failed to load or its structure moved."""

    def __init__(self, reason: str, *, status: int | None = None, mode: str | None = None):
        super().__init__(reason)
        self.reason, self.status, self.mode = reason, status, mode

    @property
    def change_reason(self) -> str:
        """The reason as a change names it: what the page does now."""
        if self.status and self.status >= 400:
            return f"page now answers {self.status}"
        if "matches nothing" in self.reason:
            return self.reason
        return f"page cannot be reached: {self.reason}"


def _new_change(kind: str, assessment: Assessment) -> NewChange:
    return NewChange(
        kind=kind,
        severity=assessment.severity,
        summary=assessment.summary,
        reasons=list(assessment.reasons),
        terms=list(assessment.terms),
        diff=[hunk.to_json() for hunk in assessment.hunks],
    )


def _differs(state: PageState, observation: Observation) -> bool:
    moved = bool(state.final_url) and _moved(state.final_url or "", observation.capture.final_url)
    return state.text != observation.extraction.text or moved


def _differs_from(first: Observation, second: Observation) -> bool:
    return (first.extraction.text, first.capture.final_url) != (
        second.extraction.text,
        second.capture.final_url,
    )


def _moved(before: str, after: str) -> bool:
    """A different page, not the same one under another scheme, locale or trailing slash."""

    def key(url: str) -> str:
        parts = urlsplit(normalise_url(url, url) or url)
        return mask(f"{parts.hostname or ''}{parts.path.rstrip('/')}").lower()

    return key(before) != key(after)


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
        confirm_delay: float | None = None,
        variant_window: timedelta = VARIANT_WINDOW,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.concurrency = concurrency
        self.confirm_delay = (
            float(os.environ.get("MONITOR_CONFIRM_DELAY", "1"))
            if confirm_delay is None
            else confirm_delay
        )
        self.variant_window = variant_window

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
        """Check one page and record the outcome; never raises for a page's own failure."""
        started_at = utcnow()
        started = time.perf_counter()
        state = await asyncio.to_thread(self.store.page_state, page.id)

        def elapsed() -> int:
            return round((time.perf_counter() - started) * 1000)

        try:
            observation = await self._observe_retrying(page, state)
            if isinstance(observation, PageFailure):
                return await self._record_failure(page, state, observation, started_at, elapsed)
            observation, outcome = await self._judge(page, state, observation, started_at)
        except Exception as exc:  # a bug must not stop the other checks
            log.exception("check of %s failed unexpectedly", page.id)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            record = CheckRecord(page.id, started_at, elapsed(), "error", error=reason)
            await asyncio.to_thread(self.store.record_check, record)
            return CheckResult(page, "error", record.duration_ms, error=reason, summary=reason)

        capture, text = observation.capture, observation.extraction.text
        status, summary, change = outcome
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
            severity=change.severity if change else None,
            change_id=recorded.change_id,
            summary=summary,
            fetch_mode=capture.mode,
        )

    async def _observe_retrying(self, page: Page, state: PageState) -> Observation | PageFailure:
        """A page that worked last time gets a second try before its failure counts."""
        try:
            return await self.observe(page, state)
        except PageFailure as failure:
            if state.text is None or state.last_outcome == "error":
                return failure
        await asyncio.sleep(self.confirm_delay)
        try:
            return await self.observe(page, state)
        except PageFailure as failure:
            return failure

    async def _record_failure(
        self,
        page: Page,
        state: PageState,
        failure: PageFailure,
        started_at: datetime,
        elapsed: Callable[[], int],
    ) -> CheckResult:
        """An error check; the first failure of a page that worked is also a critical change."""
        change = None
        if state.text is not None and state.last_outcome != "error":
            assessment = compare_failure(failure.change_reason)
            change = _new_change("failure", assessment)
        record = CheckRecord(
            page.id,
            started_at,
            elapsed(),
            "error",
            fetch_mode=failure.mode,
            status=failure.status,
            error=failure.reason,
            change=change,
        )
        recorded = await asyncio.to_thread(self.store.record_check, record)
        return CheckResult(
            page,
            "error",
            record.duration_ms,
            severity=change.severity if change else None,
            change_id=recorded.change_id,
            error=failure.reason,
            summary=failure.reason,
            fetch_mode=failure.mode,
        )

    async def _judge(
        self, page: Page, state: PageState, observation: Observation, started_at: datetime
    ) -> tuple[Observation, tuple[Status, str, NewChange | None]]:
        """Decide first / unchanged / changed, confirming a difference with a second fetch."""
        text = observation.extraction.text
        if state.text is None:
            return observation, ("first", f"first version: {len(text.splitlines())} blocks", None)
        recovering = state.last_outcome == "error" and state.consecutive_failures > 0
        if not recovering and not _differs(state, observation):
            return observation, ("unchanged", "no change", None)
        assessment = await asyncio.to_thread(self._assess, page, state, observation, started_at)
        if _differs(state, observation) and assessment.severity != "noise":
            await asyncio.sleep(self.confirm_delay)  # churn alone is not worth a second fetch
            try:
                second = await self.observe(page, state)
            except PageFailure:
                second = observation
            if not recovering and not _differs(state, second):
                return second, ("unchanged", "difference not confirmed by a second fetch", None)
            if _differs_from(observation, second):
                observation = second
                assessment = await asyncio.to_thread(
                    self._assess, page, state, observation, started_at
                )
        kind = "content"
        if recovering:
            kind = "recovery"
            failures = state.consecutive_failures
            assessment = with_reason(
                assessment, "minor", f"page answers again after {failures} failed check(s)"
            )
        elif assessment.reasons[0].startswith(VARIANT_REASON):
            kind = "variant"
        return observation, ("changed", assessment.summary, _new_change(kind, assessment))

    def _assess(
        self, page: Page, state: PageState, observation: Observation, started_at: datetime
    ) -> Assessment:
        assert state.text is not None
        text, final_url = observation.extraction.text, observation.capture.final_url
        assessment = assess(state.text, text, watch=page.decl.watch, expect=page.decl.expect)
        if state.final_url and _moved(state.final_url, final_url):
            reason = f"now redirects to a different page: {state.final_url} → {final_url}"
            assessment = with_reason(assessment, "critical", reason)
        if text != state.text:
            earlier = self._recent_variant(page.id, text, state, started_at)
            if earlier is not None:
                seen = f"{earlier.last_seen:%Y-%m-%d %H:%M} UTC"
                reason = f"{VARIANT_REASON}, version {earlier.id} (last seen {seen})"
                assessment = capped(assessment, "minor", reason)
        return assessment

    def _recent_variant(
        self, page_id: str, text: str, state: PageState, now: datetime
    ) -> VersionRow | None:
        """An earlier version with this exact text, seen within the variant window."""
        digest = content_hash(text)
        return next(
            (
                version
                for version in self.store.versions(page_id)
                if version.content_hash == digest
                and version.id != state.version_id
                and now - version.last_seen <= self.variant_window
            ),
            None,
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
            raise PageFailure(f'select "{page.decl.select}" matches nothing', mode=mode)
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
