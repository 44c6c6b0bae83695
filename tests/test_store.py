"""The store on SQLite and on PostgreSQL: one transaction per check, text stored once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, bindparam, inspect, select, text
from sqlalchemy.exc import StatementError

import monitor.store as store_module
from monitor.store import (
    HEAD_REVISION,
    MIGRATIONS,
    CheckRecord,
    NewChange,
    Store,
    StoreError,
    open_engine,
    schema_revision,
    upgrade,
)
from monitor.store.models import Base, CheckRow
from monitor.store.prepared import Prepared
from monitor.targets import load_targets
from tests.conftest import _postgres_database, write_targets

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _store_with_a_page(url: str, targets_dir: Path) -> Iterator[Store]:
    write_targets(targets_dir, "P", [{"id": "page", "url": "https://x.test/"}])
    store = Store(url)
    store.sync_pages(load_targets(targets_dir))
    yield store
    store.close()


@pytest.fixture
def store(db_url: str, targets_dir: Path) -> Iterator[Store]:
    yield from _store_with_a_page(db_url, targets_dir)


@pytest.fixture
def sqlite_store(sqlite_url: str, targets_dir: Path) -> Iterator[Store]:
    yield from _store_with_a_page(sqlite_url, targets_dir)


def record(n: int, outcome: str, text: str | None = None, **extra) -> CheckRecord:
    return CheckRecord(
        "page",
        T0 + timedelta(hours=n),
        10,
        outcome,
        fetch_mode="http",
        status=200,
        text=text,
        final_url="https://x.test/",
        **extra,
    )


def change(severity: str = "minor") -> NewChange:
    return NewChange(
        "content",
        severity,
        "s",
        ["r"],
        [],
        [{"old_start": 0, "new_start": 0, "removed": ["a"], "added": ["b"]}],
    )


def schema(engine: Engine) -> dict[str, Any]:
    """What a store's schema holds, table by table, in terms that do not depend on how it
    was built (the order of creation, constraint names SQLite does not keep)."""
    inspector = inspect(engine)
    tables = {}
    for table in sorted(inspector.get_table_names()):
        tables[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"], c["default"])
                for c in inspector.get_columns(table)
            ),
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign keys": sorted(
                (tuple(k["constrained_columns"]), k["referred_table"], k["options"].get("ondelete"))
                for k in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
        }
    return tables


def test_a_new_store_has_the_schema_the_migrations_build(
    db_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A new store is created from the models, not by replaying the migrations: both must
    give the same schema, which is also the models' (as Alembic compares them)."""
    created = Store(db_url)
    with ExitStack() as cleanup:
        if created.engine.dialect.name == "sqlite":
            migrated_url = f"sqlite:///{tmp_path / 'migrated.db'}"
        else:
            migrated_url = cleanup.enter_context(contextmanager(_postgres_database)())
        migrated = open_engine(migrated_url)
        with migrated.begin() as connection:
            upgrade(connection)
        with migrated.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        assert schema(created.engine) == schema(migrated)
        assert len(schema(migrated)) == 6  # the five tables and Alembic's own
        assert schema_revision(created.engine) == schema_revision(migrated) == HEAD_REVISION
        migrated.dispose()
    created.close()


def test_an_older_store_is_migrated_and_keeps_its_history(db_url: str) -> None:
    engine = open_engine(db_url)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            text(
                "INSERT INTO pages (id, provider, url, declaration_hash, consecutive_failures) "
                "VALUES ('old', 'P', 'https://x.test/', 'h', 0)"
            )
        )
    engine.dispose()
    store = Store(db_url)
    assert schema_revision(store.engine) == HEAD_REVISION
    assert store.page("old").url == "https://x.test/"
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    store.close()


