"""Where a run's time goes inside one process: the checker without the command line.

Serves N realistic HTTP pages (those of bench/check_now.py) from a separate process, so that
the server takes no share of this one's interpreter lock, then checks them twice in a fresh
SQLite store, in this process, at each --concurrency setting: a first run and an unchanged
re-run. For each it prints the wall time, the process's CPU time, how many cores that is,
and the CPU time of the event loop's thread and of the worker threads (extraction, hashing,
compression and the store run there). CPU time well short of wall time × cores, flat across
concurrency settings, means Python's interpreter lock bounds the run, not the cores. With
--processes N, the same pages are then shared among N processes (each with its own store)
at the highest concurrency setting, as `check-now --processes N` shares them (with
--shared-store, all of them write to one SQLite file, as check-now's do).
Writes bench/results/checker_threads.json.

    .venv/bin/python bench/checker_threads.py --pages 1000 --concurrency 2,4,8 --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from check_now import RUNS, realistic_pages, serve, write_results

from monitor.check import Checker
from monitor.fetch import Fetcher
from monitor.store import Store
from monitor.targets import Page, load_targets

_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user and system) of each thread of this process, by native id."""
    seconds = {}
    for task in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds[int(task)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return seconds


def serve_forever(count: int, port: multiprocessing.Queue) -> None:
    server = serve(realistic_pages(count, scripted=False))
    port.put(server.server_address[1])
    threading.Event().wait()


async def timed_run(store: Store, pages: list[Page], concurrency: int) -> dict[str, Any]:
    async with Fetcher(timeout=30) as fetcher:
        checker = Checker(store, fetcher, concurrency=concurrency)
        main = threading.get_native_id()
        before, started = thread_cpu(), time.perf_counter()
        results = await checker.check_all(pages, lambda result: None)
        wall, after = time.perf_counter() - started, thread_cpu()
    spent = {task: after[task] - before.get(task, 0.0) for task in after}
    workers = sorted((cpu for task, cpu in spent.items() if task != main), reverse=True)
    cpu = sum(spent.values())
    return {
        "seconds": round(wall, 2),
        "pages_per_s": round(len(results) / wall, 1),
        "cpu_s": round(cpu, 2),
        "cores": round(cpu / wall, 2),
        "loop_thread_cpu_s": round(spent[main], 2),
        "worker_threads_cpu_s": [round(seconds, 2) for seconds in workers if seconds >= 0.01],
        "statuses": sorted({result.status for result in results}),
    }


def check_share(db: str, pages: list[Page], concurrency: int) -> dict[str, Any]:
    """One process's run over its share of the pages (in a child process)."""
    store = Store(db)
    try:
        return asyncio.run(timed_run(store, pages, concurrency))
    finally:
        store.close()


def shared_runs(
    pages: list[Page], concurrency: int, processes: int, scratch: str, one_store: bool
) -> dict[str, Any]:
    """Both runs with the pages shared among `processes` forked processes, each with its own
    store unless `one_store`: the wall time of the slowest share, the CPU time of all."""
    shares = [pages[n::processes] for n in range(processes)]
    stores = [f"sqlite:///{scratch}/{0 if one_store else n}.db" for n in range(processes)]
    for db, share in zip(stores, shares, strict=True):
        store = Store(db)
        store.sync_pages(share)
        store.close()
    jobs = [(db, share, concurrency) for db, share in zip(stores, shares, strict=True)]
    runs: dict[str, Any] = {}
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for name in RUNS:
            started = time.perf_counter()
            parts = pool.starmap(check_share, jobs)
            wall = time.perf_counter() - started
            cpu = sum(part["cpu_s"] for part in parts)
            runs[name] = {
                "seconds": round(wall, 2),
                "pages_per_s": round(len(pages) / wall, 1),
                "cpu_s": round(cpu, 2),
                "cores": round(cpu / wall, 2),
                "loop_thread_cpu_s": round(sum(part["loop_thread_cpu_s"] for part in parts), 2),
                "statuses": sorted({status for part in parts for status in part["statuses"]}),
            }
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--concurrency", default="2,4,8", help="comma-separated")
    parser.add_argument("--processes", type=int, default=1, help="then share the pages among N")
    parser.add_argument("--shared-store", action="store_true", help="those N write to one store")
    args = parser.parse_args()
    settings = [int(n) for n in args.concurrency.split(",")]

    port: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve_forever, args=(args.pages, port), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{port.get(timeout=120)}"
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as declared:
            pages = [
                {"id": f"bench-{n}", "url": f"{base}/a/{n}", "fetch": "http"}
                for n in range(args.pages)
            ]
            targets = Path(declared) / "bench.yaml"
            targets.write_text(yaml.safe_dump({"provider": "Bench", "pages": pages}))
            loaded = load_targets(Path(declared))
        for concurrency in settings:
            with tempfile.TemporaryDirectory() as scratch:
                store = Store(f"sqlite:///{scratch}/bench.db")
                store.sync_pages(loaded)
                runs = {name: asyncio.run(timed_run(store, loaded, concurrency)) for name in RUNS}
                store.close()
            results[str(concurrency)] = runs
        if args.processes > 1:
            with tempfile.TemporaryDirectory() as scratch:
                label = f"{max(settings)} × {args.processes} processes"
                results[label] = shared_runs(
                    loaded, max(settings), args.processes, scratch, args.shared_store
                )
    finally:
        server.terminate()

    print(f"{args.pages} HTTP pages, checked in this process, {os.cpu_count()} cores")
    print(
        f"{'concurrency':<17}{'run':<18}{'seconds':>8}{'pages/s':>9}{'CPU s':>7}{'cores':>7}"
        f"{'loop s':>8}  worker threads s"
    )
    for concurrency, runs in results.items():
        for name in RUNS:
            run = runs[name]
            print(
                f"{concurrency:<17}{name:<18}{run['seconds']:>8}{run['pages_per_s']:>9}"
                f"{run['cpu_s']:>7}{run['cores']:>7}{run['loop_thread_cpu_s']:>8}  "
                f"{run.get('worker_threads_cpu_s', '')}"
            )
    write_results("checker_threads", {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
