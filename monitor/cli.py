"""The `monitor` command line: a thin front-end over targets, checks and the store."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from sqlalchemy.exc import SQLAlchemyError

from monitor import auth, logs
from monitor.check import Checker, CheckResult, store_reason
from monitor.fetch import DEFAULT_TIMEOUT, Fetcher, FetchError
from monitor.fetch.browser import BrowserPool
from monitor.fetch.install import BrowserUnavailable
from monitor.notify import SENDING_LEASE, DestinationError, Notifier, load_destinations
from monitor.spread import PAGES_PER_PROCESS, RemoteBrowser, Spread, process_count
from monitor.store import DEFAULT_DB, Store, StoreError, outbox, redact_url
from monitor.store.models import iso, utcnow
from monitor.targets import Page, TargetError, load_targets, select_pages

EXIT_OK, EXIT_UNCHECKED, EXIT_USAGE = 0, 1, 2

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from monitor.tryout import Tryout


# rich and what draws with it are imported when first used: `check-now --json` never needs
# them, and importing them took 15 ms of every start (a start is serial: it delays every
# process of a check-now).
@cache
def out() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _table(title: str) -> Table:
    from rich.table import Table

    return Table(title=title, title_justify="left")


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err().print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    sys.exit(code)


def targets_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--targets",
        "targets_dir",
        envvar="MONITOR_TARGETS",
        default="targets",
        show_default=True,
        type=click.Path(path_type=Path),
        help="Directory of target files (MONITOR_TARGETS).",
    )(func)


def db_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db",
        "db_url",
        envvar="MONITOR_DB",
        default=DEFAULT_DB,
        show_default=True,
        help="SQLAlchemy database URL (MONITOR_DB).",
    )(func)


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(
        func
    )


def fetch_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """How many checks and browser pages at once, and how long a fetch may take."""
    options = (
        click.option(
            "--concurrency",
            default=8,
            show_default=True,
            type=click.IntRange(1, 256),
            help="Checks running at the same time.",
        ),
        click.option(
            "--browser-pages",
            default=4,
            show_default=True,
            type=click.IntRange(1, 64),
            help="Browser pages open at the same time (one Chromium is shared).",
        ),
        click.option(
            "--timeout",
            default=DEFAULT_TIMEOUT,
            show_default=True,
            type=click.FloatRange(1, 600),
            help="Seconds allowed for one fetch.",
        ),
    )
    for option in reversed(options):
        func = option(func)
    return func


def notify_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--no-notify", is_flag=True, help="Record changes but send no alert.")(func)
    return click.option(
        "--notify",
        "notify_urls",
        multiple=True,
        envvar="MONITOR_NOTIFY",
        help="Apprise URL, or path of an Apprise YAML/TEXT config; repeatable (MONITOR_NOTIFY: "
        "separated by spaces).",
    )(func)


def make_notifier(
    notify_urls: tuple[str, ...], no_notify: bool, pages: list[Page]
) -> Notifier | None:
    """The configured destinations, or None when alerts are off or none are configured."""
    if no_notify or not notify_urls:
        return None
    try:
        destinations = load_destinations(notify_urls)
    except DestinationError as exc:
        _fail(str(exc))
    lease = float(os.environ.get("MONITOR_DELIVERY_LEASE", SENDING_LEASE.total_seconds()))
    return Notifier(
        destinations,
        base_url=os.environ.get("MONITOR_BASE_URL"),
        pages=pages,
        sending_lease=timedelta(seconds=lease),
    )


def load_pages(targets_dir: Path, ids: tuple[str, ...] = ()) -> list[Page]:
    try:
        return select_pages(load_targets(targets_dir), ids)
    except TargetError as exc:
        for problem in exc.problems:
            err().print(f"[red]error:[/red] {problem}", markup=True, highlight=False)
        err().print(f"{len(exc.problems)} problem(s) in the target files; nothing was checked.")
        sys.exit(EXIT_USAGE)


def open_store(db_url: str) -> Store:
    try:
        return Store(db_url)
    except StoreError as exc:
        _fail(str(exc), EXIT_UNCHECKED)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="MONITOR_LOG_FORMAT",
    show_default=True,
    help="Log lines as text or JSON.",
)
@click.version_option(package_name="optout-monitor")
def main(verbose: int, log_format: str) -> None:
    """Watch providers' privacy and settings pages and report changes to opt-out wording."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logs.configure(level, log_format)