def test_instances_creating_a_new_store_at_once_take_turns(db_url: str, tmp_path: Path) -> None:
    """The first creates the schema; the others, waiting for its lock, find it there. On
    SQLite, ten new stores: a lost race shows in about one of ten."""
    if db_url.startswith("sqlite"):
        urls = [f"sqlite:///{tmp_path / f'new-{n}.db'}" for n in range(10)]
    else:
        urls = [db_url]
    for url in urls:
        start = threading.Barrier(4)

        def open_store(url: str = url, start: threading.Barrier = start) -> str | None:
            start.wait()
            store = Store(url)
            try:
                return schema_revision(store.engine)
            finally:
                store.close()

        with ThreadPoolExecutor(4) as pool:
            revisions = [pool.submit(open_store) for _ in range(4)]
        assert [r.result() for r in revisions] == [HEAD_REVISION] * 4, url


def test_the_quick_start_knows_the_newest_revision(store: Store) -> None:
    """Alembic is skipped when the store is at HEAD_REVISION: it must be Alembic's head."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION
    assert schema_revision(store.engine) == HEAD_REVISION


def test_reopening_is_idempotent(store: Store) -> None:
    Store(store.url).close()
    assert store.page("page") is not None


def test_versions_are_stored_once_and_reused(store: Store) -> None:
    first = store.record_check(record(0, "first", "A"))
    store.record_check(record(1, "unchanged"))
    second = store.record_check(record(2, "changed", "B", change=change()))
    back = store.record_check(record(3, "changed", "A", change=change()))
    assert back.version_id == first.version_id != second.version_id
    versions = store.versions("page")
    assert [v.text for v in versions] == ["A", "B"]
    assert versions[0].last_seen == T0 + timedelta(hours=3)
    assert store.page_state("page").text == "A"
    changes = store.changes("page")
    assert [(c.from_version_id, c.to_version_id) for c in changes] == [
        (second.version_id, first.version_id),
        (first.version_id, second.version_id),
    ]
    assert store.count_checks("page") == 4


def test_syncing_again_updates_the_declaration_and_keeps_the_history(
    store: Store, targets_dir: Path
) -> None:
    first = store.record_check(record(0, "first", "A"))
    store.record_check(record(1, "error", error="HTTP 503"))
    moved = [
        {"id": "page", "url": "https://x.test/new", "title": "Moved"},
        {"id": "other", "url": "https://x.test/o"},
    ]
    (targets_dir / "p.yaml").unlink()
    write_targets(targets_dir, "Q", moved)
    store.sync_pages(load_targets(targets_dir))
    store.sync_pages([])
    page = store.page("page")
    assert (page.provider, page.url, page.title) == ("Q", "https://x.test/new", "Moved")
    assert page.current_version_id == first.version_id
    assert page.consecutive_failures == 1  # the declaration's upsert leaves the checks' state
    assert store.page("other") is not None


def test_failures_are_counted_and_cleared(store: Store) -> None:
    store.record_check(record(0, "first", "A"))
    store.record_check(CheckRecord("page", T0 + timedelta(hours=1), 5, "error", error="HTTP 503"))
    store.record_check(CheckRecord("page", T0 + timedelta(hours=2), 5, "error", error="HTTP 503"))
    page = store.page("page")
    assert (page.consecutive_failures, page.failing_since, page.last_error) == (
        2,
        T0 + timedelta(hours=1),
        "HTTP 503",
    )
    assert store.page_state("page").text == "A"
    store.record_check(record(3, "unchanged"))
    page = store.page("page")
    assert (page.consecutive_failures, page.failing_since) == (0, None)


def test_a_failed_write_leaves_nothing(store: Store) -> None:
    store.record_check(record(0, "first", "A"))
    with pytest.raises(StoreError):
        store.record_check(CheckRecord("not-declared", T0, 1, "first", text="X"))
    bad = NewChange("content", "minor", "s", ["r"], [], [{"not": object()}])  # not JSON
    with pytest.raises((StatementError, TypeError)):  # wrapped on SQLite, raw on psycopg
        store.record_check(record(1, "changed", "B", change=bad))
    assert [v.text for v in store.versions("page")] == ["A"]
    assert store.changes("page") == []
    assert store.count_checks("page") == 1
    assert store.page_state("page").text == "A"


def _write_in_a_thread(store: Store, n: int) -> float:
    """Record a check from another thread and return how long it took; a write that never
    gets its turn fails the test instead of hanging it."""
    writer = threading.Thread(
        target=store.record_check, args=(record(n, "first", "A"),), daemon=True
    )
    started = time.monotonic()
    writer.start()
    writer.join(10)
    assert not writer.is_alive(), "the write never got its turn"
    return time.monotonic() - started


def test_writers_of_forked_processes_take_turns(sqlite_store: Store, sqlite_url: str) -> None:
    """A run's processes share one write turn: a write waits while another process holds
    it (here, the test), and goes on once it is handed over."""
    turn = sqlite_store.share_write_turn()
    assert turn is not None
    helper = Store(sqlite_url, upgrade=False, write_turn=turn)  # as a forked helper opens it
    try:
        assert turn.acquire(timeout=1)
        threading.Timer(0.3, turn.release).start()
        assert _write_in_a_thread(helper, 0) >= 0.25
        assert sqlite_store.count_checks("page") == 1
        assert turn.acquire(timeout=1), "the writer kept the turn"
        turn.release()
    finally:
        helper.close()


def test_a_turn_never_handed_over_is_passed_after_the_busy_timeout(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process killed during its turn keeps it for ever: the others wait as long as
    SQLite's busy timeout, then write without it."""
    monkeypatch.setattr(store_module, "_SQLITE_BUSY_TIMEOUT", 0.3)
    turn = sqlite_store.share_write_turn()
    assert turn is not None and turn.acquire(timeout=1)  # held by a process now gone
    assert _write_in_a_thread(sqlite_store, 0) >= 0.25
    assert _write_in_a_thread(sqlite_store, 1) >= 0.25
    assert sqlite_store.count_checks("page") == 2


