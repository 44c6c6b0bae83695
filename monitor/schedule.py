"""`monitor run`: APScheduler runs each page's check on its interval, for months.

Each page is one APScheduler job (interval + jitter, one instance at a time, missed runs
coalesced). When a job fires it claims the page through the store (monitor/store/leases.py),
so several instances sharing PostgreSQL check each page once per interval; a sweeper job
takes over pages whose checker died. Targets are reloaded when their files change (or on
SIGHUP); SIGTERM/SIGINT stop taking work, let running checks finish within a grace period,
and close the browser.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import random
import signal
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor import metrics
from monitor.check import Checker, store_reason
from monitor.fetch import Fetcher
from monitor.notify import Notifier
from monitor.store import Store, leases
from monitor.store.models import utcnow
from monitor.targets import Page, TargetError, load_targets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaemonSettings:
    targets_dir: Path
    concurrency: int = 8
    browser_pages: int = 4
    timeout: float = 30.0
    grace: float = 30.0
    jitter: float = 0.1  # fraction of a page's interval, capped at max_jitter
    max_jitter: float = 300.0
    stagger: float = 1.0  # seconds between overdue pages at start
    host_gap: float = 1.0
    reload_every: float = 5.0
    lease: float | None = None  # default: long enough for a check and its retry
    health: tuple[str, int] | None = ("127.0.0.1", 9108)  # /healthz and /metrics
    failures_before_alert: int = 1  # failed checks in a row before a page's failure alert
    retry_every: float = 60.0  # seconds between retries of undelivered alerts


class InstanceLocked(RuntimeError):
    """Another `monitor run` already uses this SQLite store."""


def lock_sqlite(db_url: str) -> IO[str] | None:
    """SQLite serves one daemon: hold an exclusive lock file beside the database."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(f"{url.database}.run.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise InstanceLocked(
            f"{url.database} is already used by `monitor run` ({holder}); SQLite serves one "
            "instance: use PostgreSQL (--db postgresql://...) to run several"
        ) from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    return handle


