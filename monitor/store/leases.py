"""Claims on due pages, so that several `monitor run` instances check each page once.

A claim is one conditional UPDATE: it succeeds only when the page is due (within a
tolerance, for scheduler jitter) and nobody holds a live lease on it. The lease is released
when the check is recorded, and the page's next due time set; an instance killed mid-check
leaves an expired lease and an overdue page, which any instance claims again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from monitor.store import Store
from monitor.store.models import PageRow


def claim(
    store: Store,
    page_id: str,
    owner: str,
    now: datetime,
    *,
    lease: timedelta,
    tolerance: timedelta = timedelta(0),
) -> bool:
    """Take the page for one check if it is due and free; True when this instance got it."""
    with store.session() as session:
        result = session.execute(
            update(PageRow)
            .where(
                PageRow.id == page_id,
                or_(PageRow.next_due_at.is_(None), PageRow.next_due_at <= now + tolerance),
                or_(PageRow.lease_until.is_(None), PageRow.lease_until < now),
            )
            .values(lease_owner=owner, lease_until=now + lease)
        )
        return result.rowcount == 1


def release(store: Store, page_id: str, owner: str, next_due: datetime | None) -> None:
    """Give the page back; `next_due` None leaves it due (the check did not happen)."""
    values: dict[str, object] = {"lease_owner": None, "lease_until": None}
    if next_due is not None:
        values["next_due_at"] = next_due
    with store.session() as session:
        session.execute(
            update(PageRow)
            .where(PageRow.id == page_id, PageRow.lease_owner == owner)
            .values(**values)
        )


def set_due(store: Store, due: dict[str, datetime]) -> None:
    """First due times for pages that have none yet (new pages, or a store from check-now)."""
    with store.session() as session:
        for page_id, when in due.items():
            session.execute(
                update(PageRow)
                .where(PageRow.id == page_id, PageRow.next_due_at.is_(None))
                .values(next_due_at=when)
            )


def abandoned(store: Store, now: datetime, page_ids: list[str]) -> list[str]:
    """Pages overdue whose lease has run out: their checker died; they are free to take."""
    with store.session() as session:
        return list(
            session.scalars(
                select(PageRow.id).where(
                    PageRow.id.in_(page_ids),
                    PageRow.next_due_at < now,
                    and_(PageRow.lease_until.is_not(None), PageRow.lease_until < now),
                )
            )
        )


def due_times(store: Store) -> dict[str, tuple[datetime | None, datetime | None]]:
    """Each page's (next due, last checked)."""
    with store.session() as session:
        rows = session.execute(select(PageRow.id, PageRow.next_due_at, PageRow.last_checked_at))
        return {row.id: (row.next_due_at, row.last_checked_at) for row in rows}