def _processes(_ctx: click.Context, _param: click.Parameter, value: str) -> int | None:
    if value == "auto":
        return None
    if value.isdigit() and 1 <= int(value) <= 64:
        return int(value)
    raise click.BadParameter(f"{value!r} is not 'auto' or a number of processes from 1 to 64")


@main.command("check-now")
@click.argument("ids", nargs=-1)
@targets_option
@db_option
@json_option
@fetch_options
@click.option(
    "--retry-delay",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0, 300),
    help="Seconds before a failed fetch is tried again (a failure counts only if "
    "the retry fails too).",
)
@click.option(
    "--processes",
    default="auto",
    show_default=True,
    callback=_processes,
    help="Processes sharing the pages that need no browser, each with --concurrency checks "
    f"(the browser stays in one). auto: two per core, given {PAGES_PER_PROCESS} such pages "
    "per process. Linux only; elsewhere 1.",
)
@notify_options
def check_now(
    ids: tuple[str, ...],
    targets_dir: Path,
    db_url: str,
    as_json: bool,
    concurrency: int,
    browser_pages: int,
    timeout: float,
    retry_delay: float,
    processes: int | None,
    notify_urls: tuple[str, ...],
    no_notify: bool,
) -> None:
    """Check all pages (or the IDS named) once, store what changed, and report.

    Exit status: 0 every page was checked, 1 at least one could not be, 2 usage or target
    file error (nothing checked).
    """
    pages = load_pages(targets_dir, ids)
    notifier = make_notifier(notify_urls, no_notify, pages)
    store = open_store(db_url)
    checker = partial(
        Checker,
        concurrency=concurrency,
        route=notifier.route if notifier else None,
        retry_delay=retry_delay,
    )
    try:
        spread = _spread(store, pages, process_count(pages, processes), checker, timeout)
        results = asyncio.run(
            _run_checks(store, pages, as_json, browser_pages, timeout, checker, spread)
        )
        if notifier is not None:  # this run's alerts, and any left from earlier runs
            err().print(notifier.flush(store).describe())
    except SQLAlchemyError as exc:  # checks report their own; this is the rest (page list)
        _fail(f"could not use the store {redact_url(db_url)}: {store_reason(exc)}", EXIT_UNCHECKED)
    finally:
        store.close()
    if not as_json:
        _summary(results)
    sys.exit(EXIT_UNCHECKED if any(r.status == "error" for r in results) else EXIT_OK)


def _spread(
    store: Store,
    pages: list[Page],
    processes: int,
    checker: Callable[[Store, Fetcher], Checker],
    timeout: float,
) -> Spread | None:
    """With more than one process: the pages in the store, then the helpers forked (before
    the event loop starts), each checking its share with its own store and HTTP client."""
    if processes == 1:
        return None
    store.sync_pages(pages)
    write_turn = store.share_write_turn()

    async def check_share(
        share: list[Page], browser: RemoteBrowser, on_result: Callable[[CheckResult], None]
    ) -> None:
        own = Store(store.url, upgrade=False, write_turn=write_turn)
        _check_threads(own)
        try:
            async with Fetcher(timeout=timeout, browser=browser) as fetcher:
                await checker(own, fetcher).check_each(share, on_result)
        finally:
            own.close()

    return Spread(pages, processes, check_share)


