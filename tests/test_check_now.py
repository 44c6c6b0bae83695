"""`monitor check-now` as a user runs it, against pages served on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import main
from tests.conftest import Site, help_article, write_targets


def monitor(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def json_lines(result: Result) -> dict[str, dict]:
    return {line["target"]: line for line in map(json.loads, result.stdout.splitlines())}


CONTRACT_KEYS = {
    "target",
    "url",
    "status",
    "severity",
    "change_id",
    "summary",
    "error",
    "duration_ms",
}


def test_first_unchanged_changed_then_diff(site: Site, targets_dir: Path, db_url: str) -> None:
    url = site.page(
        "/training",
        help_article(
            "Is my data used for model training?",
            "You can turn off Help improve Claude in Privacy Settings.",
            "The setting applies to new and resumed conversations.",
        ),
    )
    write_targets(
        targets_dir, "Anthropic", [{"id": "claude-training", "url": url, "fetch": "http"}]
    )
    args = ("check-now", "--json", "--targets", str(targets_dir), "--db", db_url)

    first = monitor(*args)
    assert first.exit_code == 0, first.stderr
    line = json_lines(first)["claude-training"]
    assert line.keys() >= CONTRACT_KEYS
    assert (line["status"], line["severity"], line["error"], line["url"]) == (
        "first",
        None,
        None,
        url,
    )

    again = json_lines(monitor(*args))["claude-training"]
    assert again["status"] == "unchanged" and again["change_id"] is None

    site.page(
        "/training",
        help_article(
            "Is my data used for model training?",
            "You can turn off Help improve Claude in Privacy Settings.",
            "The setting applies to new conversations only.",
        ),
    )
    changed = monitor(*args)
    assert changed.exit_code == 0
    line = json_lines(changed)["claude-training"]
    assert line["status"] == "changed"
    assert line["severity"] in ("minor", "relevant", "critical")
    assert isinstance(line["change_id"], int)

    shown = monitor("diff", str(line["change_id"]), "--db", db_url)
    assert shown.exit_code == 0
    assert "- The setting applies to new and resumed conversations." in shown.stdout
    assert "+ The setting applies to new conversations only." in shown.stdout

    history = monitor("history", "claude-training", "--db", db_url, "--json")
    data = json.loads(history.stdout)
    assert [c["outcome"] for c in data["checks"]] == ["changed", "unchanged", "first"]
    assert len(data["versions"]) == 2
    assert [c["id"] for c in data["changes"]] == [line["change_id"]]


def test_unreachable_pages_exit_1_and_are_recorded(
    site: Site, targets_dir: Path, sqlite_url: str
) -> None:
    ok = site.page("/ok", help_article("Privacy", "We do not sell your personal data."))
    slow = site.page("/slow", help_article("Slow", "Eventually."), delay=5)
    write_targets(
        targets_dir,
        "Mixed",
        [
            {"id": "ok", "url": ok, "fetch": "http"},
            {"id": "missing", "url": site.url("/gone"), "fetch": "http"},
            {"id": "slow", "url": slow, "fetch": "http"},
            {"id": "refused", "url": "http://127.0.0.1:9/nothing", "fetch": "http"},
        ],
    )
    result = monitor(
        "check-now",
        "--json",
        "--retry-delay",
        "0",
        "--timeout",
        "1.5",
        "--targets",
        str(targets_dir),
        "--db",
        sqlite_url,
    )
    assert result.exit_code == 1
    lines = json_lines(result)
    assert lines["ok"]["status"] == "first"
    assert lines["missing"]["status"] == "error" and "404" in lines["missing"]["error"]
    assert lines["slow"]["status"] == "error" and "timed out" in lines["slow"]["error"]
    assert lines["slow"]["duration_ms"] < 4000
    assert lines["refused"]["status"] == "error" and "refused" in lines["refused"]["error"]
    history = json.loads(monitor("history", "missing", "--db", sqlite_url, "--json").stdout)
    assert history["page"]["consecutive_failures"] == 1
    assert history["checks"][0]["error"] == lines["missing"]["error"]


def test_redirect_is_followed_and_recorded(site: Site, targets_dir: Path, sqlite_url: str) -> None:
    target = site.page("/new-home", help_article("Data controls", "Turn off model training."))
    start = site.redirect("/old-home", "/new-home", 301)
    write_targets(targets_dir, "Moved", [{"id": "moved", "url": start, "fetch": "http"}])
    result = monitor("check-now", "--json", "--targets", str(targets_dir), "--db", sqlite_url)
    assert json_lines(result)["moved"]["status"] == "first"
    history = json.loads(monitor("history", "moved", "--db", sqlite_url, "--json").stdout)
    assert history["versions"][0]["final_url"] == target


def test_redirect_loop_is_an_error(site: Site, targets_dir: Path, sqlite_url: str) -> None:
    site.redirect("/a", "/b")
    site.redirect("/b", "/a")
    write_targets(targets_dir, "Loop", [{"id": "loop", "url": site.url("/a"), "fetch": "http"}])
    result = monitor("check-now", "--json", "--targets", str(targets_dir), "--db", sqlite_url)
    assert result.exit_code == 1
    assert "redirect loop" in json_lines(result)["loop"]["error"]


def test_invalid_target_file_checks_nothing(site: Site, targets_dir: Path, sqlite_url: str) -> None:
    url = site.page("/p", help_article("P", "text"))
    write_targets(targets_dir, "Good", [{"id": "good", "url": url}])
    write_targets(targets_dir, "Bad", [{"id": "Bad Id", "url": "ftp://x"}])
    result = monitor("check-now", "--json", "--targets", str(targets_dir), "--db", sqlite_url)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "bad.yaml: page 'Bad Id': field id" in result.stderr
    assert "field url" in result.stderr
    assert site.hits == {}


def test_unknown_id_is_a_usage_error(targets_dir: Path, sqlite_url: str) -> None:
    write_targets(targets_dir, "One", [{"id": "one", "url": "http://127.0.0.1:9/"}])
    result = monitor("check-now", "nope", "--targets", str(targets_dir), "--db", sqlite_url)
    assert result.exit_code == 2
    assert "unknown page id: nope" in result.stderr


def test_named_ids_only(site: Site, targets_dir: Path, sqlite_url: str) -> None:
    a = site.page("/a", help_article("A", "alpha"))
    b = site.page("/b", help_article("B", "beta"))
    write_targets(
        targets_dir,
        "Two",
        [{"id": "a", "url": a, "fetch": "http"}, {"id": "b", "url": b, "fetch": "http"}],
    )
    result = monitor("check-now", "b", "--json", "--targets", str(targets_dir), "--db", sqlite_url)
    assert list(json_lines(result)) == ["b"]
    assert "/a" not in site.hits


@pytest.mark.browser
def test_auto_uses_browser_for_script_built_page(
    site: Site, targets_dir: Path, sqlite_url: str
) -> None:
    static = site.page("/static", help_article("Static", "We never train on your chats."))
    scripted = site.page(
        "/app",
        """<!doctype html><html><body><div id="app"></div>
