"""The `monitor` command line: a thin front-end over targets, checks and the store."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from monitor.check import Checker, CheckResult
from monitor.fetch import DEFAULT_TIMEOUT, Fetcher, FetchError
from monitor.fetch.install import BrowserUnavailable
from monitor.render import render_change, severity_text
from monitor.store import DEFAULT_DB, Store, StoreError
from monitor.target_health import stored_warnings
from monitor.targets import Page, TargetError, load_targets, select_pages
from monitor.tryout import Tryout, page_to_try, render_tryout, try_page

EXIT_OK, EXIT_UNCHECKED, EXIT_USAGE = 0, 1, 2

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
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


def load_pages(targets_dir: Path, ids: tuple[str, ...] = ()) -> list[Page]:
    try:
        return select_pages(load_targets(targets_dir), ids)
    except TargetError as exc:
        for problem in exc.problems:
            err.print(f"[red]error:[/red] {problem}", markup=True, highlight=False)
        err.print(f"{len(exc.problems)} problem(s) in the target files; nothing was checked.")
        sys.exit(EXIT_USAGE)


def open_store(db_url: str) -> Store:
    try:
        return Store(db_url)
    except StoreError as exc:
        _fail(str(exc), EXIT_UNCHECKED)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="optout-monitor")
def main(verbose: int) -> None:
    """Watch providers' privacy and settings pages and report changes to opt-out wording."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@main.command("check-now")
@click.argument("ids", nargs=-1)
@targets_option
@db_option
@json_option
@click.option(
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Pages checked at the same time.",
)
@click.option(
    "--browser-pages",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Browser pages open at the same time (one Chromium is shared).",
)
@click.option(
    "--timeout",
    default=DEFAULT_TIMEOUT,
    show_default=True,
    type=click.FloatRange(1, 600),
    help="Seconds allowed for one fetch.",
)
def check_now(
    ids: tuple[str, ...],
    targets_dir: Path,
    db_url: str,
    as_json: bool,
    concurrency: int,
    browser_pages: int,
    timeout: float,
) -> None:
    """Check all pages (or the IDS named) once, store what changed, and report.

    Exit status: 0 every page was checked, 1 at least one could not be, 2 usage or target
    file error (nothing checked).
    """
    pages = load_pages(targets_dir, ids)
    store = open_store(db_url)
    try:
        results = asyncio.run(
            _run_checks(store, pages, as_json, concurrency, browser_pages, timeout)
        )
    finally:
        store.close()
    if not as_json:
        _summary(results)
    sys.exit(EXIT_UNCHECKED if any(r.status == "error" for r in results) else EXIT_OK)


