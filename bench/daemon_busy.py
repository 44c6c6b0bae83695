"""Memory of a working `monitor run`, browser included: the figures behind deploy/ limits.

Serves pages on 127.0.0.1 (plain HTML help articles, and pages whose text a script builds,
declared `fetch: browser`), whose wording changes every minute; runs `monitor run` on them
with a short interval and samples, every half second, the proportional memory (PSS) of the
daemon alone and of the daemon with every process it started (Playwright's driver and
Chromium). Writes bench/results/daemon_busy.json.

    .venv/bin/python bench/daemon_busy.py --http-pages 100 --browser-pages 20 --duration 150
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_now import tree_pss_kb
from daemon_idle import RESULTS, pss_mb

PARAGRAPH = (
    "You can turn off model training in Privacy Settings at any time; the setting applies to "
    "new and resumed conversations, and conversations you flag for review may still be used. "
)


def article(path: str) -> bytes:
    minute = int(time.time() // 60)
    paragraphs = "".join(f"<p>{n}. {PARAGRAPH}</p>" for n in range(120))
    text = f"<h1>Privacy help {path}</h1><p>Revision {minute}.</p>{paragraphs}"
    if path.startswith("/js/"):
        return (
            "<!doctype html><html><body><main id='m'></main><script>"
            f"document.getElementById('m').innerHTML = {json.dumps(text)};"
            "</script></body></html>"
        ).encode()
    return f"<!doctype html><html><body><main>{text}</main></body></html>".encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = article(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--http-pages", type=int, default=100)
    parser.add_argument("--browser-pages", type=int, default=20)
    parser.add_argument("--interval", default="60s")
    parser.add_argument("--duration", type=float, default=150.0)
    parser.add_argument("--port", type=int, default=9197)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pages = [
        {"id": f"html-{n}", "url": f"{base}/html/{n}", "fetch": "http", "interval": args.interval}
        for n in range(args.http_pages)
    ] + [
        {"id": f"js-{n}", "url": f"{base}/js/{n}", "fetch": "browser", "interval": args.interval}
        for n in range(args.browser_pages)
    ]
    with tempfile.TemporaryDirectory() as scratch:
        targets = Path(scratch) / "targets"
        targets.mkdir()
        (targets / "local.yaml").write_text(yaml.safe_dump({"provider": "Local", "pages": pages}))
        monitor = str(Path(sys.executable).with_name("monitor"))
        process = subprocess.Popen(
            [
                monitor,
                "run",
                "--targets",
                str(targets),
                "--db",
                f"sqlite:///{scratch}/busy.db",
                "--health",
                f"127.0.0.1:{args.port}",
                "--host-gap",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak_daemon = peak_total = 0.0
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit("monitor run exited early")
            peak_daemon = max(peak_daemon, pss_mb(process.pid))
            peak_total = max(peak_total, tree_pss_kb(process.pid) / 1024)
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/metrics") as reply:
            checks = sum(
                float(line.rsplit(" ", 1)[1])
                for line in reply.read().decode().splitlines()
                if line.startswith("monitor_checks_total{")
            )
        process.send_signal(signal.SIGTERM)
        process.wait(90)
    server.shutdown()

    result = {
        "http_pages": args.http_pages,
        "browser_pages": args.browser_pages,
        "interval": args.interval,
        "duration_s": args.duration,
        "checks": int(checks),
        "peak_pss_daemon_mb": round(peak_daemon),
        "peak_pss_with_browser_mb": round(peak_total),
    }
    print(
        f"`monitor run` on {args.http_pages} HTTP + {args.browser_pages} browser pages every "
        f"{args.interval}, {args.duration:g} s, {os.cpu_count()} cores: {result['checks']} checks"
    )
    print(f"peak memory (PSS), daemon alone: {result['peak_pss_daemon_mb']} MB")
    print(f"peak memory (PSS), daemon + driver + Chromium: {result['peak_pss_with_browser_mb']} MB")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "daemon_busy.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