<noscript>You need to enable JavaScript to run this app.</noscript>
<script>
document.getElementById('app').innerHTML =
  '<main><h1>Data Controls</h1><p>Improve the model for everyone: on by default.</p></main>';
</script></body></html>""",
    )
    write_targets(
        targets_dir,
        "Auto",
        [{"id": "static", "url": static}, {"id": "scripted", "url": scripted, "select": "main"}],
    )
    result = monitor("check-now", "--json", "--targets", str(targets_dir), "--db", sqlite_url)
    assert result.exit_code == 0, result.stderr
    lines = json_lines(result)
    assert lines["static"]["fetch"] == "http"
    assert lines["scripted"]["fetch"] == "browser" and lines["scripted"]["status"] == "first"
    assert "browser:" in result.stderr
    history = json.loads(monitor("history", "scripted", "--db", sqlite_url, "--json").stdout)
    assert history["versions"][0]["fetch"] == "browser"


PROGRAM_THEN_GC = """
import gc, sys, threading
from monitor.__main__ import program
sys.argv = ["monitor", "--version"]
running = threading.Event()
threading.Thread(target=running.wait, args=(30,)).start()  # so Python's own way out is taken
try:
    program()
except SystemExit:
    pass
running.set()
print(gc.isenabled(), gc.get_freeze_count() > 0)
"""


def test_the_program_imports_without_the_collector_and_turns_it_back_on() -> None:
    run = subprocess.run([sys.executable, "-c", PROGRAM_THEN_GC], capture_output=True, text=True)
    version, collector = run.stdout.splitlines()
    assert version.startswith("monitor, version ") and collector == "True True", run.stderr
    module = subprocess.run([sys.executable, "-m", "monitor", "--version"], capture_output=True)
    assert module.returncode == 0 and b"version" in module.stdout


END_AT_ONCE = """
import logging, sys
from monitor.__main__ import _end
logging.basicConfig(stream=sys.stderr, format="%(message)s")
for line in range(20_000):
    sys.stdout.write("x" * 10)
logging.getLogger("test").warning("logged last")
_end(SystemExit(3))
print("after the end")
"""


def test_the_program_ends_at_once_with_its_status_and_all_its_output() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # output buffered
    run = subprocess.run(
        [sys.executable, "-c", END_AT_ONCE], capture_output=True, text=True, env=env
    )
    assert run.returncode == 3, run.stderr
    assert run.stdout == "x" * 200_000  # flushed, and nothing ran after the end
    assert run.stderr == "logged last\n"
