"""Throughput and peak memory of two peer tools, urlwatch and changedetection.io, on N local pages.

Each tool is installed by this script into its own virtual environment under
~/.cache/monitor-bench/peers/<tool>-<version>/ (created once, re-used after) and driven the way
its users drive it, so its figures can sit next to `bench/check_now.py`'s in one run:

* urlwatch 2.29, by its command line in a scratch directory: one `url` job per page (or a
  `browser` job in browser mode), reports to stdout only, run twice on the same cache. Its worker
  count is a module constant (urlwatch.worker.MAX_WORKERS = 10) with no setting, so the hooks
  file, urlwatch's own extension point, sets it. Its browser job calls Playwright's
  `chromium.launch()` with no arguments and offers no executable-path option, so in browser
  mode the hooks file also wraps `BrowserType.launch` to pass executable_path=CHROMIUM (the
  system Chromium our checks use) and our flags. It starts a new Playwright driver and a new
  Chromium for every page: that is how urlwatch works. It compares the whole HTML (no filter),
  it extracts no text.
* changedetection.io 0.60.10, by its server and REST API: a fresh datastore started with all
  scheduled checks paused (-P true; rechecks asked for through the API still run) so that only
  our triggers fetch, its two default watches (public sites) deleted, our N watches added,
  `recheck_all` asked for. FETCH_WORKERS sets its workers, ALLOW_IANA_RESTRICTED_ADDRESSES lets
  it fetch 127.0.0.1, its logging is cut to warnings. In browser mode we start CHROMIUM
  with a DevTools port and point its Playwright fetcher at it (PLAYWRIGHT_DRIVER_URL, watches on
  fetch_backend html_webdriver), as its Docker set-up does with a browser container. Per page
  it starts a Playwright driver, connects over CDP, scrapes every element's position and always
  takes a JPEG screenshot of the page up to 20000 px tall, stitched from chunks in a spawned
  Python process (no setting turns screenshots off; SCREENSHOT_MAX_HEIGHT, passed through from
  our environment, caps their height), all counted here as that is how it works.
  It also waits 5 s after load on every page by default; we set that wait
  (WEBDRIVER_DELAY_BEFORE_CONTENT_READY) to 0, which favours it: our pages are whole when loaded.

Timing: urlwatch's is the wall time of the whole command (interpreter start included);
changedetection.io's runs from the recheck request to the end of the last check, as its own
state records it (last_checked + fetch_time), its server being up already. Peak PSS is summed
over each tool's process tree, Chromium included, sampled every 200 ms during each run.

`ok` counts pages whose fetched content is checked in the tool's own state: urlwatch's report
lines and cache database, changedetection.io's API (check_count, last_error, latest snapshot).
In browser mode a page only counts if the script-built text is in what the tool stored.

    .venv/bin/python bench/peers.py --pages 50 --mode browser --workers 8
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import httpx
import yaml
from check_now import PeakPss, article, serve, write_results

from monitor.fetch.browser import CHROMIUM_FLAGS
from monitor.fetch.install import chromium_executable

PEERS = Path.home() / ".cache" / "monitor-bench" / "peers"
RESULTS = Path(__file__).parent / "results"
# The system Chromium our own checks would use (the headless shell when installed): every
# tool renders with the same browser.
CHROMIUM = chromium_executable()
PLAYWRIGHT = "playwright==1.65.2"  # the version the project's own venv runs
URLWATCH = ("urlwatch", "2.29")
CHANGEDETECTION = ("changedetection.io", "0.60.10")
RUN_TIMEOUT_S = 900
RUNS = ("first run", "unchanged re-run")

URLWATCH_HOOKS = """
import urlwatch.worker

urlwatch.worker.MAX_WORKERS = {workers}
"""
URLWATCH_BROWSER_HOOKS = """
from playwright.sync_api import BrowserType

_launch = BrowserType.launch


def _launch_system_chromium(self, **kwargs):
    kwargs = {{"executable_path": {chromium!r}, "args": {flags!r}, **kwargs}}
    return _launch(self, **kwargs)


