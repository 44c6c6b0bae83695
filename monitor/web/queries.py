"""Reads and the one write of the review pages, in as few queries as each page needs.

Everything here works on the store alone; what only the target files know (title, guide,
expect) is joined in by the caller, so pages no longer declared still show their history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, case, cast, func, or_, select, update

from monitor.store import Store
from monitor.store.models import ChangeRow, CheckRow, PageRow, VersionRow, utcnow
from monitor.targets import Page

NOTIFIED = ("relevant", "critical")
PER_PAGE = 50


@dataclass(frozen=True)
class PageSummary:
    row: PageRow
    unreviewed: int
    unreviewed_notified: int
    last_change: ChangeRow | None
    stored: bool = True  # False: declared, but the store has never seen it

    @property
    def status(self) -> str:
        """`never` (not checked yet), `failing` (last check failed) or `ok`."""
        if self.row.last_checked_at is None:
            return "never"
        return "failing" if self.row.consecutive_failures else "ok"


@dataclass(frozen=True)
class FeedFilter:
    severity: tuple[str, ...] = ()
    provider: str | None = None
    page_id: str | None = None
    reviewed: bool | None = None
    q: str | None = None
    page: int = 1
    per_page: int = PER_PAGE


@dataclass(frozen=True)
class FeedItem:
    change: ChangeRow
    provider: str
    title: str | None


@dataclass(frozen=True)
class Feed:
    items: list[FeedItem]
    total: int
    filter: FeedFilter

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.filter.per_page))


@dataclass(frozen=True)
class ChangeDetail:
    change: ChangeRow
    page: PageRow
    before: VersionRow | None
    after: VersionRow | None
    previous_id: int | None
    next_id: int | None


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # version | change | failure
    item: Any


@dataclass(frozen=True)
class PageHistory:
    page: PageRow
    versions: list[VersionRow]
    changes: list[ChangeRow]
    failures: list[CheckRow]
    checks: int

    @property
    def timeline(self) -> list[TimelineEntry]:
        """Newest first: when each version first appeared, each change, each failed check."""
        entries = [TimelineEntry(v.first_seen, "version", v) for v in self.versions]
        entries += [TimelineEntry(c.detected_at, "change", c) for c in self.changes]
        entries += [TimelineEntry(c.started_at, "failure", c) for c in self.failures]
        order = {"change": 0, "version": 1, "failure": 2}
        return sorted(entries, key=lambda e: (e.at, -order[e.kind]), reverse=True)


def overview(store: Store, declared: Mapping[str, Page] | None = None) -> list[PageSummary]:
    """Every page in the store with its unreviewed counts and its latest change, and the
    declared pages the store does not know yet (never checked)."""
    unreviewed = ChangeRow.reviewed_at.is_(None)
    with store.session() as session:
        pages = list(session.scalars(select(PageRow).order_by(PageRow.provider, PageRow.id)))
        counts = {
            page_id: (total, notified or 0)
            for page_id, total, notified in session.execute(
                select(
                    ChangeRow.page_id,
                    func.count(),
                    func.sum(case((ChangeRow.severity.in_(NOTIFIED), 1), else_=0)),
                )
                .where(unreviewed)
                .group_by(ChangeRow.page_id)
            )
        }
        latest_ids = select(func.max(ChangeRow.id)).group_by(ChangeRow.page_id)
        latest = {
            change.page_id: change
            for change in session.scalars(select(ChangeRow).where(ChangeRow.id.in_(latest_ids)))
        }
    summaries = [
        PageSummary(page, *counts.get(page.id, (0, 0)), latest.get(page.id)) for page in pages
    ]
    known = {page.id for page in pages}
    summaries += [
        PageSummary(
            PageRow(
                id=p.id, provider=p.provider, url=p.url, title=p.decl.title, consecutive_failures=0
            ),
            0,
            0,
            None,
            stored=False,
        )
        for p in (declared or {}).values()
        if p.id not in known
    ]
    return sorted(summaries, key=lambda s: (s.row.provider, s.row.id))


def _feed_query(query: Select[Any], wanted: FeedFilter) -> Select[Any]:
    if wanted.severity:
        query = query.where(ChangeRow.severity.in_(wanted.severity))
    if wanted.provider:
        query = query.where(PageRow.provider == wanted.provider)
    if wanted.page_id:
        query = query.where(ChangeRow.page_id == wanted.page_id)
    if wanted.reviewed is not None:
        reviewed_at = ChangeRow.reviewed_at
        query = query.where(reviewed_at.is_not(None) if wanted.reviewed else reviewed_at.is_(None))
    if wanted.q:
        pattern = "%" + wanted.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (
                        ChangeRow.summary,
                        ChangeRow.page_id,
                        ChangeRow.review_note,
                        PageRow.title,
                        PageRow.provider,
                        cast(ChangeRow.diff, Text),
                    )
                )
            )
        )
    return query


def feed(store: Store, wanted: FeedFilter) -> Feed:
    """One page of changes, newest first, with the number of all that match."""
    joined = select(ChangeRow, PageRow.provider, PageRow.title).join(
        PageRow, PageRow.id == ChangeRow.page_id
    )
    counted = (
        select(func.count()).select_from(ChangeRow).join(PageRow, PageRow.id == ChangeRow.page_id)
    )
    with store.session() as session:
        total = session.scalar(_feed_query(counted, wanted)) or 0
        rows = session.execute(
            _feed_query(joined, wanted)
            .order_by(ChangeRow.detected_at.desc(), ChangeRow.id.desc())
            .offset((wanted.page - 1) * wanted.per_page)
            .limit(wanted.per_page)
        )
        items = [FeedItem(change, provider, title) for change, provider, title in rows]
    return Feed(items, total, wanted)


def providers(store: Store) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(PageRow.provider).distinct().order_by(PageRow.provider)))


def unreviewed_total(store: Store) -> int:
    with store.session() as session:
        return (
            session.scalar(
                select(func.count()).select_from(ChangeRow).where(ChangeRow.reviewed_at.is_(None))
            )
            or 0
        )


def change_detail(store: Store, change_id: int) -> ChangeDetail | None:
    """A change with its page, both versions and its neighbours on the same page."""
    with store.session() as session:
        change = session.get(ChangeRow, change_id)
        if change is None:
            return None
        page = session.get(PageRow, change.page_id)
        assert page is not None  # changes cascade with their page
        same_page = ChangeRow.page_id == change.page_id
        previous_id = session.scalar(
            select(func.max(ChangeRow.id)).where(same_page, ChangeRow.id < change.id)
        )
        next_id = session.scalar(
            select(func.min(ChangeRow.id)).where(same_page, ChangeRow.id > change.id)
        )
        before = session.get(VersionRow, change.from_version_id) if change.from_version_id else None
        after = session.get(VersionRow, change.to_version_id) if change.to_version_id else None
        return ChangeDetail(change, page, before, after, previous_id, next_id)


def page_history(store: Store, page_id: str, failures: int = 200) -> PageHistory | None:
    """A page's versions, changes and (latest) failed checks."""
    with store.session() as session:
        page = session.get(PageRow, page_id)
        if page is None:
            return None
        versions = list(
            session.scalars(
                select(VersionRow).where(VersionRow.page_id == page_id).order_by(VersionRow.id)
            )
        )
        changes = list(
            session.scalars(
                select(ChangeRow)
                .where(ChangeRow.page_id == page_id)
                .order_by(ChangeRow.detected_at.desc(), ChangeRow.id.desc())
            )
        )
        failed = list(
            session.scalars(
                select(CheckRow)
                .where(CheckRow.page_id == page_id, CheckRow.outcome == "error")
                .order_by(CheckRow.started_at.desc())
                .limit(failures)
            )
        )
        checks = (
            session.scalar(
                select(func.count()).select_from(CheckRow).where(CheckRow.page_id == page_id)
            )
            or 0
        )
    return PageHistory(page, versions, changes, failed, checks)


def mark_reviewed(store: Store, change_id: int, reviewer: str, note: str | None) -> bool:
    """Record who reviewed a change, when, and their note; False when there is no such change."""
    with store.session() as session:
        result = session.execute(
            update(ChangeRow)
            .where(ChangeRow.id == change_id)
            .values(reviewed_at=utcnow(), reviewed_by=reviewer, review_note=note or None)
        )
        return result.rowcount > 0
