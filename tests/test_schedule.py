"""`monitor run` as a real process: schedule, reload, clean stop, several instances."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.store import Store
from monitor.store.models import utcnow
from tests.conftest import Site, help_article, write_targets

MONITOR = str(Path(sys.executable).with_name("monitor"))


class Daemon:
    """A `monitor run` subprocess with JSON logs collected in a file."""

    def __init__(self, targets: Path, db_url: str, log: Path, *extra: str) -> None:
        self.log = log
        self.handle = log.open("w")
        self.process = subprocess.Popen(
            [
                MONITOR,
                "--log-format",
                "json",
                "run",
                "--targets",
                str(targets),
                "--db",
                db_url,
                "--health",
                "127.0.0.1:0",
                "--host-gap",
                "0",
                "--reload-every",
                "0.5",
                *extra,
            ],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def entries(self) -> list[dict]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for(self, text: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.entries():
                if text in entry["message"]:
                    return entry
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"no log line with {text!r}:\n{self.log.read_text()}")

    @property
    def health_url(self) -> str:
        return self.wait_for("health and metrics on")["message"].split()[4].removesuffix("/healthz")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.handle.close()
        return code


@contextmanager
def daemons(
    count: int, targets: Path, db_url: str, tmp_path: Path, *extra: str
) -> Iterator[list[Daemon]]:
    started = [Daemon(targets, db_url, tmp_path / f"daemon{i}.log", *extra) for i in range(count)]
    try:
        yield started
    finally:
        for daemon in started:
            if daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait()


def check_times(db_url: str, page_id: str) -> list[tuple[float, float]]:
    """(start, end) of every recorded check of a page, in seconds, oldest first."""
    store = Store(db_url)
    try:
        checks = sorted(store.checks(page_id, limit=1000), key=lambda c: c.started_at)
        return [
            (c.started_at.timestamp(), c.started_at.timestamp() + c.duration_ms / 1000)
            for c in checks
        ]
    finally:
        store.close()


def pages(site: Site, count: int, interval: str, *, delay: float = 0.0) -> list[dict]:
    return [
        {
            "id": f"page-{n}",
            "fetch": "http",
            "interval": interval,
            "url": site.page(
                f"/p{n}", help_article(f"Page {n}", "We train on public posts."), delay=delay
            ),
        }
        for n in range(count)
    ]


def test_pages_run_on_schedule_with_jitter_and_no_overlap(
    site: Site, targets_dir: Path, tmp_path: Path
) -> None:
    declared = pages(site, 3, "2s")
    declared.append(
        {
            "id": "slow",
            "fetch": "http",
            "interval": "1s",
            "url": site.page("/slow", help_article("Slow", "Takes a while."), delay=2.5),
        }
    )
    write_targets(targets_dir, "Sched", declared)
    db = f"sqlite:///{tmp_path / 'm.db'}"
    with daemons(1, targets_dir, db, tmp_path, "--jitter", "0.3") as [daemon]:
        daemon.wait_for("monitor run started")
        time.sleep(9)
        assert daemon.stop() == 0
    gaps = []
    for n in range(3):
        times = check_times(db, f"page-{n}")
        assert 3 <= len(times) <= 6, times
        gaps += [b[0] - a[0] for a, b in itertools.pairwise(times)]
    assert min(gaps) > 2 * (1 - 2 * 0.3) - 0.1, gaps  # never ahead of the schedule's jitter
    assert max(gaps) - min(gaps) > 0.05, gaps  # the schedule is spread, not lock-step
    slow = check_times(db, "slow")
    assert len(slow) >= 2
    for (_, end), (start, _) in itertools.pairwise(slow):
        assert start >= end - 0.05, slow  # one check of a page at a time


def test_health_metrics_and_status(site: Site, targets_dir: Path, tmp_path: Path) -> None:
    write_targets(targets_dir, "Sched", pages(site, 2, "1h"))
    db = f"sqlite:///{tmp_path / 'm.db'}"
    with daemons(1, targets_dir, db, tmp_path) as [daemon]:
        base = daemon.health_url
        daemon.wait_for("page page-1: first")
        health = json.load(urllib.request.urlopen(base + "/healthz"))
        assert health["status"] == "ok" and health["pages"] == 2
        metrics = urllib.request.urlopen(base + "/metrics").read().decode()
        assert 'monitor_checks_total{outcome="first"} 2.0' in metrics
        assert (
            "monitor_pages_overdue" in metrics
            and "monitor_check_duration_seconds_bucket" in metrics
        )
        status = subprocess.run(
            [MONITOR, "status", "--json", "--targets", str(targets_dir), "--db", db],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = [json.loads(line) for line in status.stdout.splitlines()]
        assert {row["outcome"] for row in rows} == {"first"}
        assert all(not row["overdue"] and row["next_due"] for row in rows)
        assert all(row["pending_deliveries"] == 0 for row in rows)
        assert daemon.stop() == 0
    entry = daemon.wait_for("page page-0: first")
    assert entry["level"] == "info" and entry["status"] == "first" and entry["page"] == "page-0"


def test_overdue_pages_are_checked_soon_after_start(
    site: Site, targets_dir: Path, tmp_path: Path
) -> None:
    write_targets(targets_dir, "Sched", pages(site, 3, "1d"))
    db = f"sqlite:///{tmp_path / 'm.db'}"
    subprocess.run(
        [MONITOR, "check-now", "--targets", str(targets_dir), "--db", db],
        check=True,
        capture_output=True,
    )
    store = Store(db)
    with store.session() as session:  # pretend the last checks were two days ago
        from monitor.store.models import PageRow

        for row in session.query(PageRow):
            row.last_checked_at = utcnow() - timedelta(days=2)
    store.close()
    with daemons(1, targets_dir, db, tmp_path) as [daemon]:
        for n in range(3):
            daemon.wait_for(f"page page-{n}: unchanged", timeout=15)
        assert daemon.stop() == 0


def test_reload_on_edit_keeps_last_good_set(site: Site, targets_dir: Path, tmp_path: Path) -> None:
    path = write_targets(targets_dir, "Sched", pages(site, 1, "1h"))
    db = f"sqlite:///{tmp_path / 'm.db'}"
    with daemons(1, targets_dir, db, tmp_path) as [daemon]:
        daemon.wait_for("page page-0: first")
        path.write_text("provider: Sched\npages:\n  - id: Broken Id\n")
        entry = daemon.wait_for("targets not reloaded")
        assert entry["level"] == "error" and "field id" in entry["message"]
        assert daemon.process.poll() is None
        write_targets(targets_dir, "Sched", pages(site, 2, "1h"))
        daemon.wait_for("targets reloaded: 2 pages")
        daemon.wait_for("page page-1: first")
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for("targets reloaded: 2 pages (0 new or changed")
        assert daemon.stop() == 0


def test_clean_stop_finishes_or_abandons_running_checks(
    site: Site, targets_dir: Path, tmp_path: Path
) -> None:
    write_targets(
        targets_dir,
        "Sched",
        [
            {
                "id": "quick-end",
                "fetch": "http",
                "interval": "1h",
                "url": site.page(
                    "/q", help_article("Q", "Finishes in the grace period."), delay=1.5
                ),
            },
            {
                "id": "too-slow",
                "fetch": "http",
                "interval": "1h",
                "url": site.page("/s", help_article("S", "Outlives the grace period."), delay=8),
            },
        ],
    )
    db = f"sqlite:///{tmp_path / 'm.db'}"
    with daemons(1, targets_dir, db, tmp_path, "--grace", "3", "--timeout", "20") as [daemon]:
        daemon.wait_for("monitor run started")
        deadline = time.monotonic() + 10
        while site.hits.get("/s", 0) == 0 or site.hits.get("/q", 0) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stopped = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - stopped < 8
    daemon.wait_for("abandoned 1 check(s)")
    assert len(check_times(db, "quick-end")) == 1
    assert check_times(db, "too-slow") == []
    store = Store(db)
    page = store.page("too-slow")
    store.close()
    assert page.lease_owner is None and page.last_checked_at is None


def test_second_instance_on_sqlite_is_refused(
    site: Site, targets_dir: Path, tmp_path: Path
) -> None:
    write_targets(targets_dir, "Sched", pages(site, 1, "1h"))
    db = f"sqlite:///{tmp_path / 'm.db'}"
    with daemons(1, targets_dir, db, tmp_path) as [daemon]:
        daemon.wait_for("monitor run started")
        second = subprocess.run(
            [MONITOR, "run", "--targets", str(targets_dir), "--db", db],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 2
        assert "already used by `monitor run`" in second.stderr and "PostgreSQL" in second.stderr
        assert daemon.stop() == 0


@pytest.mark.postgres
def test_three_instances_share_the_pages_once_per_interval(
    site: Site, targets_dir: Path, tmp_path: Path, postgres_url: str
) -> None:
    interval = 3
    write_targets(targets_dir, "Sched", pages(site, 6, f"{interval}s"))
    with daemons(3, targets_dir, postgres_url, tmp_path, "--jitter", "0.1") as running:
        for daemon in running:
            daemon.wait_for("monitor run started")
        time.sleep(5 * interval)
        stopping = time.time()
        for daemon in running:
            assert daemon.stop() == 0
    for n in range(6):
        times = check_times(postgres_url, f"page-{n}")
        assert len(times) >= 4, (n, times)
        assert stopping - times[-1][0] < 2 * interval, (n, stopping, times)  # checked to the end
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(times)]
        assert min(gaps) > interval * 0.75, gaps  # never twice in one interval
        assert max(gaps) < interval * 2, gaps  # never an interval skipped
    checks_by_instance = [sum(1 for e in d.entries() if e.get("status")) for d in running]
    assert sum(1 for count in checks_by_instance if count > 0) >= 2, checks_by_instance


@pytest.mark.postgres
def test_killed_instance_leaves_no_page_behind(
    site: Site, targets_dir: Path, tmp_path: Path, postgres_url: str
) -> None:
    write_targets(
        targets_dir,
        "Sched",
        [
            {
                "id": "slow",
                "fetch": "http",
                "interval": "1h",
                "url": site.page("/slow", help_article("Slow", "Slow to answer."), delay=3),
            },
        ],
    )
    lease = 5
    with daemons(
        2, targets_dir, postgres_url, tmp_path, "--lease", str(lease), "--timeout", "4"
    ) as running:
        for daemon in running:
            daemon.wait_for("monitor run started")
        store = Store(postgres_url)
        deadline = time.monotonic() + 15
        while (owner := store.page("slow").lease_owner) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        store.close()
        victim = next(d for d in running if f":{d.process.pid}:" in owner)
        survivor = next(d for d in running if d is not victim)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        killed_at = time.time()
        assert check_times(postgres_url, "slow") == []  # the killed check wrote nothing
        survivor.wait_for("page slow: first", timeout=lease + 15)
        [(start, _)] = check_times(postgres_url, "slow")
        assert start - killed_at < lease + 6
        assert survivor.stop() == 0
