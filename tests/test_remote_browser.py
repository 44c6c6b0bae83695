"""MONITOR_BROWSER pointing at a browser that runs elsewhere: here a real headless Chromium on
127.0.0.1 exposing its DevTools endpoint, as a browser service in a cluster would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import main
from monitor.fetch.browser import CHROMIUM_FLAGS
from monitor.fetch.install import chromium_executable
from tests.conftest import Site, write_targets

pytestmark = pytest.mark.browser

SCRIPTED = """<!doctype html><html><head><title>Privacy settings</title></head><body>
<main id="app"></main>
<script>
  const main = document.getElementById("app");
  for (const line of %s) {
    const p = document.createElement("p");
    p.textContent = line;
    main.appendChild(p);
  }
</script></body></html>"""


def scripted_page(*lines: str) -> str:
    return SCRIPTED % json.dumps(lines)


class RemoteChromium:
    """A headless Chromium started by the test, reachable only through its DevTools port."""

    def __init__(self, profile: Path) -> None:
        self.process = subprocess.Popen(
            [
                chromium_executable(),
                "--headless",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                *CHROMIUM_FLAGS,
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own process group: a distribution's launcher script may not `exec` the browser.
            start_new_session=True,
        )
        self.port = 0
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("headless Chromium did not open its DevTools port")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_endpoint(self) -> str:
        with urllib.request.urlopen(f"{self.http_endpoint}/json/version", timeout=10) as reply:
            return json.load(reply)["webSocketDebuggerUrl"]

    def stop(self) -> None:
        """Stop the browser and every process it started; return once its port is shut."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while self.port and self._port_open() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.port and self._port_open():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def _port_open(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True


@pytest.fixture
def remote_chromium(tmp_path: Path) -> Iterator[RemoteChromium]:
    browser = RemoteChromium(tmp_path / "profile")
    yield browser
    browser.stop()


def check_now(targets_dir: Path, db: str, endpoint: str) -> Result:
    return CliRunner().invoke(
        main,
        ["check-now", "--json", "--targets", str(targets_dir), "--db", db],
        env={"MONITOR_BROWSER": endpoint},
        catch_exceptions=False,
    )


@pytest.mark.parametrize("kind", ["http", "ws"])
def test_check_now_renders_through_the_remote_browser(
    kind: str, site: Site, targets_dir: Path, sqlite_url: str, remote_chromium: RemoteChromium
) -> None:
    endpoint = remote_chromium.http_endpoint if kind == "http" else remote_chromium.ws_endpoint()
    url = site.page("/settings", scripted_page("Chat history is on.", "Turn it off below."))
    write_targets(targets_dir, "Example", [{"id": "settings", "url": url, "fetch": "browser"}])

    first = check_now(targets_dir, sqlite_url, endpoint)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["status"] == "first"
    assert f"browser: remote browser at {endpoint} (MONITOR_BROWSER)" in first.stderr

    site.page("/settings", scripted_page("Chat history is off.", "Turn it off below."))
    second = check_now(targets_dir, sqlite_url, endpoint)
    line = json.loads(second.stdout)
    assert line["status"] == "changed"
    shown = CliRunner().invoke(main, ["diff", str(line["change_id"]), "--db", sqlite_url])
    # Only a browser that ran the page's script sees these sentences at all.
    assert "- Chat history is on." in shown.stdout
    assert "+ Chat history is off." in shown.stdout

    remote_chromium.stop()
    gone = check_now(targets_dir, sqlite_url, endpoint)
    assert gone.exit_code == 1
    assert json.loads(gone.stdout)["status"] == "error"