@pytest.mark.postgres
def test_postgresql_writers_need_no_turn(postgres_url: str) -> None:
    store = Store(postgres_url)
    try:
        assert store.share_write_turn() is None
    finally:
        store.close()


def test_datetimes_come_back_in_utc(store: Store) -> None:
    store.record_check(record(0, "first", "A"))
    with store.session() as session:
        check = session.query(CheckRow).one()
        assert check.started_at == T0 and check.started_at.tzinfo is not None


def test_a_check_is_stored_as_sqlalchemy_itself_stores_it(store: Store) -> None:
    """The check's statements run on the driver's cursor (`Prepared`): the values reach the
    database in the form SQLAlchemy gives them, and come back through it unchanged."""
    store.record_check(record(0, "first", "A", capture=b"\x00source", raw_hash="h"))
    with store.session() as session:
        session.add(CheckRow(page_id="page", started_at=T0, duration_ms=1, outcome="first"))
    with store.engine.connect() as connection:
        stored = connection.execute(text("SELECT started_at FROM checks ORDER BY id")).all()
    assert stored[0] == stored[1]  # the same datetime, written both ways: the same form
    version = store.versions("page")[0]
    assert (version.first_seen, store.capture_of(version.id)) == (T0, b"\x00source")
    assert store.page_state("page").raw_hash == "h"


def test_a_statement_missing_a_value_is_refused_by_name(store: Store) -> None:
    statement = Prepared(select(CheckRow.__table__.c.id).where(CheckRow.page_id == bindparam("p")))
    with store.engine.connect() as connection, pytest.raises(ValueError, match="'p'"):
        statement.first(connection, {})


def test_bad_urls_are_clear() -> None:
    with pytest.raises(StoreError, match="is not a database URL"):
        Store("not a url")
    with pytest.raises(StoreError, match="cannot open the store postgresql"):
        Store("postgresql://postgres:secret@127.0.0.1:9/none")
