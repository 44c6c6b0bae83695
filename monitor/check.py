"""One check = fetch → extract → compare → store; many checks with bounded concurrency.

The CLI, the scheduler and tests all run checks through `Checker`. A check records exactly
one of: first, unchanged, changed (with a change), or error (a page that worked and now
fails, confirmed by a retry, is also a `failure` change, once).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

from monitor.churn import mask
from monitor.compare import Assessment, assess, capped, diff_blocks, with_reason
from monitor.compare import failure as failure_assessment
from monitor.extract import (
    Extraction,
    SelectorMissing,
    compress,
    decompress,
    extract,
    fingerprint,
    normalise_url,
    source,
)
from monitor.fetch import Capture, Fetcher, FetchError, FetchMode
from monitor.store import (
    CheckRecord,
    NewChange,
    PageState,
    RecordedCheck,
    Store,
    VersionRow,
    content_hash,
)
from monitor.store.models import utcnow
from monitor.targets import Page

log = logging.getLogger(__name__)

Status = Literal["first", "unchanged", "changed", "error"]
# Names the destinations (key, label, when due) that want a change of a page at a severity.
Router = Callable[[Page, str], tuple[tuple[str, str, datetime], ...]]
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
        if "matches nothing" in self.reason or self.reason.startswith("session expired"):
            return self.reason
        return f"page cannot be reached: {self.reason}"


@dataclass(frozen=True)
class Observation:
    capture: Capture
    extraction: Extraction
    raw_hash: str  # of the page's source, which the text was read from
    source: bytes | None = None  # `extract.source` of the page, kept with a new version


def raw_hash(final_url: str, page_source: bytes) -> str:
    """What the text of a fetch depends on besides the page's rules: its source (the page as
    extraction reads it, script bodies aside) and its URL."""
    digest = hashlib.sha256(final_url.encode())
    digest.update(b"\n")
    digest.update(page_source)
    return digest.hexdigest()


def store_reason(exc: SQLAlchemyError) -> str:
    """The database's own first line of an error, for people."""
    cause = getattr(exc, "orig", None) or exc
    return str(cause).strip().splitlines()[0][:300] if str(cause).strip() else type(cause).__name__


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _new_change(kind: str, assessment: Assessment) -> NewChange:
    return NewChange(
        kind=kind,
        severity=assessment.severity,
        summary=assessment.summary,
        reasons=list(assessment.reasons),
        terms=list(assessment.terms),
        diff=[hunk.to_json() for hunk in assessment.hunks],
    )


