"""Throughput and peak memory of `monitor check-now` over N local pages.

Serves N realistic help-centre pages on 127.0.0.1 (50 to 500 KB each, mostly site chrome
around 20 to 80 paragraphs of text; in browser mode each page is an empty shell that a
script fills in), then runs `monitor check-now --json` twice in a fresh store: the first run
stores every page, the second finds them unchanged. The server sends ETag and Last-Modified
unless --no-validators. Prints a table and writes bench/results/check_now.json.

    .venv/bin/python bench/check_now.py --pages 50 --mode browser --concurrency 8
    .venv/bin/python bench/check_now.py --pages 1000 --processes 1   # against the default
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
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
RUNS = ("first run", "unchanged re-run")
WORDS = (
    "your data personal information model training improve our models settings privacy "
    "conversations account delete retention consent opt out default plan team enterprise "
    "we may use content to help develop and improve services review safety feedback"
).split(" ")


def site_chrome(index: int, kilobytes: int) -> tuple[str, str]:
    """What a help centre wraps around an article, none of it text a reader sees: an inline
    style sheet (for the head), an icon sprite and the app's state as inline JSON (for the
    end of the body), about `kilobytes` in all."""
    if kilobytes <= 0:
        return "", ""
    rng = random.Random(-index)
    rules = "".join(
        f".c{n}{{margin:{n % 7}px;color:#{rng.randrange(16**6):06x};display:flex}}"
        for n in range(kilobytes * 4)
    )
    icons = "".join(  # a sprite of 60 icons, whatever the page's size
        f"<symbol id='i{n}' viewBox='0 0 24 24'><path d='M{n} 2L{n + 3} 9Z'/></symbol>"
        for n in range(60)
    )
    titles = [{"id": n, "title": " ".join(rng.choices(WORDS, k=6))} for n in range(kilobytes * 7)]
    state = json.dumps({"articles": titles})
    tail = (
        f"<svg style='display:none'>{icons}</svg>"
        f"<script id='__APP_STATE__' type='application/json'>{state}</script>"
    )
    return f"<style>{rules}</style>", tail


def article(index: int, paragraphs: int, scripted: bool, *, chrome_kb: int = 0) -> str:
    """A help-centre article of roughly paragraphs × 400 bytes of text, with a navigation
    bar and a cookie banner around it, and `chrome_kb` more of styles, icons and inline
    state. A `scripted` article is an empty shell that a script fills in."""
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
    head, tail = site_chrome(index, chrome_kb)
    start = f"<!doctype html><html><head><title>A{index}</title>{head}</head><body>{chrome}"
    if scripted:
        payload = json.dumps(main)
        return (
            f"{start}<div id='root'></div><noscript>Please enable JavaScript.</noscript>"
            f"<script>document.getElementById('root').innerHTML = {payload};</script>"
            f"{tail}</body></html>"
        )
    return f"{start}{main}{tail}</body></html>"


def realistic_pages(count: int, scripted: bool) -> dict[str, bytes]:
    """`count` help-centre pages of about 50 to 500 KB, spread evenly, in a mixed order."""
    pages = {}
    for index in range(count):
        spread = (index * 37) % count / max(count - 1, 1)
        html = article(index, 20 + round(60 * spread), scripted, chrome_kb=55 + round(680 * spread))
        pages[f"/a/{index}"] = html.encode()
    return pages


def serve(pages: dict[str, bytes], *, validators: bool = True) -> ThreadingHTTPServer:
    """Serve `pages` on 127.0.0.1 with an ETag and Last-Modified, answering 304 to a
    request whose If-None-Match still holds (as most web servers do), unless not
    `validators`."""
    tags = {path: f'"{hashlib.sha1(body).hexdigest()[:16]}"' for path, body in pages.items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body, tag = pages.get(self.path), tags.get(self.path)
            if validators and tag and self.headers.get("If-None-Match") == tag:
                self.send_response(304)
                self.send_header("ETag", tag)
                self.end_headers()
                return
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body or b"")))
            if validators and tag:
                self.send_header("ETag", tag)
                self.send_header("Last-Modified", "Mon, 02 Nov 2026 09:00:00 GMT")
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # socketserver's 5 drops connections when many checks start

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_results(name: str, data: dict[str, Any]) -> Path:
    """bench/results/NAME.json, said on the terminal."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(data, indent=2))
    print(f"written {out}")
    return out


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