BrowserType.launch = _launch_system_chromium
"""


class PeerError(RuntimeError):
    """A peer tool could not be installed, started or waited for."""


def peer_venv(name: str, version: str) -> Path:
    """The tool's own venv, created and installed on first use; re-used while its marker
    file still names the same packages, so a second bench run installs nothing."""
    venv = PEERS / f"{name.split('.')[0]}-{version}"
    wanted = f"{name}=={version}\n{PLAYWRIGHT}\n"
    marker = venv / "installed.txt"
    if marker.exists() and marker.read_text() == wanted:
        return venv
    if not (venv / "bin" / "python").exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    log = venv / "pip.log"
    with log.open("w") as out:
        done = subprocess.run(
            [str(venv / "bin" / "pip"), "install", *wanted.split()], stdout=out, stderr=out
        )
    if done.returncode:
        raise PeerError(f"installing {name}=={version} failed, see {log}")
    marker.write_text(wanted)
    return venv


def stop_group(process: subprocess.Popen[Any]) -> None:
    """Ends a process started in its own session together with everything it started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with suppress(ProcessLookupError):  # children that outlived it still carry its group id
        os.killpg(process.pid, signal.SIGKILL)


def run_record(seconds: float, peak_kb: int, ok: int, failed: int) -> dict[str, Any]:
    pages = ok + failed
    return {
        "seconds": round(seconds, 2),
        "pages_per_s": round(pages / seconds, 1),
        "peak_pss_mb": round(peak_kb / 1024),
        "ok": ok,
        "failed": failed,
    }


def content_shown(text: str, url: str, browser: bool) -> bool:
    """Whether what a tool stored for a page holds its article, built by script in browser
    mode: the raw page carries the article only inside a script, which no tool stores as text."""
    index = url.rsplit("/", 1)[1]
    if browser and "<" in text:
        return '<div id="root"><main>' in text  # the DOM after the script ran
    return f"Help article {index}" in text


# urlwatch


def urlwatch_files(
    scratch: Path, urls: list[str], browser: bool, workers: int, text: bool = False
) -> list[str]:
    """Writes urlwatch's jobs, config and hooks; returns the command line that runs them.
    With `text`, each job has urlwatch's `html2text` filter, so that it compares text."""
    jobs: list[dict[str, str]] = [{"navigate": url} if browser else {"url": url} for url in urls]
    if text:
        jobs = [{**job, "filter": "html2text"} for job in jobs]
    (scratch / "urls.yaml").write_text(yaml.safe_dump_all(jobs))
    config = {
        "display": {"new": True, "error": True, "unchanged": True},
        "report": {"text": {"minimal": True}, "stdout": {"enabled": True, "color": False}},
    }
    (scratch / "urlwatch.yaml").write_text(yaml.safe_dump(config))
    hooks = URLWATCH_HOOKS.format(workers=workers)
    if browser:
        hooks += URLWATCH_BROWSER_HOOKS.format(chromium=CHROMIUM, flags=list(CHROMIUM_FLAGS))
    (scratch / "hooks.py").write_text(hooks)
    venv = peer_venv(*URLWATCH)
    return [
        str(venv / "bin" / "urlwatch"),
        *("--urls", str(scratch / "urls.yaml"), "--config", str(scratch / "urlwatch.yaml")),
        *("--hooks", str(scratch / "hooks.py"), "--cache", str(scratch / "cache.db")),
    ]