async def _run_checks(
    store: Store,
    pages: list[Page],
    as_json: bool,
    browser_pages: int,
    timeout: float,
    checker: Callable[[Store, Fetcher], Checker],
    spread: Spread | None,
) -> list[CheckResult]:
    _check_threads(store)
    browser = BrowserPool(timeout, browser_pages)
    async with Fetcher(timeout=timeout, browser=browser) as fetcher:
        ours = checker(store, fetcher)

        async def check(on_result: Callable[[CheckResult], None]) -> list[CheckResult]:
            if spread is None:
                return await ours.check_all(pages, on_result)
            return await spread.run(ours.check_each, browser, on_result)

        if as_json:

            def emit(result: CheckResult) -> None:
                sys.stdout.write(json.dumps(result.to_json()) + "\n")
                sys.stdout.flush()

            results = await check(emit)
        elif err().is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            with Progress(
                TextColumn("checking"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=err(),
                transient=True,
            ) as progress:
                task = progress.add_task("", total=len(pages))

                def advance(result: CheckResult) -> None:
                    progress.update(
                        task, advance=1, description=f"{result.page.id}: {result.status}"
                    )

                results = await check(advance)
        else:

            def line(result: CheckResult) -> None:
                err().print(f"{result.page.id}: {result.status} ({result.duration_ms} ms)")

            results = await check(line)
        if browser.choice:
            err().print(f"browser: {browser.choice.describe()}")
        return results


def _check_threads(store: Store) -> None:
    """The threads that run this event loop's checks' parsing and store calls. SQLite takes
    one writer at a time, and the store makes its writers take turns, so more threads only
    contend for the GIL: one thread against asyncio's six took a first run of bench/
    check_now.py's 1,000 pages in 0.85 of the time, two against one 1.12 times as long (six
    rounds each, taken in turn). PostgreSQL keeps asyncio's threads: its round trips overlap."""
    if store.engine.dialect.name == "sqlite":
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="check")
        asyncio.get_running_loop().set_default_executor(thread)


def _summary(results: list[CheckResult]) -> None:
    from monitor.render import severity_text

    table = _table("check-now")
    for column in ("page", "status", "severity", "change", "fetch", "ms", "summary"):
        table.add_column(column, overflow="fold")
    for r in results:
        status_style = {"error": "red", "changed": "yellow", "first": "cyan"}.get(r.status, "")
        table.add_row(
            r.page.id,
            f"[{status_style}]{r.status}[/]" if status_style else r.status,
            severity_text(r.severity),
            str(r.change_id or ""),
            r.fetch_mode or "",
            str(r.duration_ms),
            r.error or r.summary,
        )
    out().print(table)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    out().print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no pages")


def _address(value: str) -> tuple[str, int] | None:
    if value == "off":
        return None
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not host:
        raise click.BadParameter(f"{value!r} is not HOST:PORT (or 'off')")
    return host.strip("[]"), int(port)


@main.command()
@targets_option
@db_option
@fetch_options
@click.option(
    "--grace",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="On SIGTERM/SIGINT, seconds running checks get to finish.",
)
@click.option(
    "--host-gap",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="Minimum seconds between two requests to the same host.",
)
@click.option(
    "--jitter",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 0.5),
    help="Random spread of each page's schedule, as a fraction of its interval.",
)
@click.option(
    "--lease",
    type=click.FloatRange(1, 86400),
    default=None,
    help="Seconds a claimed page stays reserved to this instance [3 × timeout + 30].",
)
@click.option(
    "--health",
    "health",
    default="127.0.0.1:9108",
    show_default=True,
    envvar="MONITOR_HEALTH",
    help="HOST:PORT for /healthz and /metrics, or 'off'.",
)
@click.option(
    "--reload-every",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.2, 3600),
    help="Seconds between looks at the targets directory for edits.",
)
@click.option(
    "--alert-after-failures",
    default=1,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Failed checks in a row (each confirmed by a retry) before a page's failure alert.",
)
@notify_options
def run(
    targets_dir: Path,
    db_url: str,
    concurrency: int,
    browser_pages: int,
    timeout: float,
    grace: float,
    host_gap: float,
    jitter: float,
    lease: float | None,
    health: str,
    reload_every: float,
    alert_after_failures: int,
    notify_urls: tuple[str, ...],
    no_notify: bool,
) -> None:
    """The scheduler daemon: check each page on its interval until stopped.

    Several instances may share one PostgreSQL database: each due page is claimed through
    the database, so it is checked once per interval. SQLite serves one instance.
    Edits under the targets directory (or SIGHUP) reload the pages; SIGTERM/SIGINT stop.
    """
    from monitor.schedule import Daemon, DaemonSettings, InstanceLocked, lock_sqlite

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    pages = load_pages(targets_dir)  # refuse a broken target set before anything starts
    notifier = make_notifier(notify_urls, no_notify, pages)
    try:
        lock = lock_sqlite(db_url)
    except InstanceLocked as exc:
        _fail(str(exc))
    store = open_store(db_url)
    settings = DaemonSettings(
        targets_dir=targets_dir,
        concurrency=concurrency,
        browser_pages=browser_pages,
        timeout=timeout,
        grace=grace,
        host_gap=host_gap,
        jitter=jitter,
        lease=lease,
        health=_address(health),
        reload_every=reload_every,
        failures_before_alert=alert_after_failures,
    )
    try:
        asyncio.run(Daemon(store, settings, notifier).run())
    except OSError as exc:
        _fail(str(exc), EXIT_UNCHECKED)
    finally:
        store.close()
        if lock is not None:
            lock.close()


