"""Soak run: the daemon with hundreds of pages on short intervals while faults are injected.

Serves N pages on 127.0.0.1 and changes their opt-out wording at random; meanwhile pages
start failing (HTTP 500) or hanging for a while, the alert receiver goes down, and the daemon
is killed with SIGKILL and restarted. After a quiet settling period it reports: checks
attempted, recorded and failed (with a reason), changes made by the page server against
changes found, alerts expected against delivered, duplicates, and memory at start and end.

    .venv/bin/python bench/soak.py --pages 300 --duration 300
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.check_now import tree_pss_kb
from monitor.store import Store
from monitor.store.models import ChangeRow, CheckRow, DeliveryRow

RESULTS = Path(__file__).parent / "results"


class PageServer:
    """Pages whose retention period changes at random; some fail or hang for a while."""

    def __init__(self, count: int) -> None:
        self.version = [0] * count
        self.broken: dict[int, tuple[str, float]] = {}  # page -> (fault, until)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                index = int(self.path.strip("/").split("/")[-1])
                fault, until = server.broken.get(index, ("", 0.0))
                if fault and time.time() < until:
                    if fault == "hang":
                        time.sleep(20)
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = server.page(index).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def page(self, index: int) -> str:
        days = 30 + self.version[index]
        return (
            f"<html><body><main><h1>Data controls {index}</h1>"
            f"<p>You can opt out of model training in Settings.</p>"
            f"<p>We retain your chats for {days} days after you delete them.</p>"
            "</main></body></html>"
        )

    def text_now(self, index: int) -> str:
        return f"We retain your chats for {30 + self.version[index]} days after you delete them."


class Receiver:
    """The alert webhook: counts every change id it is told about; can be down."""

    def __init__(self) -> None:
        self.mentions: Counter[int] = Counter()
        self.up = True
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not receiver.up:
                    self.connection.close()
                    return
                message = json.loads(raw).get("message", "")
                receiver.mentions.update(int(n) for n in re.findall(r"monitor diff (\d+)", message))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def start_daemon(targets: Path, db: str, hook: str, log: Path) -> subprocess.Popen:
    monitor = str(Path(sys.executable).with_name("monitor"))
    return subprocess.Popen(
        [
            monitor,
            "--log-format",
            "json",
            "run",
            "--targets",
            str(targets),
            "--db",
            db,
            "--notify",
            hook,
            "--health",
            "off",
            "--host-gap",
            "0",
            "--timeout",
            "5",
            "--lease",
            "20",
            "--grace",
            "10",
            "--concurrency",
            "16",
        ],
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "MONITOR_DELIVERY_LEASE": "30"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--interval", default="10s")
    parser.add_argument(
        "--duration", type=float, default=300.0, help="seconds of faults and changes"
    )
    parser.add_argument("--settle", type=float, default=60.0, help="quiet seconds at the end")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    pages, receiver = PageServer(args.pages), Receiver()
    base = f"http://127.0.0.1:{pages.httpd.server_address[1]}"
    hook = f"json://127.0.0.1:{receiver.httpd.server_address[1]}/alerts"
    made = 0
    kills = 0
    with tempfile.TemporaryDirectory() as scratch:
        targets = Path(scratch) / "targets"
        targets.mkdir()
        (targets / "soak.yaml").write_text(
            yaml.safe_dump(
                {
                    "provider": "Soak",
                    "pages": [
                        {
                            "id": f"soak-{n}",
                            "url": f"{base}/p/{n}",
                            "fetch": "http",
                            "interval": args.interval,
                        }
                        for n in range(args.pages)
                    ],
                }
            )
        )
        db = f"sqlite:///{scratch}/soak.db"
        log = Path(scratch) / "daemon.log"
        daemon = start_daemon(targets, db, hook, log)
        time.sleep(5)
        memory_start = tree_pss_kb(daemon.pid)
        ends = time.time() + args.duration
        while time.time() < ends:
            time.sleep(rng.uniform(0.2, 1.0))
            roll = rng.random()
            if roll < 0.55:  # a provider edits a page
                pages.version[rng.randrange(args.pages)] += 1
                made += 1
            elif roll < 0.75:  # a page fails or hangs for a while
                pages.broken[rng.randrange(args.pages)] = (
                    rng.choice(["500", "hang"]),
                    time.time() + rng.uniform(5, 30),
                )
            elif roll < 0.85:  # the alert receiver goes down for a while
                receiver.up = False
                threading.Timer(rng.uniform(5, 20), lambda: setattr(receiver, "up", True)).start()
            elif roll < 0.88:  # the daemon is killed mid-work and restarted
                daemon.send_signal(signal.SIGKILL)
                daemon.wait()
                kills += 1
                daemon = start_daemon(targets, db, hook, log)
        pages.broken.clear()
        receiver.up = True
        time.sleep(args.settle)
        memory_end = tree_pss_kb(daemon.pid)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)

        store = Store(db)
        with store.session() as session:
            checks = session.query(CheckRow).all()
            changes = session.query(ChangeRow).all()
            deliveries = session.query(DeliveryRow).all()
        current = {n: store.page_state(f"soak-{n}").text or "" for n in range(args.pages)}
        store.close()

    failed = [c for c in checks if c.outcome == "error"]
    content = [c for c in changes if c.kind == "content"]
    states = Counter(d.state for d in deliveries)
    duplicates = sum(1 for count in receiver.mentions.values() if count > 1)
    expected_ids = {d.change_id for d in deliveries}
    missing = (
        expected_ids
        - set(receiver.mentions)
        - {d.change_id for d in deliveries if d.state == "uncertain"}
    )
    up_to_date = sum(1 for n in range(args.pages) if pages.text_now(n) in current[n])
    report = {
        "pages": args.pages,
        "interval": args.interval,
        "duration_s": args.duration,
        "daemon_kills": kills,
        "checks_recorded": len(checks),
        "checks_failed": len(failed),
        "failed_without_reason": sum(1 for c in failed if not c.error),
        "changes_made_by_server": made,
        "content_changes_found": len(content),
        "pages_whose_stored_text_is_current": up_to_date,
        "alerts_expected": len(expected_ids),
        "alerts_delivered": len(set(receiver.mentions) & expected_ids),
        "alerts_missing": len(missing),
        "alerts_uncertain": states.get("uncertain", 0),
        "duplicate_alerts": duplicates,
        "delivery_states": dict(states),
        "memory_start_mb": round(memory_start / 1024),
        "memory_end_mb": round(memory_end / 1024),
    }
    for key, value in report.items():
        print(f"{key:<38} {value}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
