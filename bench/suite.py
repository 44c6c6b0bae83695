"""The whole benchmark in one command: this tool, urlwatch and changedetection.io on the same
pages in the same run, then extraction and comparison of large pages and store growth.

For each mode (plain HTTP pages; pages built by scripts, which need the browser) it serves
realistic help-centre pages of 50 to 500 KB on 127.0.0.1 (with ETag and Last-Modified, as
web servers send them) and times a first run and an unchanged re-run of each tool from a
fresh state, in --repeat rounds that each run every tool once; every figure is the median.
Times are those of whole runs, start-up included (for changedetection.io, whose server is up
already: from the recheck to the last check), taken with nothing sampling the tool's memory;
its peak memory comes from a second pair of runs, sampled. Our tool runs at each
--concurrency setting, the peers at --workers (bench/peers.py says how each is driven).
Prints the tables, the ratios to the faster peer and the goals, and writes
bench/results/suite.json and bench/results/suite.md.

    .venv/bin/python bench/suite.py                 # about 40 minutes on 2 cores
    .venv/bin/python bench/suite.py --quick         # one repeat, fewer pages: a few minutes
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import extract_compare
import peers
import store_growth
from check_now import RESULTS, RUNS, PeakPss, realistic_pages, run_monitor, serve, write_results

GOALS = {
    "unchanged HTTP pages/s": (50, ">="),
    "browser pages/s": (5, ">="),
    "extract + compare of 1 MB, ms": (100, "<"),
    "bytes per unchanged check": (500, "<"),
    "http: throughput over the faster peer, at no more memory": (2, ">="),
    "browser: throughput over the faster peer, at no more memory": (2, ">="),
}
Runner = Callable[..., dict[str, Any]]
FIGURES = ("pages_per_s", "peak_pss_mb")


def machine() -> dict[str, str]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    browser = subprocess.run(
        [peers.CHROMIUM, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": f"{os.cpu_count()} × {model}",
        "memory": f"{memory_kb / 1024 / 1024:.0f} GiB",
        "python": platform.python_version(),
        "browser": browser or peers.CHROMIUM,
        "date": time.strftime("%Y-%m-%d"),
    }


LOADS: list[float] = []  # the 1-minute load average after each run: was the machine quiet?


def medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One tool's fresh runs; per run type, the median throughput and peak PSS."""
    summary: dict[str, Any] = {"runs": results}
    for name in RUNS:
        summary[name] = {
            "pages_per_s": statistics.median(r[name]["pages_per_s"] for r in results),
            "peak_pss_mb": statistics.median(r[name]["peak_pss_mb"] for r in results),
            "failed": max(r[name]["failed"] for r in results),
        }
    return summary


def timed_then_observed(runner: Runner, urls: list[str], **options: Any) -> dict[str, Any]:
    """Two fresh runs of one tool: one timed with nothing sampling its memory, then one whose
    memory is sampled, for the peak. A sample takes CPU (16 ms for our four processes), and on
    two cores that slows a tool that keeps both busy, where one that keeps a single core busy
    is sampled from the other."""
    PeakPss.sampling = False
    try:
        timed = runner(urls, **options)
    finally:
        PeakPss.sampling = True
    observed = runner(urls, **options)
    for name in RUNS:
        timed[name]["peak_pss_mb"] = observed[name]["peak_pss_mb"]
    return timed


def contenders(args: argparse.Namespace, browser: bool) -> list[tuple[str, Runner, dict, bool]]:
    """(label, runner, its options, whether the server sends validators) of every run; each
    label says the concurrency it runs at."""
    runs: list[tuple[str, Runner, dict, bool]] = [
        (f"monitor ({n})", run_monitor, {"workers": n}, True) for n in args.concurrency
    ]
    peer = {"workers": args.workers}
    named = f"({args.workers})"
    if not args.skip_peers:
        urlwatch = f"urlwatch {peers.URLWATCH[1]}"
        runs.append((f"{urlwatch} {named}", peers.run_urlwatch, peer, True))
        if not browser:  # the browser comparison is about rendering: raw pages
            text = {**peer, "text": True}
            runs.append((f"{urlwatch}, html2text {named}", peers.run_urlwatch, text, True))
        changedetection = f"changedetection.io {peers.CHANGEDETECTION[1]}"
        runs.append((f"{changedetection} {named}", peers.run_changedetection, peer, True))
    if not browser:
        runs.append((f"monitor, no validators {named}", run_monitor, peer, False))
    return runs


