"""Faults in our own parts: a crashing browser, a busy or dropped database, a killed process.

After each, the store is consistent and nothing that was recorded is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from monitor.fetch import Capture, Fetcher
from monitor.store import Store
from monitor.store.models import ChangeRow, CheckRow, DeliveryRow, PageRow, VersionRow
from tests.conftest import MONITOR, Site, help_article, write_targets
from tests.test_fetch import page
from tests.test_notify import Hooks
from tests.test_schedule import daemons


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


# -- PostgreSQL restarted under a running daemon --------------------------------------------


def _postgres_bin() -> Path:
    """The directory of initdb and pg_ctl: MONITOR_TEST_PG_BIN, else the newest Debian one."""
    given = os.environ.get("MONITOR_TEST_PG_BIN")
    candidates = [Path(given)] if given else sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    for directory in reversed(candidates):
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    pytest.fail(
        "this test starts a PostgreSQL server of its own and needs initdb and pg_ctl: "
        "install the PostgreSQL server package or set MONITOR_TEST_PG_BIN to their directory"
    )


class PrivatePostgres:
    """A PostgreSQL server of this test's own (trust auth, 127.0.0.1, a free port), which it
    may stop and start at will without disturbing the shared server other tests use."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
        self.data = self.root / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:  # initdb refuses to run as root
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [*self._as, str(self.bin / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{tool} {args}: {done.stdout}{done.stderr}{self.log()}"

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text() if path.exists() else ""

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"),
            "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def destroy(self) -> None:
        """Stop the server whatever state it is in, and remove its files."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            try:
                self.stop("immediate")
            except (AssertionError, subprocess.TimeoutExpired):
                pid = int(pid_file.read_text().split()[0])
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


WORDS = ["amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "heron", "indigo"]


def restart_text(page_no: int, word: str) -> str:
    return help_article(
        f"Page {page_no}", f"The {word} plan: turn off model training in Privacy Settings."
    )


@pytest.mark.postgres
def test_postgres_restarted_under_the_daemon_loses_no_change_nor_alert(
    site: Site,
    targets_dir: Path,
    tmp_path: Path,
    private_postgres: PrivatePostgres,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database restart (connections cut, then refused for 2 s) mid-run: the daemon keeps
    checking, every edit of a page is recorded as one change, each alerted exactly once."""
    monkeypatch.setenv("MONITOR_CONFIRM_DELAY", "0.2")
    url = private_postgres.url
    count = 4
    edits: dict[str, list[str]] = {f"r{n}": [] for n in range(count)}  # texts set, in order
    words = iter(WORDS * 3)

    def edit(n: int) -> None:
        word = next(words)
        site.page(f"/r{n}", restart_text(n, word))
        edits[f"r{n}"].append(word)

    for n in range(count):
        edit(n)
    write_targets(
        targets_dir,
        "Restart",
        [{"id": f"r{n}", "url": site.url(f"/r{n}"), "fetch": "http", "interval": "1s"}
         for n in range(count)],
    )  # fmt: skip
    hooks = Hooks()
    hooks.up()
    config = tmp_path / "apprise.yaml"  # every change but noise goes out at once
    config.write_text(
        json.dumps({"urls": [{f"json://127.0.0.1:{hooks.port}/in": [{"tag": "min-minor"}]}]})
    )

    def recorded(store: Store, page_id: str) -> str | None:
        current = store.page_state(page_id).text or ""
        return next((w for w in WORDS if f"The {w} plan" in current), None)

    def wait_recorded(page_ids: list[str], timeout: float = 20) -> None:
        store = Store(url)
        try:
            deadline = time.monotonic() + timeout
            while any(recorded(store, p) != edits[p][-1] for p in page_ids):
                assert time.monotonic() < deadline, {p: recorded(store, p) for p in page_ids}
                assert daemon.process.poll() is None, daemon.log.read_text()
                time.sleep(0.2)
        finally:
            store.close()

    started = time.monotonic()
    try:
        extra = ("--jitter", "0.2", "--lease", "3", "--timeout", "3", "--notify", str(config))
        with daemons(1, targets_dir, url, tmp_path, *extra) as [daemon]:
            daemon.wait_for("monitor run started")
            wait_recorded(list(edits))  # every page's first version
            edit(0)
            edit(1)
            wait_recorded(["r0", "r1"])
            edit(2)
            edit(3)  # edits the daemon meets while the database goes away
            private_postgres.stop("fast")
            time.sleep(2)
            private_postgres.start()
            back = datetime.now(UTC)
            wait_recorded(["r2", "r3"])
            edit(0)
            edit(2)
            wait_recorded(["r0", "r2"])
            store = Store(url)
            deadline = time.monotonic() + 15
            while True:  # every alert settled
                with store.session() as session:
                    states = list(session.scalars(select(DeliveryRow.state)))
                if states and set(states) == {"sent"}:
                    break
                assert time.monotonic() < deadline, states
                time.sleep(0.2)
            time.sleep(1.5)  # a few more checks after the last change
            assert daemon.process.poll() is None, daemon.log.read_text()
            assert daemon.stop() == 0, daemon.log.read_text()
    finally:
        hooks.down()
    took = time.monotonic() - started
    assert took < 40, took

    assert_consistent(store)
    log = daemon.log.read_text()
    assert "the store is not answering" in log, log  # the restart was felt, not missed
    assert "could not use the store" in log, log
    with store.session() as session:
        for page_id, words_set in edits.items():
            checks = list(session.scalars(select(CheckRow).where(CheckRow.page_id == page_id)))
            assert any(c.started_at > back for c in checks), page_id  # checked after the restart
            changes = list(
                session.scalars(
                    select(ChangeRow).where(ChangeRow.page_id == page_id).order_by(ChangeRow.id)
                )
            )
            texts = [session.get(VersionRow, c.to_version_id).text for c in changes]
            seen = [next(w for w in WORDS if f"The {w} plan" in t) for t in texts]
            assert seen == words_set[1:], (page_id, seen, words_set)  # none lost, none doubled
            assert all(c.kind == "content" and c.severity != "noise" for c in changes)
        deliveries = list(session.scalars(select(DeliveryRow)))
        all_changes = set(session.scalars(select(ChangeRow.id)))
    assert sorted(d.change_id for d in deliveries) == sorted(all_changes)
    alerted = [
        int(found)
        for _, payload in hooks.received
        for found in re.findall(r"monitor diff (\d+)", payload["message"])
    ]
    assert sorted(alerted) == sorted(all_changes), (alerted, all_changes)  # each exactly once
    store.close()


# -- the data directory's disk runs full ----------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs) to run out of, unmounted at the end whatever happens."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if mounted.returncode != 0:
        pytest.fail(f"this test mounts a small tmpfs and needs root for it: {mounted.stderr}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], timeout=30)


def fill(directory: Path, leave: int) -> Path:
    """Write a filler file until the disk is full, then give back `leave` bytes."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(descriptor, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(descriptor)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def test_a_full_disk_fails_checks_clearly_and_loses_nothing(
    site: Site, targets_dir: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's disk fills up: checks fail saying so (exit 1, no traceback), nothing is
    half-written, and once there is room again the next check records as usual."""
    monkeypatch.setenv("MONITOR_CONFIRM_DELAY", "0")
    ids = [f"d{n}" for n in range(3)]
    for n, page_id in enumerate(ids):
        site.page(f"/{page_id}", help_article("D", f"Opt out of training {n} in Settings."))
    write_targets(
        targets_dir,
        "Disk",
        [{"id": page_id, "url": site.url(f"/{page_id}"), "fetch": "http"} for page_id in ids],
    )
    db = f"sqlite:///{small_disk / 'm.db'}"

    command = [MONITOR, "check-now", "--json", "--retry-delay", "0"]
    command += ["--targets", str(targets_dir), "--db", db]

    def check_now() -> tuple[int, dict[str, dict], str]:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
        )
        results = {r["target"]: r for r in map(json.loads, done.stdout.splitlines())}
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, results, done.stderr

    code, results, _ = check_now()
    assert code == 0 and {r["status"] for r in results.values()} == {"first"}
    rng = random.Random(3)
    for n, page_id in enumerate(ids):  # long new texts: each needs room the disk lacks
        lines = [f"Opt out of training {n}, rule {rng.getrandbits(128):x}." for _ in range(300)]
        site.page(f"/{page_id}", help_article("D", *lines))

    filler = fill(small_disk, leave=64 * 1024)  # room to open the store, not to write checks
    code, results, stderr = check_now()
    assert code == 1, stderr  # some pages could not be checked
    for result in results.values():
        assert result["status"] == "error"
        assert result["error"] == "could not use the store: database or disk is full", result

    filler.unlink()
    filler = fill(small_disk, leave=0)  # not even room to open it
    code, results, stderr = check_now()
    assert code == 1 and results == {}, stderr
    assert "cannot open the store" in stderr and f"the disk holding {small_disk} is full" in stderr

    filler.unlink()
    store = Store(db)
    assert_consistent(store)  # nothing half-written by the failed checks
    for page_id in ids:
        assert store.count_checks(page_id) == 1 and not store.changes(page_id)
    store.close()
    code, results, stderr = check_now()
    assert code == 0, stderr
    assert {r["status"] for r in results.values()} == {"changed"}
    store = Store(db)
    assert_consistent(store)
    for n, page_id in enumerate(ids):  # the history from before the full disk is all there
        first, latest = store.versions(page_id)
        assert first.text.endswith(f"Opt out of training {n} in Settings.")
        assert latest.text.count(f"Opt out of training {n}, rule") == 300
        assert store.count_checks(page_id) == 2 and len(store.changes(page_id)) == 1
    store.close()