class PeakPss:
    """Samples the summed PSS of some process trees every 200 ms in a thread, keeping the
    peak. Reading PSS walks each process's page tables: for check-now's four processes, a
    sample took 16 ms of CPU (median over a run), so sampling every 50 ms took a quarter of
    a core from the tool being timed, and more from one of several processes or a browser.
    With `sampling` off (class-wide: bench/suite.py's timed runs) it samples nothing."""

    sampling = True

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, sum(tree_pss_kb(root) for root in self.roots))
            self._stop.wait(0.2)

    def __enter__(self) -> PeakPss:
        if self.sampling:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def run_check(
    monitor: str, targets: Path, db: str, concurrency: int, processes: str = "auto"
) -> dict[str, Any]:
    """One `monitor check-now` over the targets: wall time (start-up included) and peak PSS."""
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
            str(concurrency),
            "--processes",
            processes,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    with PeakPss([process.pid]) as pss:  # reading as it runs: a full pipe would stall it
        output, _ = process.communicate()
    elapsed = time.perf_counter() - started
    lines = [json.loads(line) for line in output.splitlines()]
    statuses: dict[str, int] = {}
    for line in lines:
        statuses[line["status"]] = statuses.get(line["status"], 0) + 1
    failed = statuses.get("error", 0)
    return {
        "seconds": round(elapsed, 2),
        "pages_per_s": round(len(lines) / elapsed, 1),
        "peak_pss_mb": round(pss.peak_kb / 1024),
        "ok": len(lines) - failed,
        "failed": failed,
        "statuses": statuses,
        "median_check_ms": statistics.median(line["duration_ms"] for line in lines),
    }


def run_monitor(
    urls: list[str], *, browser: bool, workers: int, processes: str = "auto"
) -> dict[str, Any]:
    """Our tool on `urls` in a fresh store, declared `fetch: browser` or `http`: a first run,
    then an unchanged re-run (the same shape as bench/peers.py's results)."""
    monitor = str(Path(sys.executable).with_name("monitor"))
    # pip compiles an installed package's bytecode (the peers' included); an editable install
    # run with PYTHONDONTWRITEBYTECODE would compile our modules again on every start
    compileall.compile_dir(Path(__file__).parents[1] / "monitor", quiet=1)
    fetch = "browser" if browser else "http"
    with tempfile.TemporaryDirectory() as scratch:
        targets = Path(scratch) / "targets"
        targets.mkdir()
        declared = [{"id": f"bench-{n}", "url": url, "fetch": fetch} for n, url in enumerate(urls)]
        (targets / "bench.yaml").write_text(
            yaml.safe_dump({"provider": "Bench", "pages": declared})
        )
        db = f"sqlite:///{scratch}/bench.db"
        runs: dict[str, Any] = {
            name: run_check(monitor, targets, db, workers, processes) for name in RUNS
        }
        runs["store_bytes"] = sum(p.stat().st_size for p in Path(scratch).glob("bench.db*"))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--mode", choices=("http", "browser"), default="http")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--processes", default="auto", help="check-now's --processes")
    parser.add_argument(
        "--no-validators", action="store_true", help="the server sends no ETag/Last-Modified"
    )
    args = parser.parse_args()

    pages = realistic_pages(args.pages, scripted=args.mode == "browser")
    server = serve(pages, validators=not args.no_validators)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        runs = run_monitor(
            [base + path for path in pages],
            browser=args.mode == "browser",
            workers=args.concurrency,
            processes=args.processes,
        )
    finally:
        server.shutdown()

    sizes = [len(body) for body in pages.values()]
    print(
        f"{args.pages} pages ({args.mode}), {min(sizes) // 1024}-{max(sizes) // 1024} KB "
        f"(mean {statistics.mean(sizes) / 1024:.0f}), concurrency {args.concurrency}, "
        f"processes {args.processes}, {os.cpu_count()} cores"
    )
    print(f"{'run':<18}{'seconds':>9}{'pages/s':>9}{'median ms':>11}{'peak PSS MB':>13}  statuses")
    for name in RUNS:
        run = runs[name]
        print(
            f"{name:<18}{run['seconds']:>9}{run['pages_per_s']:>9}{run['median_check_ms']:>11}"
            f"{run['peak_pss_mb']:>13}  {run['statuses']}"
        )
    print(f"store after both runs: {runs['store_bytes'] / 1024:.0f} KiB")
    write_results("check_now", {"args": vars(args), "runs": runs})


if __name__ == "__main__":
    main()