def throughput(args: argparse.Namespace, browser: bool) -> dict[str, Any]:
    """Every tool on the same page set, in rounds: each round runs every tool once, so that
    a slower spell of the machine falls on all of them rather than on one tool's runs."""
    mode = "browser" if browser else "http"
    pages = realistic_pages(args.browser_pages if browser else args.pages, scripted=browser)
    runs = contenders(args, browser)
    servers = {validators: serve(pages, validators=validators) for *_, validators in runs}
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, *_ in runs}
    try:
        for round_ in range(1, args.repeat + 1):
            for label, runner, options, validators in runs:
                print(f"[{mode}] round {round_} of {args.repeat}: {label}", flush=True)
                port = servers[validators].server_address[1]
                urls = [f"http://127.0.0.1:{port}{path}" for path in pages]
                results[label].append(timed_then_observed(runner, urls, browser=browser, **options))
                LOADS.append(os.getloadavg()[0])
    finally:
        for server in servers.values():
            server.shutdown()
    sizes = [len(body) for body in pages.values()]
    rows = {label: medians(runs_of_one) for label, runs_of_one in results.items()}
    return {"mode": mode, "page_kb": [min(sizes) // 1024, max(sizes) // 1024], "rows": rows}


def ratios(table: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Per peer and run type: our best throughput over the peer's, and our peak memory (at
    that setting) over the peer's."""
    rows = table["rows"]
    ours = [row for name, row in rows.items() if name.startswith("monitor (")]
    result: dict[str, dict[str, dict[str, float]]] = {}
    for peer, theirs in rows.items():
        if peer.startswith("monitor"):
            continue
        result[peer] = {}
        for name in RUNS:
            best = max(ours, key=lambda row: row[name]["pages_per_s"])[name]
            result[peer][name] = {
                "throughput": round(best["pages_per_s"] / theirs[name]["pages_per_s"], 2),
                "memory": round(best["peak_pss_mb"] / max(theirs[name]["peak_pss_mb"], 1), 2),
            }
    return result


def _table(header: str, rows: list[list[Any]]) -> list[str]:
    """A Markdown table: a name column, then right-aligned figures."""
    return [
        f"| {header} |",
        "|---|" + "---:|" * header.count("|"),
        *(f"| {' | '.join(str(cell) for cell in row)} |" for row in rows),
        "",
    ]


def markdown(report: dict[str, Any]) -> str:
    machine, args = report["machine"], report["args"]
    lines = [
        f"Machine: {machine['cpu']}, {machine['memory']}, Python {machine['python']}, "
        f"{machine['browser']}, {machine['load']}; {args['pages']} HTTP and "
        f"{args['browser_pages']} browser pages, medians of {args['repeat']} run(s), "
        f"{machine['date']}.",
        "",
    ]
    for table in report["throughput"]:
        low, high = table["page_kb"]
        lines += [f"**{table['mode']}** pages ({low}–{high} KB)", ""]
        lines += _table(
            "tool (concurrency) | first run pages/s | peak MB | unchanged pages/s | peak MB",
            [
                [name, *(f"{row[run][key]:g}" for run in RUNS for key in FIGURES)]
                for name, row in table["rows"].items()
            ],
        )
        if not table["ratios"]:  # --skip-peers
            continue
        lines += _table(
            "ours over | first run: throughput | memory | unchanged: throughput | memory",
            [
                [peer, *(f"{r[run][key]}×" for run in RUNS for key in ("throughput", "memory"))]
                for peer, r in table["ratios"].items()
            ],
        )
    lines += _table(
        "page | HTML KB | text KB | blocks | extract ms | compare ms | both ms",
        [
            [row[key] for key in ("page", "html_kb", "text_kb", "blocks")]
            + [row["extract_ms"], row["compare_ms"], row["total_ms"]]
            for row in report["extract_compare"]
        ],
    )
    lines += _table(
        "store | bytes per unchanged check | KiB per change",
        [
            [
                backend,
                f"{row['per_1000_unchanged_checks_bytes'] / 1000:.0f}",
                f"{row['per_change_bytes'] / 1024:.1f}",
            ]
            for backend, row in report["store_growth"].items()
        ],
    )
    lines += _table(
        "goal | measured | met",
        [
            [f"{goal} {GOALS[goal][1]} {GOALS[goal][0]}", round(value, 2), "yes" if met else "no"]
            for goal, (value, met) in report["goals"].items()
        ],
    )
    return "\n".join(lines)


def goals(report: dict[str, Any]) -> dict[str, tuple[float, bool]]:
    def best(mode: str, run: str) -> float:
        table = next(t for t in report["throughput"] if t["mode"] == mode)
        return max(
            row[run]["pages_per_s"]
            for name, row in table["rows"].items()
            if name.startswith("monitor (")
        )

    one_mb = min(
        (row for row in report["extract_compare"] if row["page"] == "policy"),
        key=lambda row: abs(row["html_kb"] - 1000),
    )
    measured = {
        "unchanged HTTP pages/s": best("http", RUNS[1]),
        "browser pages/s": best("browser", RUNS[1]),
        "extract + compare of 1 MB, ms": one_mb["total_ms"],
        "bytes per unchanged check": max(
            row["per_1000_unchanged_checks_bytes"] / 1000 for row in report["store_growth"].values()
        ),
    }
    verdicts = {
        goal: (value, value >= GOALS[goal][0] if GOALS[goal][1] == ">=" else value < GOALS[goal][0])
        for goal, value in measured.items()
    }
    for table in report["throughput"]:
        if not table["ratios"]:
            continue
        # Per run, the faster peer is the one our ratio is smallest against.
        against_faster = [
            min((ratio[run] for ratio in table["ratios"].values()), key=lambda r: r["throughput"])
            for run in RUNS
        ]
        speed = min(r["throughput"] for r in against_faster)
        memory = max(r["memory"] for r in against_faster)
        goal = f"{table['mode']}: throughput over the faster peer, at no more memory"
        verdicts[goal] = (speed, speed >= 2 and memory <= 1)
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pages", type=int, default=1000, help="plain HTTP pages (a run's start-up weighs less)"
    )
    parser.add_argument("--browser-pages", type=int, default=50, help="pages built by scripts")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", default="4,8,16", help="our settings, comma-separated")
    parser.add_argument("--workers", type=int, default=8, help="the peers' worker count")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="50 HTTP and 20 browser pages, one repeat"
    )
    args = parser.parse_args()
    if args.quick:
        args.pages, args.browser_pages, args.repeat = 50, 20, 1
    args.concurrency = [int(value) for value in str(args.concurrency).split(",")]

    report: dict[str, Any] = {"machine": machine(), "args": vars(args), "throughput": []}
    for browser in (False, True):
        table = throughput(args, browser)
        table["ratios"] = ratios(table)
        report["throughput"].append(table)
    print("extraction and comparison of large pages", flush=True)
    report["extract_compare"] = [
        extract_compare.measure(size, max(args.repeat, 5)) for size in (100, 1000, 2000)
    ] + [extract_compare.measure(1000, max(args.repeat, 5), extract_compare.dense_article)]
    print("store growth", flush=True)
    report["store_growth"] = store_growth.run_all(
        argparse.Namespace(pages=50, unchanged=10, changes=2)
    )
    report["goals"] = goals(report)
    report["machine"]["load"] = f"1-minute load average {min(LOADS):.1f} to {max(LOADS):.1f}"

    text = markdown(report)
    print()
    print(text)
    write_results("suite", report)
    (RESULTS / "suite.md").write_text(text)
    print(f"written {RESULTS / 'suite.md'}")


if __name__ == "__main__":
    main()
