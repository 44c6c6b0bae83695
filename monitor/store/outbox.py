"""The outbox: delivery rows written with their change, claimed and settled by the notifier.

States: `pending` → `sending` (committed before the message goes out) → `sent`, or `failed`
(retried with backoff). A `sending` row older than the lease means the process died while
sending: it becomes `uncertain` and is never re-sent by itself, so no alert goes out twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, insert, select, update

from monitor.store.models import ChangeRow, DeliveryRow

if TYPE_CHECKING:
    from monitor.store import Store

BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=6)
_INSERT_DELIVERIES = insert(DeliveryRow.__table__)  # built once, as the store's statements are


def add(
    connection: Connection,
    change_id: int,
    destinations: Iterable[tuple[str, str, datetime]],
    now: datetime,
) -> None:
    """Pending deliveries of a change, inside the transaction that records the change; each
    becomes due at its own time (now, or a digest's)."""
    rows = [
        {
            "change_id": change_id,
            "destination": key,
            "label": label,
            "state": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": due,
        }
        for key, label, due in destinations
    ]
    if rows:
        connection.execute(_INSERT_DELIVERIES, rows)


def claim_due(store: Store, keys: Iterable[str], now: datetime) -> list[DeliveryRow]:
    """Take the deliveries that are due for the configured destinations, marking them
    `sending` (committed) so that no other process sends them too."""
    keys = list(keys)
    if not keys:
        return []
    with store.session() as session:
        candidates = list(
            session.scalars(
                select(DeliveryRow.id)
                .where(
                    DeliveryRow.destination.in_(keys),
                    DeliveryRow.state.in_(("pending", "failed")),
                    DeliveryRow.next_attempt_at <= now,
                )
                .order_by(DeliveryRow.id)
            )
        )
    claimed = []
    for delivery_id in candidates:
        with store.session() as session:
            result = session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id, DeliveryRow.state.in_(("pending", "failed")))
                .values(state="sending", sending_since=now, attempts=DeliveryRow.attempts + 1)
            )
            if result.rowcount == 1:
                claimed.append(session.get(DeliveryRow, delivery_id))
    return [row for row in claimed if row is not None]


def settle(store: Store, ids: list[int], now: datetime, error: str | None = None) -> None:
    """Record the outcome of one send: `sent`, or `failed` with the next attempt backed off."""
    with store.session() as session:
        for row in session.scalars(select(DeliveryRow).where(DeliveryRow.id.in_(ids))):
            row.sending_since = None
            if error is None:
                row.state, row.sent_at, row.last_error = "sent", now, None
            else:
                row.state, row.last_error = "failed", error[:1000]
                row.next_attempt_at = now + min(
                    BACKOFF_FIRST * 2 ** max(row.attempts - 1, 0), BACKOFF_MAX
                )


def resolve_stale(store: Store, now: datetime, lease: timedelta) -> int:
    """`sending` rows older than the lease: their sender died mid-send; mark them uncertain."""
    with store.session() as session:
        result = session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.state == "sending", DeliveryRow.sending_since < now - lease)
            .values(
                state="uncertain",
                last_error="the sender stopped while sending; "
                "check the destination, then `monitor deliveries --resend ID` if it is missing",
            )
        )
        return result.rowcount


def resend(store: Store, delivery_id: int, now: datetime) -> bool:
    """Put an uncertain or failed delivery back in the queue (a person decided to)."""
    with store.session() as session:
        result = session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == delivery_id, DeliveryRow.state.in_(("uncertain", "failed")))
            .values(state="pending", next_attempt_at=now)
        )
        return result.rowcount == 1


def listing(store: Store, states: tuple[str, ...]) -> list[tuple[DeliveryRow, ChangeRow]]:
    with store.session() as session:
        rows = session.execute(
            select(DeliveryRow, ChangeRow)
            .join(ChangeRow, ChangeRow.id == DeliveryRow.change_id)
            .where(DeliveryRow.state.in_(states))
            .order_by(DeliveryRow.id)
        )
        return [(delivery, change) for delivery, change in rows]


def open_by_page(store: Store) -> dict[str, int]:
    """Undelivered alerts (pending, sending or failed) per page."""
    with store.session() as session:
        rows = session.execute(
            select(ChangeRow.page_id, func.count())
            .join(DeliveryRow, DeliveryRow.change_id == ChangeRow.id)
            .where(DeliveryRow.state.in_(("pending", "sending", "failed")))
            .group_by(ChangeRow.page_id)
        )
        return {page_id: count for page_id, count in rows}
