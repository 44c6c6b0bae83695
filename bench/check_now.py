"""Throughput and peak memory of `monitor check-now` over N local pages.

Serves N realistic help-centre articles on 127.0.0.1 (half plain HTML, half built by scripts
so they need the browser, unless --mode says otherwise), then runs `monitor check-now --json`
twice in a fresh store: the first run stores every page, the second finds them unchanged.
Prints a table and writes bench/results/check_now.json.

    .venv/bin/python bench/check_now.py --pages 50 --mode mixed
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

RESULTS = Path(__file__).parent / "results"
WORDS = (
    "your data personal information model training improve our models settings privacy "
    "conversations account delete retention consent opt out default plan team enterprise "
    "we may use content to help develop and improve services review safety feedback"
).split(" ")


def article(index: int, paragraphs: int, scripted: bool) -> str:
    """A help-centre article of roughly paragraphs × 400 bytes, with site chrome around it."""
    rng = random.Random(index)
    body = "".join(
        f"<h2>Section {n}</h2>" if n % 8 == 0 else f"<p>{' '.join(rng.choices(WORDS, k=60))}.</p>"
        for n in range(paragraphs)
    )
    main = f"<main><article><h1>Help article {index}</h1>{body}</article></main>"
    chrome = (
        "<nav>" + "".join(f"<a href='/c/{n}'>Collection {n}</a>" for n in range(40)) + "</nav>"
        "<div id='onetrust-banner-sdk'>We use cookies.</div>"
    )
    if scripted:
        payload = json.dumps(main)
        return (
            f"<!doctype html><html><head><title>A{index}</title></head><body>{chrome}"
            f"<div id='root'></div><noscript>Please enable JavaScript.</noscript>"
            f"<script>document.getElementById('root').innerHTML = {payload};</script></body></html>"
        )
    head = f"<!doctype html><html><head><title>A{index}</title></head>"
    return f"{head}<body>{chrome}{main}</body></html>"


def serve(pages: dict[str, bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def tree_pss_kb(root: int) -> int:
    """Proportional set size of a process and all its descendants (Chromium included), in
    KiB: shared pages are split between the processes that share them, so the sum is real."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def run_check(monitor: str, targets: Path, db: str, concurrency: int) -> dict[str, Any]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            monitor,
            "check-now",
            "--json",
            "--targets",
            str(targets),
            "--db",
            db,
            "--concurrency",
            str(concurrency),
            "--browser-pages",
            str(min(concurrency, 8)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_pss_kb(process.pid))
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    lines = [json.loads(line) for line in process.stdout.read().splitlines()]  # type: ignore[union-attr]
    statuses: dict[str, int] = {}
    for line in lines:
        statuses[line["status"]] = statuses.get(line["status"], 0) + 1
    return {
        "seconds": round(elapsed, 2),
        "pages_per_s": round(len(lines) / elapsed, 1),
        "peak_pss_mb": round(peak / 1024),
        "statuses": statuses,
        "median_check_ms": statistics.median(line["duration_ms"] for line in lines),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--mode", choices=("mixed", "http", "browser"), default="mixed")
    parser.add_argument(
        "--paragraphs", type=int, default=150, help="size of each article (≈400 B each)"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    monitor = str(Path(sys.executable).with_name("monitor"))
    pages: dict[str, bytes] = {}
    for index in range(args.pages):
        scripted = args.mode == "browser" or (args.mode == "mixed" and index % 2 == 1)
        pages[f"/a/{index}"] = article(index, args.paragraphs, scripted).encode()
    server = serve(pages)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as scratch:
        targets = Path(scratch) / "targets"
        targets.mkdir()
        (targets / "bench.yaml").write_text(
            yaml.safe_dump(
                {
                    "provider": "Bench",
                    "pages": [
                        {"id": f"bench-{path.rsplit('/', 1)[1]}", "url": base + path}
                        for path in pages
                    ],
                }
            )
        )
        db = f"sqlite:///{scratch}/bench.db"
        runs = {
            "first run": run_check(monitor, targets, db, args.concurrency),
            "unchanged re-run": run_check(monitor, targets, db, args.concurrency),
        }
        store_bytes = sum(p.stat().st_size for p in Path(scratch).glob("bench.db*"))
    server.shutdown()

    sizes = [len(body) for body in pages.values()]
    print(
        f"{args.pages} pages ({args.mode}), {statistics.mean(sizes) / 1024:.0f} KB each, "
        f"concurrency {args.concurrency}, {os.cpu_count()} cores"
    )
    print(f"{'run':<18}{'seconds':>9}{'pages/s':>9}{'median ms':>11}{'peak PSS MB':>13}  statuses")
    for name, run in runs.items():
        print(
            f"{name:<18}{run['seconds']:>9}{run['pages_per_s']:>9}{run['median_check_ms']:>11}"
            f"{run['peak_pss_mb']:>13}  {run['statuses']}"
        )
    print(f"store after both runs: {store_bytes / 1024:.0f} KiB")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "check_now.json"
    out.write_text(
        json.dumps({"args": vars(args), "runs": runs, "store_bytes": store_bytes}, indent=2)
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
