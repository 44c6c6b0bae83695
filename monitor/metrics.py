"""Prometheus metrics of the daemon, and its /healthz and /metrics endpoints."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import select

from monitor.store.models import PageRow, utcnow

if TYPE_CHECKING:
    from monitor.check import CheckResult
    from monitor.schedule import Daemon
    from monitor.store import Store
    from monitor.targets import Page

CHECKS = Counter("monitor_checks_total", "Checks by outcome", ["outcome"])
CHANGES = Counter("monitor_changes_total", "Recorded changes by severity", ["severity"])
CHECK_SECONDS = Histogram(
    "monitor_check_duration_seconds",
    "Duration of one check (fetch included)",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
PAGES_OVERDUE = Gauge(
    "monitor_pages_overdue", "Pages past their due time by more than their jitter"
)
PAGES = Gauge("monitor_pages", "Declared pages")
RELOAD_FAILURES = Counter("monitor_target_reload_failures_total", "Target edits refused on reload")


def observe(result: CheckResult) -> None:
    CHECKS.labels(result.status).inc()
    CHECK_SECONDS.observe(result.duration_ms / 1000)
    if result.severity:
        CHANGES.labels(result.severity).inc()


def refresh_store_gauges(store: Store, pages: list[Page]) -> None:
    """Gauges read from the store (shared by all instances)."""
    now = utcnow()
    by_id = {page.id: page for page in pages}
    with store.session() as session:
        rows = session.execute(
            select(PageRow.id, PageRow.next_due_at).where(PageRow.id.in_(list(by_id)))
        )
        overdue = sum(
            1
            for row in rows
            if row.next_due_at is not None and row.next_due_at + _slack(by_id[row.id]) < now
        )
    PAGES.set(len(pages))
    PAGES_OVERDUE.set(overdue)


def _slack(page: Page) -> timedelta:
    return timedelta(seconds=max(60.0, page.interval_seconds * 0.1))


def health_app(daemon: Daemon) -> Any:
    """A small ASGI app: /healthz (is the loop alive?) and /metrics (Prometheus)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def healthz(request: Request) -> Response:
        now = utcnow()
        alive = daemon.last_tick is not None and (now - daemon.last_tick).total_seconds() < max(
            30.0, daemon.settings.reload_every * 3
        )
        status = "stopping" if daemon.stopping.is_set() else ("ok" if alive else "stalled")
        body = {
            "status": status,
            "instance": daemon.owner,
            "pages": len(daemon.pages),
            "running": len(daemon.running),
            "started_at": daemon.started_at.isoformat(),
        }
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics)])