class Daemon:
    def __init__(
        self, store: Store, settings: DaemonSettings, notifier: Notifier | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.notifier = notifier
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**6):06x}"
        self.pages: dict[str, Page] = {}
        self.running: set[asyncio.Task[Any]] = set()
        self.stopping = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.started_at = utcnow()
        self.last_tick: datetime | None = None
        self._targets_stamp: tuple[Any, ...] = ()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._fetcher: Fetcher | None = None
        self._checker: Checker | None = None
        self.health_address: tuple[str, int] | None = None

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease or self.settings.timeout * 3 + 30)

    # -- life cycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT (or `stop()`)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)
        self.load_targets(initial=True)
        async with Fetcher(
            timeout=self.settings.timeout,
            browser_pages=self.settings.browser_pages,
            host_gap=self.settings.host_gap,
        ) as fetcher:
            self._fetcher = fetcher
            self._checker = Checker(
                self.store,
                fetcher,
                concurrency=self.settings.concurrency,
                route=self.notifier.route if self.notifier else None,
                failures_before_alert=self.settings.failures_before_alert,
            )
            self._scheduler.start()
            self._scheduler.add_job(
                self._sweep,
                IntervalTrigger(seconds=self._sweep_every()),
                id="sweep",
                coalesce=True,
                max_instances=1,
            )
            if self.notifier is not None:
                self._scheduler.add_job(
                    self._deliver,
                    IntervalTrigger(seconds=self.settings.retry_every),
                    id="deliver",
                    coalesce=True,
                    max_instances=1,
                )
            log.info("monitor run started: %d pages, instance %s", len(self.pages), self.owner)
            health = self._serve_health()
            await self._watch_targets()
            log.info(
                "stopping: %d check(s) running, waiting up to %gs",
                len(self.running),
                self.settings.grace,
            )
            self._scheduler.pause()  # no new checks; running ones get the grace period
            await self._drain()
            self._scheduler.shutdown(wait=False)
            if health is not None:
                server, thread = health
                server.should_exit = True
                await asyncio.to_thread(thread.join, 5)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        log.info("monitor run stopped")

    def _serve_health(self) -> Any:
        """Serve /healthz and /metrics on the configured local address, from a thread of
        its own (so a slow scrape never delays checks, and signals stay with the daemon)."""
        if self.settings.health is None:
            return None
        import uvicorn

        host, port = self.settings.health
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
        except OSError as exc:
            listener.close()
            raise OSError(
                f"cannot serve /healthz and /metrics on {host}:{port}: {exc.strerror}"
            ) from exc
        config = uvicorn.Config(metrics.health_app(self), log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, name="health", daemon=True
        )
        thread.start()
        self.health_address = listener.getsockname()[:2]
        log.info("health and metrics on http://%s:%d/healthz and /metrics", *self.health_address)
        return server, thread

    def stop(self) -> None:
        self.stopping.set()

    async def _drain(self) -> None:
        """Let running checks finish within the grace period, then abandon the rest; an
        abandoned check writes nothing (its transaction never started or rolls back)."""
        if self.running:
            _, pending = await asyncio.wait(set(self.running), timeout=self.settings.grace)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("abandoned %d check(s) after the grace period", len(pending))
                await asyncio.wait(pending, timeout=5)

    async def _watch_targets(self) -> None:
        while not self.stopping.is_set():
            self.last_tick = utcnow()
            waiters = {
                asyncio.ensure_future(self.stopping.wait()),
                asyncio.ensure_future(self.reload_requested.wait()),
            }
            await asyncio.wait(
                waiters, timeout=self.settings.reload_every, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()
            if self.stopping.is_set():
                return
            forced = self.reload_requested.is_set()
            self.reload_requested.clear()
            reload = forced or self._stamp() != self._targets_stamp
            try:
                if reload:
                    self.load_targets()
                metrics.refresh_store_gauges(self.store, list(self.pages.values()))
            except SQLAlchemyError as exc:  # a database restart must not end the daemon
                if reload:
                    self._targets_stamp = ()  # reload once the store answers again
                log.warning("the store is not answering: %s", store_reason(exc))

    # -- targets ---------------------------------------------------------------------------

    def _stamp(self) -> tuple[Any, ...]:
        directory = self.settings.targets_dir
        try:
            return tuple(
                sorted(
                    (p.name, p.stat().st_mtime_ns, p.stat().st_size)
                    for p in directory.iterdir()
                    if p.suffix in (".yaml", ".yml")
                )
            )
        except OSError:
            return ()

    def load_targets(self, *, initial: bool = False) -> None:
        """(Re)load declarations; a broken edit is reported and the last good set kept."""
        stamp = self._stamp()
        try:
            pages = {page.id: page for page in load_targets(self.settings.targets_dir)}
        except TargetError as exc:
            if initial:
                raise
            self._targets_stamp = stamp
            log.error(
                "targets not reloaded, keeping the last good set (%d pages): %s",
                len(self.pages),
                "; ".join(exc.problems),
            )
            metrics.RELOAD_FAILURES.inc()
            return
        self._targets_stamp = stamp
        self.store.sync_pages(pages.values())
        old = self.pages
        self.pages = pages
        if self.notifier is not None:
            self.notifier.pages = dict(pages)
        for page_id in old.keys() - pages.keys():
            with suppress(Exception):
                self._scheduler.remove_job(page_id)
        changed = [
            p
            for p in pages.values()
            if p.id not in old or old[p.id].declaration_hash != p.declaration_hash
        ]
        self._schedule(changed)
        if not initial:
            log.info(
                "targets reloaded: %d pages (%d new or changed, %d removed)",
                len(pages),
                len(changed),
                len(old.keys() - pages.keys()),
            )

    def _schedule(self, pages: list[Page]) -> None:
        """One job per page; overdue pages start soon, spread over a short window (at most
        `stagger` seconds apart, and all within their shortest interval or 30 s); others
        when due."""
        now = utcnow()
        known = leases.due_times(self.store)
        first_due: dict[str, datetime] = {}
        due_at: dict[str, datetime] = {}
        for page in pages:
            next_due, last_checked = known.get(page.id, (None, None))
            interval = timedelta(seconds=page.interval_seconds)
            due_at[page.id] = next_due or (last_checked + interval if last_checked else now)
            if next_due is None:
                first_due[page.id] = due_at[page.id]
        overdue = sorted((p for p in pages if due_at[p.id] <= now), key=lambda p: p.id)
        if overdue:
            window = min(30.0, min(p.interval_seconds for p in overdue))
            gap = min(self.settings.stagger, window / len(overdue))
            for position, page in enumerate(overdue):
                due_at[page.id] = now + timedelta(seconds=gap * position + random.random() * gap)
        for page in pages:
            start = due_at[page.id]
            jitter = min(page.interval_seconds * self.settings.jitter, self.settings.max_jitter)
            self._scheduler.add_job(
                self._run_page,
                IntervalTrigger(seconds=page.interval_seconds, jitter=jitter or None),
                args=[page.id],
                id=page.id,
                name=page.id,
                next_run_time=start,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
                replace_existing=True,
            )
        leases.set_due(self.store, first_due)

    # -- checks ----------------------------------------------------------------------------

    def _sweep_every(self) -> float:
        return max(2.0, min(30.0, self.lease.total_seconds() / 4))

    async def _sweep(self) -> None:
        """Take over pages whose checker died (lease expired, page overdue)."""
        for page_id in await asyncio.to_thread(
            leases.abandoned, self.store, utcnow(), list(self.pages)
        ):
            log.warning("page %s: its last check was abandoned; checking it now", page_id)
            await self._run_page(page_id)

    async def _run_page(self, page_id: str) -> None:
        page = self.pages.get(page_id)
        if page is None or self.stopping.is_set() or self._checker is None:
            return
        task = asyncio.current_task()
        assert task is not None
        self.running.add(task)
        try:
            await self._claimed_check(page)
        except asyncio.CancelledError:
            log.warning("page %s: check abandoned at shutdown; nothing of it was stored", page_id)
        except SQLAlchemyError as exc:  # claiming or releasing it: the page is tried again
            log.error("page %s: could not use the store: %s", page_id, store_reason(exc))
        finally:
            self.running.discard(task)

    async def _claimed_check(self, page: Page) -> None:
        assert self._checker is not None
        now = utcnow()
        tolerance = timedelta(
            seconds=min(page.interval_seconds * self.settings.jitter, self.settings.max_jitter) + 1
        )
        claimed = await asyncio.to_thread(
            leases.claim,
            self.store,
            page.id,
            self.owner,
            now,
            lease=self.lease,
            tolerance=tolerance,
        )
        if not claimed:
            return
        next_due: datetime | None = None
        try:
            async with self._slots:
                result = await self._checker.check(page)
            next_due = now + timedelta(seconds=page.interval_seconds)
            metrics.observe(result)
            if result.change_id is not None and self.notifier is not None:
                await self._deliver()
            log.info(
                "page %s: %s",
                page.id,
                result.status,
                extra={
                    "page": page.id,
                    "status": result.status,
                    "severity": result.severity,
                    "change_id": result.change_id,
                    "duration_ms": result.duration_ms,
                    "error": result.error,
                },
            )
        finally:
            await asyncio.shield(
                asyncio.to_thread(leases.release, self.store, page.id, self.owner, next_due)
            )

    async def _deliver(self) -> None:
        """Send due alerts (this check's, and retries of earlier ones)."""
        assert self.notifier is not None
        try:
            report = await asyncio.to_thread(self.notifier.flush, self.store)
        except SQLAlchemyError as exc:  # they wait in the outbox for the store to answer
            log.warning("alerts wait: the store is not answering: %s", store_reason(exc))
            return
        if report.sent or report.failed or report.uncertain:
            log.info(
                report.describe(),
                extra={"sent": report.sent, "failed": report.failed, "uncertain": report.uncertain},
            )
