"""Time to render the change feed of `monitor serve` with many changes in the store.

Fills a fresh store with N changes (default 10,000) over 200 pages through the Store API
(`record_check`, the same write the checker makes), starts `monitor serve` on 127.0.0.1 and
times the feed, filtered feeds, a deep page of it, the overview and the JSON API, each
requested --repeat times. Prints a table and writes bench/results/web_feed.json.

    .venv/bin/python bench/web_feed.py --changes 10000
    .venv/bin/python bench/web_feed.py --db postgresql://postgres@127.0.0.1/monitor_bench
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from monitor.compare import assess
from monitor.store import CheckRecord, NewChange, Store
from monitor.targets import Page, PageDecl

RESULTS = Path(__file__).parent / "results"
WORDS = (
    "your data personal information model training improve our models settings privacy "
    "conversations account delete retention consent opt out default plan team enterprise"
).split(" ")


def fill(store: Store, changes: int, pages: int) -> float:
    """N changes spread over the pages, a minute apart; returns the seconds it took."""
    started = time.perf_counter()
    declared = [
        Page(
            PageDecl(id=f"page-{n}", url=f"https://example.org/{n}", title=f"Help article {n}"),
            provider=f"Provider {n % 10}",
            tags=(),
            source=Path("bench.yaml"),
        )
        for n in range(pages)
    ]
    store.sync_pages(declared)
    rng = random.Random(7)
    texts = {page.id: "Intro.\nYou can opt out in settings." for page in declared}
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(changes + pages):
        page = declared[n % pages]
        new = texts[page.id] + "\n" + " ".join(rng.choices(WORDS, k=12)) + f" {n}."
        change = None
        if n >= pages:  # the first round only stores each page's first version
            assessment = assess(texts[page.id], new)
            change = NewChange(
                "content",
                rng.choice(("minor", "relevant", "critical", "noise")),
                assessment.summary,
                list(assessment.reasons),
                list(assessment.terms),
                [hunk.to_json() for hunk in assessment.hunks],
            )
        texts[page.id] = new
        store.record_check(
            CheckRecord(
                page.id,
                moment + timedelta(minutes=n),
                100,
                "changed" if change else "first",
                fetch_mode="http",
                status=200,
                text=new,
                final_url=page.url,
                change=change,
            )
        )
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--db", help="an empty database URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="web-feed-"))
    db_url = args.db or f"sqlite:///{workdir / 'monitor.db'}"
    store = Store(db_url)
    fill_seconds = fill(store, args.changes, args.pages)
    store.close()
    print(f"filled {args.changes} changes over {args.pages} pages in {fill_seconds:.1f} s")

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    monitor = str(Path(sys.executable).parent / "monitor")
    command = [monitor, "serve", "--port", str(port), "--db", db_url, "--targets", str(workdir)]
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    paths = {
        "/changes": "/changes",
        "/changes filtered": "/changes?severity=relevant&severity=critical&reviewed=no"
        "&provider=Provider+3",
        "/changes text search": "/changes?q=retention",
        "/changes page 100": "/changes?page=100",
        "/ (overview)": "/",
        "/api/changes": "/api/changes",
        "/changes/{id}": f"/changes/{args.changes // 2}",
    }
    results: dict[str, dict[str, float]] = {}
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            for _ in range(300):
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            for name, path in paths.items():
                assert client.get(path).status_code == 200, path  # warm-up
                times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200
                times.sort()
                results[name] = {
                    "median_ms": round(statistics.median(times), 1),
                    "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
                    "bytes": len(response.content),
                }
    finally:
        server.terminate()
        server.wait()
    print(f"{'request':24} {'median ms':>10} {'p95 ms':>8} {'bytes':>8}")
    for name, row in results.items():
        print(f"{name:24} {row['median_ms']:>10} {row['p95_ms']:>8} {row['bytes']:>8}")
    RESULTS.mkdir(exist_ok=True)
    report = {"changes": args.changes, "pages": args.pages, "db": db_url.split(":")[0]}
    (RESULTS / "web_feed.json").write_text(json.dumps({**report, "results": results}, indent=2))


if __name__ == "__main__":
    main()