@main.command()
@targets_option
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port."
)
@click.option(
    "--user-header",
    envvar="MONITOR_WEB_USER_HEADER",
    default=None,
    help="Header holding the user name set by a trusted reverse proxy; when present it "
    "allows marking reviewed without the token (MONITOR_WEB_USER_HEADER). Only use behind "
    "a proxy that sets it on every request.",
)
def serve(targets_dir: Path, db_url: str, host: str, port: int, user_header: str | None) -> None:
    """The web page for reviewing changes: overview, feed, diffs, history, JSON API, Atom.

    Reading is open to whoever reaches HOST:PORT. Marking a change reviewed needs the token
    in MONITOR_WEB_TOKEN (or --user-header); without either, the site is read-only.
    MONITOR_BASE_URL sets the address used in links (the Atom feed, the API).
    """
    import os

    import uvicorn

    from monitor.web.app import WebSettings, create_app

    store = open_store(db_url)
    settings = WebSettings(
        targets_dir=targets_dir,
        token=os.environ.get("MONITOR_WEB_TOKEN") or None,
        user_header=user_header or None,
        base_url=os.environ.get("MONITOR_BASE_URL") or None,
    )
    app = create_app(store, settings)
    writes = "token" if settings.token else "read-only (no MONITOR_WEB_TOKEN)"
    if settings.user_header:
        writes += f", or the {settings.user_header} header"
    err().print(f"serving http://{host}:{port}/ from {redact_url(db_url)}; writes: {writes}")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
    finally:
        store.close()