async def _run_checks(
    store: Store,
    pages: list[Page],
    as_json: bool,
    concurrency: int,
    browser_pages: int,
    timeout: float,
) -> list[CheckResult]:
    async with Fetcher(timeout=timeout, browser_pages=browser_pages) as fetcher:
        checker = Checker(store, fetcher, concurrency=concurrency)
        if as_json:

            def emit(result: CheckResult) -> None:
                sys.stdout.write(json.dumps(result.to_json()) + "\n")
                sys.stdout.flush()

            results = await checker.check_all(pages, emit)
        elif err.is_terminal:
            with Progress(
                TextColumn("checking"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=err,
                transient=True,
            ) as progress:
                task = progress.add_task("", total=len(pages))

                def advance(result: CheckResult) -> None:
                    progress.update(
                        task, advance=1, description=f"{result.page.id}: {result.status}"
                    )

                results = await checker.check_all(pages, advance)
        else:

            def line(result: CheckResult) -> None:
                err.print(f"{result.page.id}: {result.status} ({result.duration_ms} ms)")

            results = await checker.check_all(pages, line)
        if fetcher.browser.choice:
            err.print(f"browser: {fetcher.browser.choice.describe()}")
        return results


def _summary(results: list[CheckResult]) -> None:
    table = Table(title="check-now", title_justify="left")
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
    out.print(table)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    out.print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no pages")


@main.command()
@click.argument("page_id")
@db_option
@json_option
@click.option("--limit", default=20, show_default=True, help="Latest checks shown.")
def history(page_id: str, db_url: str, as_json: bool, limit: int) -> None:
    """The versions, changes and latest checks of one page."""
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
                        "last_checked_at": _iso(page.last_checked_at),
                        "last_outcome": page.last_outcome,
                        "consecutive_failures": page.consecutive_failures,
                    },
                    "versions": [
                        {
                            "id": v.id,
                            "first_seen": _iso(v.first_seen),
                            "last_seen": _iso(v.last_seen),
                            "blocks": len(v.text.splitlines()),
                            "fetch": v.fetch_mode,
                            "final_url": v.final_url,
                        }
                        for v in versions
                    ],
                    "changes": [_change_json(c) for c in changes],
                    "checks": [
                        {
                            "id": c.id,
                            "started_at": _iso(c.started_at),
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
    out.print(f"[bold]{page.title or page.id}[/bold] ({page.provider})\n{page.url}")
    out.print(
        f"last checked {_when(page.last_checked_at)}: {page.last_outcome or 'never'}"
        + (
            f", failing for {page.consecutive_failures} check(s): {page.last_error}"
            if page.consecutive_failures
            else ""
        )
    )
    table = Table(title="changes", title_justify="left")
    for column in ("id", "detected (UTC)", "severity", "summary"):
        table.add_column(column, overflow="fold")
    for c in changes:
        table.add_row(str(c.id), _when(c.detected_at), severity_text(c.severity), c.summary)
    out.print(table if changes else "no changes recorded")
    table = Table(title="versions", title_justify="left")
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
    out.print(table)
    table = Table(title=f"latest checks (of {store.count_checks(page_id)})", title_justify="left")
    for column in ("started (UTC)", "outcome", "ms", "detail"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(
            _when(c.started_at),
            c.outcome,
            str(c.duration_ms),
            c.error or (f"change {c.change_id}" if c.change_id else ""),
        )
    out.print(table)


@main.command()
@click.argument("change_id", type=int)
@db_option
@json_option
def diff(change_id: int, db_url: str, as_json: bool) -> None:
    """One change: its severity, reasons and word-level diff."""
    store = open_store(db_url)
    change = store.change(change_id)
    if change is None:
        _fail(f"no change {change_id} in the store")
    page = store.page(change.page_id)
    assert page is not None
    if as_json:
        print(json.dumps(_change_json(change), indent=2))
        return
    out.print(render_change(change, page.title or page.id, page.url))


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
    table = Table(title=f"{len(pages)} page(s) in {targets_dir}", title_justify="left")
    for column in ("id", "provider", "fetch", "interval", "url"):
        table.add_column(column, overflow="fold")
    for page in pages:
        table.add_row(page.id, page.provider, page.decl.fetch, page.decl.interval, page.url)
    out.print(table)


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
    pages = load_pages(targets_dir)
    files = {page.source for page in pages}
    out.print(f"ok: {len(pages)} page(s) in {len(files)} file(s)")
    if db_url is None and Path(DEFAULT_DB.removeprefix("sqlite:///")).is_file():
        db_url = DEFAULT_DB
    if db_url is None:
        return
    try:
        store = Store(db_url)
    except StoreError as exc:
        err.print(f"[yellow]warning:[/yellow] no stored history read: {exc}", markup=True)
        return
    try:
        warnings = stored_warnings(store, pages)
    finally:
        store.close()
    for warning in warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", markup=True, highlight=False)
    if warnings:
        err.print(f"{len(warnings)} warning(s) from the stored history")


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
        out.print(render_tryout(result))
    sys.exit(EXIT_UNCHECKED if result.inspection.select_missing else EXIT_OK)


async def _try_once(page: Page, timeout: float) -> Tryout:
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
        choice = ensure_browser(err.print) if install else find_browser()
    except BrowserUnavailable as exc:
        _fail(str(exc), EXIT_UNCHECKED)
    out.print(f"browser: {choice.describe()}")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else "never"


def _change_json(change: Any) -> dict[str, Any]:
    return {
        "id": change.id,
        "page_id": change.page_id,
        "kind": change.kind,
        "severity": change.severity,
        "detected_at": _iso(change.detected_at),
        "summary": change.summary,
        "reasons": change.reasons,
        "terms": change.terms,
        "from_version_id": change.from_version_id,
        "to_version_id": change.to_version_id,
        "diff": change.diff,
    }