def _summary(record: CheckRecord) -> str:
    if record.change:
        return record.change.summary
    if record.outcome == "first" and record.text is not None:
        return f"first version: {len(record.text.splitlines())} blocks"
    return record.error or "no change"


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

    return before != after and key(before) != key(after)


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
        confirm_delay: float | None = None,
        variant_window: timedelta = VARIANT_WINDOW,
    ) -> None:
        self.store = store
        self.concurrency = concurrency
        self.route = route
        self.failures_before_alert = failures_before_alert
        self.observer = Observer(fetcher, retry_delay=retry_delay)
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
        return await self.check_each(pages, on_result)

    async def check_each(
        self, pages: Sequence[Page], on_result: Callable[[CheckResult], None] | None = None
    ) -> list[CheckResult]:
        """`check_all` for pages already in the store (`Store.sync_pages`)."""
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
            reason = f"could not use the store: {store_reason(exc)}"
            log.error("page %s: %s", page.id, reason)
            return CheckResult(page, "error", _ms_since(started), error=reason, summary=reason)

    async def _check(self, page: Page) -> CheckResult:
        started_at = utcnow()
        started = time.perf_counter()
        state = await asyncio.to_thread(self._state, page, started_at)
        # A page that worked last time gets a second try before its failure counts.
        worked = state.text is not None and state.last_outcome != "error"
        note, kept = None, None
        try:
            observation = await self.observer.observe(page, state, retry=worked)
            record, note, kept = await self._judge(page, state, observation, started_at, started)
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
        if record.change and self.route:
            record = replace(record, deliveries=self.route(page, record.change.severity))
        recorded = await asyncio.to_thread(self._record, record, kept)
        return CheckResult(
            page,
            record.outcome,  # type: ignore[arg-type]
            record.duration_ms,
            severity=record.change.severity if record.change else None,
            change_id=recorded.change_id,
            summary=note or _summary(record),
            error=record.error,
            fetch_mode=record.fetch_mode,
        )

    def _record(self, record: CheckRecord, kept: bytes | None) -> RecordedCheck:
        """Compress the page's source to keep, if any, and write the check: one trip to a
        thread (each trip wakes another thread, which costs more than compressing a page)."""
        if kept is not None:
            record = replace(record, capture=compress(kept))
        return self.store.record_check(record)

    def _state(self, page: Page, at: datetime) -> PageState:
        """The page's state, re-baselined if its rules changed: one trip to a thread."""
        return rebaseline(self.store, page, self.store.page_state(page.id), at=at)

    def _failure(self, state: PageState, failure: PageFailure) -> NewChange | None:
        """A page that worked and now fails is a critical change, once: when its failures in
        a row reach `failures_before_alert`. Later failing checks add no change."""
        if state.text is None or state.consecutive_failures + 1 != self.failures_before_alert:
            return None
        return _new_change("failure", failure_assessment(failure.change_reason))

    async def _judge(
        self,
        page: Page,
        state: PageState,
        observation: Observation,
        started_at: datetime,
        started: float,
    ) -> tuple[CheckRecord, str | None, bytes | None]:
        """First, unchanged or changed; a real difference is confirmed by a second fetch.
        Also returns a note for the summary when a difference was not confirmed, and the
        page's source to keep with a new version (compressed on the way to the store)."""
        change, note = None, None
        recovering = state.last_outcome == "error" and state.consecutive_failures > 0
        if state.text is None:
            outcome = "first"
        elif not recovering and not _differs(state, observation):
            outcome = "unchanged"
        else:
            assessment = await asyncio.to_thread(self._assess, page, state, observation, started_at)
            if _differs(state, observation) and assessment.severity != "noise":
                await asyncio.sleep(self.confirm_delay)  # churn alone is not worth a second fetch
                try:
                    again = replace(state, last_mode=observation.capture.mode)
                    second = await self.observer.observe(page, again)
                except PageFailure:
                    second = observation
                if not recovering and not _differs(state, second):
                    note = "difference not confirmed by a second fetch"
                    log.info("page %s: %s", page.id, note)
                    observation, assessment = second, None
                elif _differs_from(observation, second):
                    observation = second
                    assessment = await asyncio.to_thread(
                        self._assess, page, state, observation, started_at
                    )
            if assessment is None:
                outcome = "unchanged"
            elif recovering:
                outcome = "changed"
                failures = state.consecutive_failures
                reason = f"page answers again after {failures} failed check(s)"
                change = _new_change("recovery", with_reason(assessment, "minor", reason))
            else:
                outcome = "changed"
                variant = assessment.reasons[0].startswith(VARIANT_REASON)
                change = _new_change("variant" if variant else "content", assessment)
        capture, text = observation.capture, observation.extraction.text
        stored = outcome != "unchanged"
        record = CheckRecord(
            page.id,
            started_at,
            _ms_since(started),
            outcome,
            fetch_mode=capture.mode,
            status=capture.status,
            text=text if stored else None,
            final_url=capture.final_url,
            change=change,
            fingerprint=fingerprint(page.decl) if stored else None,
            raw_hash=observation.raw_hash,
            etag=capture.etag,
            last_modified=capture.last_modified,
        )
        return record, note, observation.source if stored else None

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


def reextracted(store: Store, page: Page, state: PageState) -> str | None:
    """The current version's capture (the page's source) extracted with the page's current
    rules; None when no capture is kept or the rules select nothing in it."""
    raw = store.capture_of(state.version_id) if state.version_id is not None else None
    if raw is None:
        return None
    try:
        return extract(
            decompress(raw),
            base_url=state.final_url or page.url,
            select=page.decl.select,
            remove=page.decl.remove,
            ignore=page.decl.ignore,
        ).text
    except SelectorMissing:
        log.warning(
            "page %s: select %r matches nothing in the stored page", page.id, page.decl.select
        )
        return None