@main.command()
@targets_option
@db_option
@json_option
def status(targets_dir: Path, db_url: str, as_json: bool) -> None:
    """Per page: last check, outcome, next due, consecutive failures, whether it is running."""
    pages = load_pages(targets_dir)
    store = open_store(db_url)
    rows = {row.id: row for row in store.pages()}
    undelivered = outbox.open_by_page(store)
    now = utcnow()
    report = []
    for page in pages:
        row = rows.get(page.id)
        last = row.last_checked_at if row else None
        due = (row.next_due_at if row and row.next_due_at else None) or (
            last + timedelta(seconds=page.interval_seconds) if last else None
        )
        running = bool(row and row.lease_until and row.lease_until > now)
        report.append(
            {
                "target": page.id,
                "provider": page.provider,
                "last_check": iso(last),
                "outcome": row.last_outcome if row else None,
                "next_due": iso(due),
                "overdue": bool(due and due < now),
                "consecutive_failures": row.consecutive_failures if row else 0,
                "error": row.last_error if row else None,
                "running": running,
                "pending_deliveries": undelivered.get(page.id, 0),
            }
        )
    if as_json:
        for entry in report:
            print(json.dumps(entry))
        return
    table = _table(f"{len(pages)} page(s)")
    columns = (
        "page",
        "last check (UTC)",
        "outcome",
        "next due (UTC)",
        "failures",
        "alerts due",
        "note",
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    for entry in report:
        note = "running" if entry["running"] else (entry["error"] or "")
        due = (entry["next_due"] or "now")[:19].replace("T", " ")
        table.add_row(
            entry["target"],
            (entry["last_check"] or "never")[:19].replace("T", " "),
            entry["outcome"] or "-",
            f"[red]{due}[/]" if entry["overdue"] else due,
            str(entry["consecutive_failures"] or ""),
            str(entry["pending_deliveries"] or ""),
            note,
        )
    out().print(table)


@main.command()
@click.argument("page_id")
@db_option
@json_option
@click.option("--limit", default=20, show_default=True, help="Latest checks shown.")
def history(page_id: str, db_url: str, as_json: bool, limit: int) -> None:
    """The versions, changes and latest checks of one page."""
    from monitor.render import severity_text

    store = open_store(db_url)
    page = store.page(page_id)
    if page is None:
        _fail(f"no page {page_id!r} in the store {db_url} (has it been checked?)")
    versions, changes, checks = (
        store.versions(page_id),
        store.changes(page_id),
        store.checks(page_id, limit),
    )
    if as_json:
        print(
            json.dumps(
                {
                    "page": {
                        "id": page.id,
                        "provider": page.provider,
                        "url": page.url,
                        "title": page.title,
                        "last_checked_at": iso(page.last_checked_at),
                        "last_outcome": page.last_outcome,
                        "consecutive_failures": page.consecutive_failures,
                    },
                    "versions": [
                        {
                            "id": v.id,
                            "first_seen": iso(v.first_seen),
                            "last_seen": iso(v.last_seen),
                            "blocks": len(v.text.splitlines()),
                            "fetch": v.fetch_mode,
                            "final_url": v.final_url,
                        }
                        for v in versions
                    ],
                    "changes": [{**c.to_json(), "diff": c.diff} for c in changes],
                    "checks": [
                        {
                            "id": c.id,
                            "started_at": iso(c.started_at),
                            "outcome": c.outcome,
                            "duration_ms": c.duration_ms,
                            "error": c.error,
                            "change_id": c.change_id,
                        }
                        for c in checks
                    ],
                },
                indent=2,
            )
        )
        return
    out().print(f"[bold]{page.title or page.id}[/bold] ({page.provider})\n{page.url}")
    out().print(
        f"last checked {_when(page.last_checked_at)}: {page.last_outcome or 'never'}"
        + (
            f", failing for {page.consecutive_failures} check(s): {page.last_error}"
            if page.consecutive_failures
            else ""
        )
    )
    table = _table("changes")
    for column in ("id", "detected (UTC)", "severity", "summary"):
        table.add_column(column, overflow="fold")
    for c in changes:
        table.add_row(str(c.id), _when(c.detected_at), severity_text(c.severity), c.summary)
    out().print(table if changes else "no changes recorded")
    table = _table("versions")
    for column in ("id", "first seen", "last seen", "blocks", "fetch"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            str(v.id),
            _when(v.first_seen),
            _when(v.last_seen),
            str(len(v.text.splitlines())),
            v.fetch_mode,
        )
    out().print(table)
    table = _table(f"latest checks (of {store.count_checks(page_id)})")
    for column in ("started (UTC)", "outcome", "ms", "detail"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(
            _when(c.started_at),
            c.outcome,
            str(c.duration_ms),
            c.error or (f"change {c.change_id}" if c.change_id else ""),
        )
    out().print(table)


@main.command()
@click.argument("change_id", type=int)
@db_option
@json_option
def diff(change_id: int, db_url: str, as_json: bool) -> None:
    """One change: its severity, reasons and word-level diff."""
    from monitor.render import render_change

    store = open_store(db_url)
    change = store.change(change_id)
    if change is None:
        _fail(f"no change {change_id} in the store")
    page = store.page(change.page_id)
    assert page is not None
    if as_json:
        print(json.dumps({**change.to_json(), "diff": change.diff}, indent=2))
        return
    out().print(render_change(change, page.title or page.id, page.url))


@main.command("notify-test")
@targets_option
@notify_options
def notify_test(targets_dir: Path, notify_urls: tuple[str, ...], no_notify: bool) -> None:
    """Send a test message to every configured destination and say whether each worked."""
    if not notify_urls:
        _fail("no destination configured: give --notify URL or set MONITOR_NOTIFY")
    notifier = make_notifier(notify_urls, False, [])
    assert notifier is not None
    failures = 0
    for label, error in notifier.test():
        if error is None:
            out().print(f"[green]ok[/green]      {label}")
        else:
            failures += 1
            out().print(f"[red]failed[/red]  {label}: {error}", markup=True)
    sys.exit(EXIT_UNCHECKED if failures else EXIT_OK)


@main.command()
@db_option
@json_option
@click.option("--all", "show_all", is_flag=True, help="Also the deliveries already sent.")
@click.option(
    "--resend",
    type=int,
    metavar="ID",
    help="Queue a failed or uncertain delivery again (after checking it did not arrive).",
)
def deliveries(db_url: str, as_json: bool, show_all: bool, resend: int | None) -> None:
    """Alerts not yet delivered: pending, failed (retried with backoff) and uncertain."""
    store = open_store(db_url)
    if resend is not None:
        if not outbox.resend(store, resend, utcnow()):
            _fail(f"delivery {resend} is not failed or uncertain")
        out().print(f"delivery {resend} queued again; it goes out with the next check-now or run")
        return
    states = ("pending", "sending", "failed", "uncertain") + (("sent",) if show_all else ())
    rows = outbox.listing(store, states)
    if as_json:
        for delivery, change in rows:
            print(
                json.dumps(
                    {
                        "id": delivery.id,
                        "change_id": delivery.change_id,
                        "page_id": change.page_id,
                        "severity": change.severity,
                        "destination": delivery.label,
                        "state": delivery.state,
                        "attempts": delivery.attempts,
                        "next_attempt_at": iso(delivery.next_attempt_at),
                        "sent_at": iso(delivery.sent_at),
                        "last_error": delivery.last_error,
                    }
                )
            )
        return
    table = _table(f"{len(rows)} deliver(ies)")
    for column in (
        "id",
        "change",
        "page",
        "destination",
        "state",
        "tries",
        "next try (UTC)",
        "error",
    ):
        table.add_column(column, overflow="fold")
    for delivery, change in rows:
        table.add_row(
            str(delivery.id),
            str(delivery.change_id),
            change.page_id,
            delivery.label,
            delivery.state,
            str(delivery.attempts),
            _when(delivery.next_attempt_at) if delivery.state == "failed" else "",
            delivery.last_error or "",
        )
    out().print(table)


@main.group()
def targets() -> None:
    """The declared pages: list them, or check the target files."""


@targets.command("list")
@targets_option
@json_option
def targets_list(targets_dir: Path, as_json: bool) -> None:
    """List the declared pages."""
    pages = load_pages(targets_dir)
    if as_json:
        for page in pages:
            print(
                json.dumps(
                    {
                        "id": page.id,
                        "provider": page.provider,
                        "url": page.url,
                        "title": page.decl.title,
                        "fetch": page.decl.fetch,
                        "interval": page.decl.interval,
                        "file": str(page.source),
                    }
                )
            )
        return
    table = _table(f"{len(pages)} page(s) in {targets_dir}")
    for column in ("id", "provider", "fetch", "interval", "url"):
        table.add_column(column, overflow="fold")
    for page in pages:
        table.add_row(page.id, page.provider, page.decl.fetch, page.decl.interval, page.url)
    out().print(table)


@targets.command("validate")
@targets_option
@click.option(
    "--db",
    "db_url",
    envvar="MONITOR_DB",
    default=None,
    help="Store to read for warnings (MONITOR_DB; default: the default store if it exists).",
)
def targets_validate(targets_dir: Path, db_url: str | None) -> None:
    """Check the target files; exit 2 with every problem named when one is invalid.

    With a store, also warn about `expect` phrases missing from the last stored version and
    selectors that matched nothing at the last check (warnings keep the exit status 0).
    """
    from monitor.target_health import stored_warnings

    pages = load_pages(targets_dir)
    files = {page.source for page in pages}
    out().print(f"ok: {len(pages)} page(s) in {len(files)} file(s)")
    if db_url is None and Path(DEFAULT_DB.removeprefix("sqlite:///")).is_file():
        db_url = DEFAULT_DB
    if db_url is None:
        return
    try:
        store = Store(db_url)
    except StoreError as exc:
        err().print(f"[yellow]warning:[/yellow] no stored history read: {exc}", markup=True)
        return
    try:
        warnings = stored_warnings(store, pages)
    finally:
        store.close()
    for warning in warnings:
        err().print(f"[yellow]warning:[/yellow] {warning}", markup=True, highlight=False)
    if warnings:
        err().print(f"{len(warnings)} warning(s) from the stored history")


@targets.command("try")
@click.argument("id_or_url")
@targets_option
@json_option
@click.option("--fetch", type=click.Choice(["auto", "http", "browser"]), help="Fetch mode.")
@click.option("--select", help="CSS selector of the part that counts (replaces the declared).")
@click.option("--remove", multiple=True, help="CSS selector to drop (repeatable).")
@click.option("--ignore", multiple=True, help="Regex whose matches never count (repeatable).")
@click.option("--wait-for", help="CSS selector the browser waits for.")
@click.option("--watch", multiple=True, help="Extra opt-out term (repeatable).")
@click.option("--expect", multiple=True, help="Phrase a guide relies on (repeatable).")
@click.option(
    "--timeout",
    default=DEFAULT_TIMEOUT,
    show_default=True,
    type=click.FloatRange(1, 600),
    help="Seconds allowed for the fetch.",
)
def targets_try(
    id_or_url: str, targets_dir: Path, as_json: bool, timeout: float, **overrides: Any
) -> None:
    """Fetch a declared page (or any URL) once and show what the declaration makes of it.

    Shows the extracted text, what select/remove/ignore took away, the opt-out terms and
    `expect` phrases found. Options replace the declared rules, to try a change before
    writing it down. Nothing is stored. Exit 1 when the page cannot be fetched or its
    select matches nothing, 2 on a usage or target-file error.
    """
    from monitor.tryout import page_to_try, render_tryout

    pages = [] if "://" in id_or_url else load_pages(targets_dir)
    try:
        page = page_to_try(pages, id_or_url, overrides, targets_dir)
    except TargetError as exc:
        _fail(exc.problems[0])
    try:
        result = asyncio.run(_try_once(page, timeout))
    except (FetchError, BrowserUnavailable) as exc:
        _fail(f"{page.url}: {exc}", EXIT_UNCHECKED)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        out().print(render_tryout(result))
    sys.exit(EXIT_UNCHECKED if result.inspection.select_missing else EXIT_OK)


async def _try_once(page: Page, timeout: float) -> Tryout:
    from monitor.tryout import try_page

    async with Fetcher(timeout=timeout, browser_pages=1) as fetcher:
        return await try_page(page, fetcher)


@main.command()
@click.option(
    "--install",
    is_flag=True,
    help="Install Chromium when none is found (playwright install, else apt-get as root).",
)
def browser(install: bool) -> None:
    """Show which Chromium the monitor will use (and install one with --install)."""
    from monitor.fetch.install import BrowserUnavailable, ensure_browser, find_browser

    try:
        choice = ensure_browser(err().print) if install else find_browser()
    except BrowserUnavailable as exc:
        _fail(str(exc), EXIT_UNCHECKED)
    out().print(f"browser: {choice.describe()}")


@main.command()
def demo() -> None:
    """See the whole loop offline: a local page is checked, changed, and the change shown."""
    from monitor.demo import run_demo
    from monitor.render import render_change

    def show(store: Store, change_id: int) -> None:
        change = store.change(change_id)
        page = store.page(change.page_id) if change else None
        if change and page:
            out().print(render_change(change, page.title or page.id, page.url))

    run_demo(out().print, show)


@targets.command("reextract")
@click.argument("ids", nargs=-1)
@targets_option
@db_option
def targets_reextract(ids: tuple[str, ...], targets_dir: Path, db_url: str) -> None:
    """Extract the stored pages again with the current rules (after editing select, remove
    or ignore, or after an upgrade), storing technical versions where the text moves.
    Nothing is fetched and nothing is alerted."""
    from monitor.check import rebaseline

    pages = load_pages(targets_dir, ids)
    store = open_store(db_url)
    table = _table("extracted again")
    for column in ("page", "result"):
        table.add_column(column)
    moved = 0
    for page in pages:
        before = store.page_state(page.id)
        if before.version_id is None:
            table.add_row(page.id, "[dim]never checked[/dim]")
            continue
        after = rebaseline(store, page, before, force=True)
        if after.version_id != before.version_id:
            moved += 1
            table.add_row(
                page.id, f"[yellow]text moved[/yellow]: technical version {after.version_id}"
            )
        elif store.capture_of(before.version_id) is None:
            table.add_row(page.id, "[dim]no stored capture[/dim]")
        else:
            table.add_row(page.id, "unchanged")
    store.close()
    out().print(table)
    out().print(f"{moved} of {len(pages)} page(s) read differently under the current rules")


@main.group()
def db() -> None:
    """The store itself: copy it to another database."""


@db.command("copy")
@click.argument("source_url")
@click.argument("dest_url")
def db_copy(source_url: str, dest_url: str) -> None:
    """Copy the whole store at SOURCE_URL into the empty database at DEST_URL.

    Every table, ids unchanged (PostgreSQL id sequences are moved past them), in one
    transaction: e.g. from sqlite:///snapshots/monitor.db to postgresql://user@host/monitor.
    Stop `monitor run` on the source first.
    """
    from monitor.schedule import InstanceLocked, lock_sqlite
    from monitor.store.copy import CopyRefused, TableCopied, copy_store

    try:
        lock = lock_sqlite(source_url)
    except InstanceLocked as exc:
        _fail(f"{exc}; stop it before copying")

    def copied(table: TableCopied) -> None:
        err().print(f"{table.name}: {table.rows} row(s)")

    try:
        tables = copy_store(source_url, dest_url, copied)
    except CopyRefused as exc:
        _fail(str(exc))
    except StoreError as exc:
        _fail(str(exc), EXIT_UNCHECKED)
    finally:
        if lock is not None:
            lock.close()
    total = sum(table.rows for table in tables)
    out().print(
        f"copied {total} row(s) in {len(tables)} table(s) from {redact_url(source_url)} "
        f"to {redact_url(dest_url)}"
    )


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else "never"


@main.group("auth")
def auth_group() -> None:
    """Saved browser sessions for settings pages behind a login (contents never shown)."""


@auth_group.command("save")
@click.argument("name")
@click.option("--url", "login_url", required=True, help="The provider's login page.")
@click.option(
    "--wait-for",
    "done_selector",
    help="CSS selector that appears once logged in; without it, close the window when done.",
)
@click.option("--headless", is_flag=True, help="No visible window (needs --wait-for).")
@click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(1, 3600))
def auth_save(
    name: str, login_url: str, done_selector: str | None, headless: bool, timeout: float
) -> None:
    """Open a browser at LOGIN_URL, log in with a test account, and save the session as NAME."""
    if headless and not done_selector:
        _fail("--headless needs --wait-for: nobody can close an invisible window")
    try:
        path = asyncio.run(
            auth.save_session(
                name, login_url, done_selector=done_selector, headless=headless, timeout=timeout
            )
        )
    except auth.AuthError as exc:
        _fail(str(exc))
    out().print(f"saved session {name!r} to {path} (owner-only)")


@auth_group.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def auth_import(name: str, file: Path) -> None:
    """Take a Playwright storage-state FILE exported elsewhere and save it as NAME."""
    try:
        path = auth.import_state(name, file)
    except auth.AuthError as exc:
        _fail(str(exc))
    out().print(f"imported session {name!r} to {path} (owner-only)")


@auth_group.command("list")
@targets_option
@json_option
def auth_list(targets_dir: Path, as_json: bool) -> None:
    """Saved sessions: name, age and the pages that use them."""
    pages_by_auth: dict[str, list[str]] = {}
    if targets_dir.is_dir():
        for page in load_pages(targets_dir):
            if page.decl.auth:
                pages_by_auth.setdefault(page.decl.auth, []).append(page.id)
    for session in auth.list_sessions(pages_by_auth):
        saved = session.age_seconds >= 0
        if as_json:
            age = round(session.age_seconds) if saved else None
            print(json.dumps({"name": session.name, "age_seconds": age, "pages": session.pages}))
        else:
            age_text = f"{session.age_seconds / 3600:.1f}h old" if saved else "NOT SAVED"
            out().print(f"{session.name}  {age_text}  pages: {', '.join(session.pages) or '-'}")