def urlwatch_once(command: list[str], scratch: Path) -> tuple[float, int, str]:
    """Runs urlwatch once; returns its wall time, peak PSS and report."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(scratch), "XDG_CACHE_HOME": str(scratch)}
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=scratch,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        with PeakPss([process.pid]) as pss:
            out, err = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as timeout:
        raise PeerError(f"urlwatch did not finish within {RUN_TIMEOUT_S} s") from timeout
    finally:
        stop_group(process)
    elapsed = time.perf_counter() - started
    if process.returncode:
        raise PeerError(f"urlwatch exited with {process.returncode}: {err[-2000:]}")
    return elapsed, pss.peak_kb, out


def urlwatch_verdicts(report: str, cache: Path, browser: bool) -> dict[str, bool]:
    """Per URL, whether urlwatch fetched it: its report does not call it ERROR and the newest
    error-free entry in its cache database (keyed by the sha1 of the URL) holds the page."""
    with closing(sqlite3.connect(cache)) as db:
        rows = db.execute("SELECT guid, data FROM CacheEntry WHERE tries = 0 ORDER BY timestamp")
        stored = dict(rows.fetchall())
    return {
        url: verb != "ERROR"
        and content_shown(stored.get(hashlib.sha1(url.encode()).hexdigest(), ""), url, browser)
        for verb, url in re.findall(r"^(NEW|UNCHANGED|CHANGED|ERROR): (\S+)$", report, re.M)
    }


def run_urlwatch(
    urls: list[str], *, browser: bool, workers: int, text: bool = False
) -> dict[str, Any]:
    """urlwatch's CLI over `urls`, from an empty cache and then again unchanged; with `text`,
    through its html2text filter (what a user watching wording would set)."""
    result: dict[str, Any] = {"version": URLWATCH[1]}
    with tempfile.TemporaryDirectory(prefix="peers-urlwatch-") as tmp:
        scratch = Path(tmp)
        command = urlwatch_files(scratch, urls, browser, workers, text)
        for name in RUNS:
            elapsed, peak_kb, report = urlwatch_once(command, scratch)
            verdicts = urlwatch_verdicts(report, scratch / "cache.db", browser)
            ok = sum(verdicts.get(url, False) for url in urls)
            result[name] = run_record(elapsed, peak_kb, ok, len(urls) - ok)
    return result


# changedetection.io


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what: str, ready: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Polls `ready()` until it returns something truthy; a clear error after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := ready():
            return value
        time.sleep(interval)
    raise PeerError(f"{what}: not done within {timeout:.0f} s")


def devtools_address(active_port: Path) -> str | None:
    """Chromium writes its DevTools port and browser path to this file once it listens."""
    lines = active_port.read_text().split() if active_port.exists() else []
    return f"ws://127.0.0.1:{lines[0]}{lines[1]}" if len(lines) == 2 else None


@contextmanager
def devtools_chromium(scratch: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A headless Chromium with a DevTools port for changedetection.io's Playwright fetcher to
    connect to, as its Docker set-up does with a browser container; yields it and its ws:// URL."""
    profile = scratch / "chromium-profile"
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            *CHROMIUM_FLAGS,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        address = wait_for(
            "changedetection.io: Chromium's DevTools port",
            lambda: devtools_address(profile / "DevToolsActivePort"),
            30,
        )
        yield process, address
    finally:
        stop_group(process)


