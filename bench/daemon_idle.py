"""Scheduling overhead: memory and CPU of an idle `monitor run` with many declared pages.

Declares N pages (default 10,000, in 100 target files), marks them all as checked recently
so nothing is due, starts `monitor run`, and reports start-up time, memory once settled and
CPU used over an idle window. Writes bench/results/daemon_idle.json.

    .venv/bin/python bench/daemon_idle.py --pages 10000 --idle 60
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.store import Store
from monitor.store.leases import set_due
from monitor.store.models import utcnow
from monitor.targets import load_targets

RESULTS = Path(__file__).parent / "results"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measured")
    parser.add_argument("--port", type=int, default=9198)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        targets = Path(scratch) / "targets"
        targets.mkdir()
        per_file = 100
        for f in range(0, args.pages, per_file):
            (targets / f"provider-{f // per_file:04d}.yaml").write_text(
                yaml.safe_dump(
                    {
                        "provider": f"Provider {f // per_file}",
                        "pages": [
                            {"id": f"page-{n}", "url": f"http://127.0.0.1:9/{n}", "interval": "1d"}
                            for n in range(f, min(f + per_file, args.pages))
                        ],
                    }
                )
            )
        db = f"sqlite:///{scratch}/idle.db"
        store = Store(db)
        pages = load_targets(targets)
        store.sync_pages(pages)
        set_due(store, {page.id: utcnow() + timedelta(hours=12) for page in pages})
        store.close()

        monitor = str(Path(sys.executable).with_name("monitor"))
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                monitor,
                "run",
                "--targets",
                str(targets),
                "--db",
                db,
                "--health",
                f"127.0.0.1:{args.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/healthz", timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    raise SystemExit("monitor run exited early") from None
                time.sleep(0.1)
        startup = time.perf_counter() - started
        time.sleep(5)
        cpu_before, memory_settled = cpu_seconds(process.pid), pss_mb(process.pid)
        time.sleep(args.idle)
        cpu_idle = cpu_seconds(process.pid) - cpu_before
        memory_end = pss_mb(process.pid)
        process.send_signal(signal.SIGTERM)
        process.wait(60)

    result = {
        "pages": args.pages,
        "startup_s": round(startup, 1),
        "pss_settled_mb": round(memory_settled),
        "pss_end_mb": round(memory_end),
        "idle_window_s": args.idle,
        "cpu_idle_percent": round(100 * cpu_idle / args.idle, 2),
    }
    print(
        f"{args.pages} declared pages, nothing due; `monitor run` on SQLite, {os.cpu_count()} cores"
    )
    print(f"start-up until /healthz answers: {result['startup_s']} s")
    print(
        f"memory (PSS) settled: {result['pss_settled_mb']} MB, "
        f"after {args.idle:g} s idle: {result['pss_end_mb']} MB"
    )
    print(f"CPU while idle: {result['cpu_idle_percent']} % of one core")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "daemon_idle.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