def rebaseline(
    store: Store, page: Page, state: PageState, *, force: bool = False, at: datetime | None = None
) -> PageState:
    """When the page's rules (or the extractor) changed since its current version was
    stored, extract that version's capture again with the current rules and store the
    result as a technical version, never alerted; the next fetch is then compared with what
    the current rules make of the old page, so only the provider's own edits count."""
    current = fingerprint(page.decl)
    if state.version_id is None or (state.fingerprint == current and not force):
        return state
    text = reextracted(store, page, state)
    if text is None:  # nothing to extract again: adopt the rules as they are
        store.set_fingerprint(state.version_id, current)
        return state
    for phrase in page.decl.expect:
        if phrase.lower() not in text.lower():
            log.warning(
                "page %s: expect phrase %r is not in the page (under the current rules)",
                page.id,
                phrase,
            )
    if text == state.text:
        store.set_fingerprint(state.version_id, current)
        return state
    assert state.text is not None
    reason = (
        "technical: the page's declaration or the extractor changed; "
        "the stored page was extracted again"
    )
    hunks = [hunk.to_json() for hunk in diff_blocks(state.text, text)]
    change = NewChange(
        kind="technical", severity="noise", summary=reason, reasons=[reason], terms=[], diff=hunks
    )
    store.record_technical(page.id, text, current, at or utcnow(), change)
    log.info("page %s: technical version after a declaration change", page.id)
    return store.page_state(page.id)


class Observer:
    """Fetch and extract one page: the part of a check that looks at the live page."""

    def __init__(self, fetcher: Fetcher, *, retry_delay: float = 2.0) -> None:
        self.fetcher = fetcher
        self.retry_delay = retry_delay

    async def observe(
        self, page: Page, known: PageState | None = None, *, retry: bool = False
    ) -> Observation:
        """Fetch and extract, choosing the browser for `auto` pages whose text needs scripts
        (`known`: the page's state, with the mode that worked last time). With `retry`, a
        failure is tried once more before it is raised."""
        mode: FetchMode
        if page.decl.fetch == "auto":
            last_mode = known.last_mode if known else None
            mode = "browser" if last_mode == "browser" or page.decl.wait_for else "http"
        else:
            mode = page.decl.fetch
        try:
            observation = await self._observe(page, mode, known)
        except PageFailure:
            if not retry:
                raise
            await asyncio.sleep(self.retry_delay)
            observation = await self._observe(page, mode, known)
        if (
            page.decl.fetch == "auto"
            and mode == "http"
            and (observation is None or observation.extraction.script_wall)
        ):
            observation = await self._observe(page, "browser")
        if observation is None:
            raise PageFailure(f'select "{page.decl.select}" matches nothing', mode=mode)
        return observation

    async def _observe(
        self, page: Page, mode: FetchMode, known: PageState | None = None
    ) -> Observation | None:
        """None when `select` matched nothing (the caller decides whether a browser helps).
        A page whose raw bytes are those of the last fetch (or that the server says has not
        changed) is not read again: its text is the known one."""
        last = known if known is not None and known.text is not None else None
        try:
            capture = await self.fetcher.fetch(
                page,
                mode,
                etag=last.etag if last else None,
                last_modified=last.last_modified if last else None,
            )
        except FetchError as exc:
            raise PageFailure(exc.reason, status=exc.status, mode=exc.mode) from None
        if last and last.text is not None and capture.not_modified and last.raw_hash:
            return Observation(capture, Extraction(last.text), last.raw_hash)  # no trip
        try:
            return await asyncio.to_thread(self._read, page, capture, last)
        except SelectorMissing:
            return None

    @staticmethod
    def _read(page: Page, capture: Capture, last: PageState | None) -> Observation:
        """Hash the page's source and, unless it is the last one, extract its text: one trip
        to a thread for both (each trip wakes another thread, which costs more than hashing)."""
        page_source = source(capture.html)
        digest = raw_hash(capture.final_url, page_source)
        if last and last.text is not None and digest == last.raw_hash:
            return Observation(capture, Extraction(last.text), digest, page_source)
        extraction = extract(
            page_source,
            base_url=capture.final_url,
            select=page.decl.select,
            remove=page.decl.remove,
            ignore=page.decl.ignore,
        )
        return Observation(capture, extraction, digest, page_source)