@contextmanager
def changedetection_server(
    scratch: Path, workers: int, driver_url: str | None
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """changedetection.io on a fresh datastore, scheduled checks paused; yields the process and
    an API client that carries its access token."""
    venv = peer_venv(*CHANGEDETECTION)
    datastore, port = scratch / "datastore", free_port()
    env = {
        **os.environ,
        "FETCH_WORKERS": str(workers),
        "ALLOW_IANA_RESTRICTED_ADDRESSES": "true",
        "WEBDRIVER_DELAY_BEFORE_CONTENT_READY": "0",
        **({"PLAYWRIGHT_DRIVER_URL": driver_url} if driver_url else {}),
    }
    log = (scratch / "changedetection.log").open("wb")
    process = subprocess.Popen(
        [
            *(str(venv / "bin" / "changedetection.py"), "-d", str(datastore), "-C"),
            *("-h", "127.0.0.1", "-p", str(port), "-l", "WARNING", "-P", "true"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        settings = datastore / "changedetection.json"
        wait_for("changedetection.io: datastore", settings.exists, 60)
        token = json.loads(settings.read_text())["settings"]["application"]["api_access_token"]
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1", headers={"x-api-key": token}, timeout=30
        ) as api:
            wait_for("changedetection.io: API", lambda: api_up(api, process), 60)
            yield process, api
    finally:
        stop_group(process)
        log.close()


def api_up(api: httpx.Client, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise PeerError(f"changedetection.io exited with {process.returncode} at start")
    try:
        return api.get("/systeminfo").status_code == 200
    except httpx.TransportError:
        return False


def add_watches(api: httpx.Client, urls: list[str], backend: str) -> dict[str, str]:
    """Deletes the default watches of a fresh datastore (public sites) and adds ours;
    returns {uuid: url}."""
    for uuid in api.get("/watch").raise_for_status().json():
        api.delete(f"/watch/{uuid}").raise_for_status()
    watches = {}
    for url in urls:
        reply = api.post("/watch", json={"url": url, "fetch_backend": backend})
        watches[reply.raise_for_status().json()["uuid"]] = url
    if set(api.get("/watch").json()) != set(watches):
        raise PeerError("changedetection.io: watch list is not the N pages we added")
    return watches


def finished_checks(api: httpx.Client, uuids: set[str], expected: int) -> dict[str, float]:
    """End times of the watches among `uuids` that have finished check number `expected`.
    changedetection.io stamps last_checked with round(start) and fetch_time with the time
    since that rounded stamp, so their sum is when the check ended, to the millisecond."""
    ends = {}
    for uuid in uuids:
        watch = api.get(f"/watch/{uuid}").raise_for_status().json()
        if watch["check_count"] >= expected:
            ends[uuid] = watch["last_checked"] + watch["fetch_time"]
    return ends


def changedetection_pass(
    api: httpx.Client, watches: dict[str, str], roots: list[int], expected: int
) -> tuple[float, int]:
    """Asks for a recheck of every watch and waits until each has finished its check number
    `expected`; returns the time from the request to the last check's end, and peak PSS.
    Polls slowly and only the watches under way, so as to load the server little."""
    time.sleep(1.1)  # last_checked has whole seconds: start in a second no earlier check used
    with PeakPss(roots) as pss:
        triggered = time.time()
        api.get("/watch", params={"recheck_all": 1}).raise_for_status()
        ends: dict[str, float] = {}

        def all_done() -> bool:
            listed = api.get("/watch").raise_for_status().json()
            begun = {uuid for uuid, w in listed.items() if w["last_checked"] >= int(triggered)}
            ends.update(finished_checks(api, begun - set(ends), expected))
            return len(ends) == len(watches)

        wait_for("changedetection.io: checks", all_done, RUN_TIMEOUT_S, interval=0.5)
    return max(ends.values()) - triggered, pss.peak_kb


def changedetection_ok(api: httpx.Client, watches: dict[str, str], browser: bool) -> int:
    """Watches whose last check raised no error and whose newest snapshot holds the page."""
    ok = 0
    for uuid, url in watches.items():
        watch = api.get(f"/watch/{uuid}").raise_for_status().json()
        if watch["last_error"] or not watch["history_n"]:
            continue
        snapshot = api.get(f"/watch/{uuid}/history/latest")
        ok += snapshot.status_code == 200 and content_shown(snapshot.text, url, browser)
    return ok


def run_changedetection(urls: list[str], *, browser: bool, workers: int) -> dict[str, Any]:
    """changedetection.io's server over `urls`: every watch new, then rechecked unchanged."""
    result: dict[str, Any] = {"version": CHANGEDETECTION[1]}
    with tempfile.TemporaryDirectory(prefix="peers-changedetection-") as tmp:
        scratch = Path(tmp)
        with (
            devtools_chromium(scratch) if browser else nullcontext((None, None)) as (chromium, url),
            changedetection_server(scratch, workers, url) as (server, api),
        ):
            backend = "html_webdriver" if browser else "html_requests"
            watches = add_watches(api, urls, backend)
            roots = [server.pid] + ([chromium.pid] if chromium else [])
            for expected, name in enumerate(RUNS, 1):
                elapsed, peak_kb = changedetection_pass(api, watches, roots, expected)
                ok = changedetection_ok(api, watches, browser)
                result[name] = run_record(elapsed, peak_kb, ok, len(urls) - ok)
    return result


# command line


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--mode", choices=("http", "browser"), default="http")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--tools", default="urlwatch,changedetection", help="comma-separated")
    args = parser.parse_args()
    runners = {"urlwatch": run_urlwatch, "changedetection": run_changedetection}
    if unknown := set(args.tools.split(",")) - set(runners):
        parser.error(f"unknown tools {sorted(unknown)}, known: {sorted(runners)}")
    browser = args.mode == "browser"
    server = serve({f"/a/{i}": article(i, 150, browser).encode() for i in range(args.pages)})
    # socketserver listens with a backlog of 5: 8 workers opening connections at once overflow
    # it and the dropped SYN is retried after 1 s, a stall that is the bench's, not the tool's
    server.socket.listen(128)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    urls = [f"{base}/a/{i}" for i in range(args.pages)]
    results: dict[str, Any] = {}
    try:
        for tool in args.tools.split(","):
            try:
                results[tool] = runners[tool](urls, browser=browser, workers=args.workers)
            except (PeerError, httpx.HTTPError) as error:
                results[tool] = {"error": f"{type(error).__name__}: {error}"}
    finally:
        server.shutdown()

    print(f"{args.pages} pages ({args.mode}), {args.workers} workers, {os.cpu_count()} cores")
    print(f"{'tool':<26}{'run':<18}{'seconds':>9}{'pages/s':>9}{'peak PSS MB':>13}  ok/failed")
    for tool, result in results.items():
        label = f"{tool} {result.get('version', '')}"
        if "error" in result:
            print(f"{label:<26}error: {result['error']}")
            continue
        for name in RUNS:
            run = result[name]
            print(
                f"{label:<26}{name:<18}{run['seconds']:>9}{run['pages_per_s']:>9}"
                f"{run['peak_pss_mb']:>13}  {run['ok']}/{run['failed']}"
            )
    write_results("peers", {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
