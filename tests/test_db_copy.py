"""`monitor db copy`: a real SQLite history moves to PostgreSQL and carries on there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from monitor.cli import main
from monitor.schedule import lock_sqlite
from tests.conftest import Site, help_article, write_targets

pytestmark = pytest.mark.postgres

TABLES = ("pages", "versions", "changes", "checks")


def monitor(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def check_now(targets_dir: Path, db: str) -> dict[str, dict]:
    result = monitor("check-now", "--json", "--targets", str(targets_dir), "--db", db)
    assert result.exit_code in (0, 1), result.output
    return {line["target"]: line for line in map(json.loads, result.stdout.splitlines())}


def as_json(*args: str) -> dict:
    result = monitor(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def table_rows(url: str) -> dict[str, list[tuple]]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        rows = {
            name: [
                tuple(row) for row in connection.execute(text(f"SELECT id FROM {name} ORDER BY id"))
            ]
            for name in TABLES
        }
    engine.dispose()
    return rows


def training_page(last: str) -> str:
    return help_article(
        "Is my data used for model training?",
        "You can turn off Help improve Claude in Privacy Settings.",
        last,
    )


@pytest.fixture
def history_on_sqlite(site: Site, targets_dir: Path, sqlite_url: str) -> dict[str, int]:
    """Two pages checked four times: a first version, an unchanged check, a wording change,
    a failure and a recovery. Returns the change ids recorded."""
    training = site.page("/training", training_page("It applies to new and resumed chats."))
    export = site.page("/export", help_article("Export your data", "Go to Settings › Export."))
    write_targets(
        targets_dir,
        "Anthropic",
        [
            {"id": "claude-training", "url": training, "fetch": "http"},
            {"id": "claude-export", "url": export, "fetch": "http"},
        ],
    )
    check_now(targets_dir, sqlite_url)
    check_now(targets_dir, sqlite_url)
    site.page("/training", training_page("It applies to new chats only."))
    site.page("/export", "<h1>Server error</h1>", status=500)
    third = check_now(targets_dir, sqlite_url)
    site.page("/export", help_article("Export your data", "Go to Settings › Export."))
    fourth = check_now(targets_dir, sqlite_url)
    assert third["claude-training"]["status"] == "changed"
    assert third["claude-export"]["status"] == "error"
    return {
        "wording": third["claude-training"]["change_id"],
        "recovery": fourth["claude-export"]["change_id"],
    }


def test_copy_keeps_the_history_and_new_checks_continue(
    tmp_path: Path,
    site: Site,
    targets_dir: Path,
    sqlite_url: str,
    postgres_url: str,
    history_on_sqlite: dict[str, int],
) -> None:
    before = {
        page: as_json("history", page, "--db", sqlite_url)
        for page in ("claude-training", "claude-export")
    }
    wording_diff = as_json("diff", str(history_on_sqlite["wording"]), "--db", sqlite_url)
    rows_before = table_rows(sqlite_url)

    copied = monitor("db", "copy", sqlite_url, postgres_url)
    assert copied.exit_code == 0, copied.output
    assert "pages: 2 row(s)" in copied.stderr
    assert f"checks: {len(rows_before['checks'])} row(s)" in copied.stderr

    assert table_rows(postgres_url) == rows_before
    for page, shown in before.items():
        assert as_json("history", page, "--db", postgres_url) == shown
    assert as_json("diff", str(history_on_sqlite["wording"]), "--db", postgres_url) == wording_diff
    rendered = monitor("diff", str(history_on_sqlite["wording"]), "--db", postgres_url)
    assert "- It applies to new and resumed chats." in rendered.stdout

    site.page("/training", training_page("It applies to no chats at all."))
    after = check_now(targets_dir, postgres_url)
    assert after["claude-training"]["status"] == "changed"
    assert after["claude-export"]["status"] == "unchanged"
    new_change = after["claude-training"]["change_id"]
    assert new_change > max(id_ for (id_,) in rows_before["changes"])
    rows_after = table_rows(postgres_url)
    assert len(rows_after["checks"]) == len(rows_before["checks"]) + 2
    assert min(rows_after["checks"])[0] == min(rows_before["checks"])[0]
    history = as_json("history", "claude-training", "--db", postgres_url)
    assert [c["id"] for c in history["changes"]] == [new_change, history_on_sqlite["wording"]]

    back = f"sqlite:///{tmp_path / 'back.db'}"
    assert monitor("db", "copy", postgres_url, back).exit_code == 0
    assert as_json("history", "claude-training", "--db", back) == history
    assert table_rows(back) == rows_after


def test_copy_refuses_a_destination_that_has_a_history(
    targets_dir: Path, sqlite_url: str, postgres_url: str, history_on_sqlite: dict[str, int]
) -> None:
    assert monitor("db", "copy", sqlite_url, postgres_url).exit_code == 0
    again = monitor("db", "copy", sqlite_url, postgres_url)
    assert again.exit_code == 2
    assert "already holds a history" in again.stderr
    assert len(table_rows(postgres_url)["changes"]) == len(table_rows(sqlite_url)["changes"])


def test_copy_refuses_a_missing_source_and_a_running_daemon(
    tmp_path: Path, sqlite_url: str, postgres_url: str, history_on_sqlite: dict[str, int]
) -> None:
    missing = monitor("db", "copy", f"sqlite:///{tmp_path / 'nope.db'}", postgres_url)
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert not (tmp_path / "nope.db").exists()

    lock = lock_sqlite(sqlite_url)
    try:
        busy = monitor("db", "copy", sqlite_url, postgres_url)
    finally:
        assert lock is not None
        lock.close()
    assert busy.exit_code == 2
    assert "stop it before copying" in busy.stderr
    assert monitor("db", "copy", sqlite_url, postgres_url).exit_code == 0
