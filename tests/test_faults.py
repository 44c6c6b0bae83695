"""Faults in our own parts: a crashing browser, a busy or dropped database, a killed process.

After each, the store is consistent and nothing that was recorded is lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from monitor.fetch import Capture, Fetcher
from monitor.store import Store
from monitor.store.models import ChangeRow, CheckRow, PageRow, VersionRow
from tests.conftest import Site, help_article, write_targets
from tests.test_fetch import page

MONITOR = str(Path(sys.executable).with_name("monitor"))


def chromium_main_pids() -> set[int]:
    """Browser (not renderer or helper) processes started by Playwright."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                cmdline
                and b"chrom" in cmdline[0]
                and b"--remote-debugging-pipe" in cmdline
                and not any(arg.startswith(b"--type=") for arg in cmdline)
            ):
                pids.add(int(entry.name))
    return pids


@pytest.mark.browser
def test_browser_crash_mid_check_is_restarted_and_retried(site: Site) -> None:
    url = site.page("/slow", "<main><p>Rendered after a crash.</p></main>", delay=1.5)
    before = chromium_main_pids()

    async def go() -> tuple[Capture, Capture]:
        async with Fetcher(timeout=15) as fetcher:
            check = asyncio.create_task(fetcher.fetch(page(url), "browser"))
            deadline = time.monotonic() + 10
            while not (started := chromium_main_pids() - before) or not site.hits.get("/slow"):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            for pid in started:
                os.kill(pid, signal.SIGKILL)
            crashed = await check
            again = await fetcher.fetch(page(url), "browser")
            return crashed, again

    crashed, again = asyncio.run(go())
    assert "Rendered after a crash." in crashed.html
    assert "Rendered after a crash." in again.html
    assert site.hits["/slow"] >= 2  # the check was retried on a new browser


def test_sqlite_busy_from_a_second_writer_waits(
    site: Site, targets_dir: Path, tmp_path: Path
) -> None:
    url = site.page("/p", help_article("P", "We do not train on your data."))
    write_targets(targets_dir, "Busy", [{"id": "busy", "url": url, "fetch": "http"}])
    database = tmp_path / "m.db"
    Store(f"sqlite:///{database}").close()
    holder = sqlite3.connect(database, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # a second writer holds the write lock
    threading.Timer(2.0, holder.commit).start()
    result = subprocess.run(
        [
            MONITOR,
            "check-now",
            "--json",
            "--targets",
            str(targets_dir),
            "--db",
            f"sqlite:///{database}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    holder.close()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "first"


@pytest.mark.postgres
def test_dropped_database_connections_are_survived(
    site: Site, targets_dir: Path, postgres_url: str
) -> None:
    """Connections cut by the server (as in a restart) cost at most the check in flight."""
    pages = [
        {
            "id": f"p{n}",
            "url": site.page(f"/p{n}", help_article("P", f"Opt out of training {n}.")),
            "fetch": "http",
        }
        for n in range(6)
    ]
    write_targets(targets_dir, "Dropped", pages)
    from monitor.check import Checker
    from monitor.targets import load_targets

    store = Store(postgres_url)
    declared = load_targets(targets_dir)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = postgres_url.rsplit("/", 1)[1]

    async def run(batch: list) -> list:
        async with Fetcher(timeout=10) as fetcher:
            return await Checker(store, fetcher, concurrency=2).check_all(batch)

    asyncio.run(run(declared[:3]))
    with admin.connect() as connection:  # cut every connection the store holds
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
    results = asyncio.run(run(declared))
    admin.dispose()
    assert [r.status for r in results[3:]] == ["first"] * 3
    assert {r.status for r in results[:3]} <= {"unchanged", "error"}
    assert all("could not use the store" in (r.error or "") for r in results if r.status == "error")
    assert_consistent(store)
    store.close()


def assert_consistent(store: Store) -> None:
    """No half-written check: every change belongs to exactly one check, every check's
    version exists, and each page's current version is that of its latest check with text."""
    with store.session() as session:
        changes = set(session.scalars(select(ChangeRow.id)))
        checks = list(session.scalars(select(CheckRow).order_by(CheckRow.id)))
        versions = set(session.scalars(select(VersionRow.id)))
        referenced = [c.change_id for c in checks if c.change_id is not None]
        assert sorted(referenced) == sorted(changes), "orphan or shared change"
        assert all(c.version_id in versions for c in checks if c.version_id is not None)
        for row in session.scalars(select(PageRow)):
            latest = [c for c in checks if c.page_id == row.id and c.version_id is not None]
            assert row.current_version_id == (latest[-1].version_id if latest else None), row.id


def test_sigkill_at_random_points_leaves_a_consistent_store(
    site: Site, targets_dir: Path, tmp_path: Path
) -> None:
    rng = random.Random(7)
    pages = []
    for n in range(12):
        url = site.page(
            f"/k{n}",
            help_article("K", f"Version 0 of page {n}: opt out in Settings."),
            delay=rng.uniform(0, 0.3),
        )
        pages.append({"id": f"k{n}", "url": url, "fetch": "http"})
    write_targets(targets_dir, "Killed", pages)
    db = f"sqlite:///{tmp_path / 'm.db'}"
    for round_ in range(1, 7):
        for n in range(12):  # every round some pages change
            if rng.random() < 0.5:
                site.page(
                    f"/k{n}",
                    help_article("K", f"Version {round_} of page {n}: opt out in Settings."),
                    delay=rng.uniform(0, 0.3),
                )
        process = subprocess.Popen(
            [MONITOR, "check-now", "--concurrency", "3", "--targets", str(targets_dir), "--db", db],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.6, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
    store = Store(db)
    assert_consistent(store)
    recorded = {row.id: store.count_checks(row.id) for row in store.pages()}
    store.close()
    final = subprocess.run(
        [MONITOR, "check-now", "--json", "--targets", str(targets_dir), "--db", db],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert final.returncode == 0, final.stderr
    store = Store(db)
    assert_consistent(store)
    for row in store.pages():
        assert store.count_checks(row.id) == recorded.get(row.id, 0) + 1  # nothing lost or doubled
        assert store.page_state(row.id).text.startswith("# K")
    store.close()


KILL_AFTER_STATEMENT = """
import os, sys
from sqlalchemy import event
from monitor.store import migrate, open_engine

engine = open_engine(sys.argv[1])
executed = 0

@event.listens_for(engine, "after_cursor_execute")
def count(*args):
    global executed
    executed += 1
    if executed == int(sys.argv[2]):
        os.kill(os.getpid(), 9)

migrate(engine)
print(executed)
"""


def test_a_store_killed_during_its_first_migration_still_opens(tmp_path: Path) -> None:
    def migrate_until(url: str, statement: int) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", KILL_AFTER_STATEMENT, url, str(statement)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    total = int(migrate_until(f"sqlite:///{tmp_path / 'full.db'}", 0).stdout)
    assert total > 10
    for statement in range(2, total, max(1, total // 6)):
        url = f"sqlite:///{tmp_path / f'killed-{statement}.db'}"
        assert migrate_until(url, statement).returncode == -signal.SIGKILL
        store = Store(url)  # the migration starts again from nothing
        with store.engine.connect() as connection:
            assert connection.scalar(text("SELECT version_num FROM alembic_version"))
        store.close()
