"""Notifications: route changes to Apprise destinations and deliver them from the outbox.

At check time `route` names the destinations that want a change; the delivery rows are
written in the same transaction as the change (monitor/store/outbox.py). `flush` then sends
what is due, one message per destination (a listing when many changes go to one place),
and records each outcome; a destination that is down is retried with backoff on later runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from monitor.compare import Hunk, severity_rank
from monitor.notify.destinations import Destination, DestinationError, load_destinations, redact
from monitor.notify.message import Alert, render, title
from monitor.store import Store, outbox
from monitor.store.models import ChangeRow, PageRow, utcnow
from monitor.targets import Page

__all__ = [
    "Destination",
    "DestinationError",
    "FlushReport",
    "Notifier",
    "load_destinations",
    "redact",
]

log = logging.getLogger(__name__)

SENDING_LEASE = timedelta(minutes=10)
_NOTIFY_TYPE = {"critical": "failure", "relevant": "warning"}  # Apprise's NotifyType values


@dataclass
class FlushReport:
    sent: int = 0
    failed: int = 0
    uncertain: int = 0

    def describe(self) -> str:
        words = [f"{self.sent} sent"]
        if self.failed:
            words.append(f"{self.failed} failed (retried on a later run)")
        if self.uncertain:
            words.append(f"{self.uncertain} uncertain (see `monitor deliveries`)")
        return "alerts: " + ", ".join(words)


class Notifier:
    def __init__(
        self,
        destinations: list[Destination],
        *,
        base_url: str | None = None,
        pages: list[Page] | None = None,
        sending_lease: timedelta = SENDING_LEASE,
    ) -> None:
        self.destinations = {d.key: d for d in destinations}
        self.base_url = base_url
        self.pages = {page.id: page for page in pages or []}
        self.sending_lease = sending_lease
        # Outcomes of sends that could not be recorded (the store was away): recorded first
        # at the next flush, so that a delivered alert ends `sent`, not `uncertain`.
        self._unrecorded: list[tuple[list[int], datetime, str | None]] = []

    def route(self, page: Page, severity: str) -> tuple[tuple[str, str, datetime], ...]:
        """(key, label, when due) of every destination that wants a change of this page and
        severity."""
        now = utcnow()
        routed = ((d, d.due(severity, page.all_tags, now)) for d in self.destinations.values())
        return tuple((d.key, d.label, due) for d, due in routed if due is not None)

    def flush(self, store: Store) -> FlushReport:
        """Send every due delivery of the configured destinations; record each outcome."""
        while self._unrecorded:
            outbox.settle(store, *self._unrecorded[0])
            self._unrecorded.pop(0)
        now = utcnow()
        report = FlushReport(uncertain=outbox.resolve_stale(store, now, self.sending_lease))
        claimed = outbox.claim_due(store, self.destinations, now)
        by_destination: dict[str, list] = {}
        for delivery in claimed:
            by_destination.setdefault(delivery.destination, []).append(delivery)
        for key, deliveries in by_destination.items():
            destination = self.destinations[key]
            alerts = self._alerts(store, [d.change_id for d in deliveries])
            error = self._send(destination, alerts)
            outcome = ([d.id for d in deliveries], utcnow(), error)
            try:
                outbox.settle(store, *outcome)
            except SQLAlchemyError:
                self._unrecorded.append(outcome)
                raise
            if error is None:
                report.sent += len(deliveries)
            else:
                report.failed += len(deliveries)
                log.warning("alert to %s failed: %s", destination.label, error)
        return report

    def test(self) -> list[tuple[str, str | None]]:
        """Send a test message to every destination: (label, error or None)."""
        results = []
        for destination in self.destinations.values():
            body = "This is a test from optout-monitor: this destination receives its alerts."
            results.append(
                (
                    destination.label,
                    self._deliver(destination, "optout-monitor test", body, "text", "info"),
                )
            )
        return results

    def _send(self, destination: Destination, alerts: list[Alert]) -> str | None:
        fmt = destination.body_format
        worst = max(alerts, key=lambda alert: severity_rank(alert.severity))
        return self._deliver(
            destination,
            title(alerts),
            render(alerts, fmt, self.base_url),
            fmt,
            _NOTIFY_TYPE.get(worst.severity, "info"),
        )

    @staticmethod
    def _deliver(
        destination: Destination, subject: str, body: str, fmt: str, notify_type: str
    ) -> str | None:
        """Send one message; None when the service accepted it, else the (scrubbed) reason."""
        import apprise  # loaded already: the destination was made by it

        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            try:
                accepted = destination.apprise.notify(
                    body=body,
                    title=subject,
                    body_format=fmt,
                    notify_type=apprise.NotifyType(notify_type),
                )
            except Exception as exc:  # a plugin bug must not lose the outbox state
                accepted, captured_error = False, f"{type(exc).__name__}: {exc}"
            else:
                captured_error = ""
            logged = captured.getvalue().strip()
        if accepted:
            return None
        reason = (logged.splitlines()[-1] if logged else captured_error) or "the service refused"
        return destination.scrub(reason)[:500]

    def _alerts(self, store: Store, change_ids: list[int]) -> list[Alert]:
        alerts = []
        with store.session() as session:
            for change_id in change_ids:
                change = session.get(ChangeRow, change_id)
                if change is None:
                    continue
                row = session.get(PageRow, change.page_id)
                page = self.pages.get(change.page_id)
                alerts.append(
                    Alert(
                        change_id=change.id,
                        severity=change.severity,
                        kind=change.kind,
                        provider=page.provider if page else (row.provider if row else "?"),
                        page_id=change.page_id,
                        page_title=page.label
                        if page
                        else ((row.title or row.id) if row else change.page_id),
                        url=page.url if page else (row.url if row else ""),
                        guide=page.decl.guide if page else None,
                        reasons=tuple(change.reasons),
                        hunks=tuple(Hunk.from_json(h) for h in change.diff),
                        watch=page.decl.watch if page else (),
                        detected_at=change.detected_at,
                    )
                )
        return alerts
