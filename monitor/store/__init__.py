"""The store: SQLite by default, PostgreSQL by URL; schema kept current by Alembic on start.

All writes of one check happen in one transaction (`record_check`), so a crash leaves either
the whole check or none of it.
"""

from __future__ import annotations

import hashlib
import importlib
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from monitor.store import outbox
from monitor.store.models import Base, ChangeRow, CheckRow, PageRow, VersionRow
from monitor.store.prepared import Prepared
from monitor.targets import Page

DEFAULT_DB = "sqlite:///snapshots/monitor.db"
_MIGRATION_LOCK = 7_441_017  # PostgreSQL advisory lock id: one migrator at a time
_SQLITE_BUSY_TIMEOUT = 30.0  # seconds a SQLite connection waits for another's lock

__all__ = [
    "DEFAULT_DB",
    "Base",
    "ChangeRow",
    "CheckRecord",
    "CheckRow",
    "PageRow",
    "PageState",
    "Store",
    "StoreError",
    "VersionRow",
    "content_hash",
]


class StoreError(RuntimeError):
    """The store cannot be opened or written; the message names the database."""


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PageState:
    """What the next check of a page needs to know from its history."""

    version_id: int | None
    text: str | None
    content_hash: str | None
    final_url: str | None
    last_mode: str | None
    last_outcome: str | None
    consecutive_failures: int
    fingerprint: str | None = None  # of the rules that produced `text`
    raw_hash: str | None = None  # of the last page source that showed `text`
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class NewChange:
    kind: str
    severity: str
    summary: str
    reasons: list[str]
    terms: list[str]
    diff: list[dict[str, Any]]


@dataclass(frozen=True)
class CheckRecord:
    """Everything one check writes, in one transaction."""

    page_id: str
    started_at: datetime
    duration_ms: int
    outcome: str
    fetch_mode: str | None = None
    status: int | None = None
    text: str | None = None  # the page's text when it was fetched and extracted
    final_url: str | None = None
    error: str | None = None
    change: NewChange | None = None
    deliveries: tuple[tuple[str, str, datetime], ...] = ()  # (destination key, label, due)
    fingerprint: str | None = None  # of the rules that produced `text`
    capture: bytes | None = None  # the page's source `text` came from, compressed
    raw_hash: str | None = None  # of the page source this check read
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class RecordedCheck:
    check_id: int
    version_id: int | None
    change_id: int | None


CAPTURES_KEPT = int(os.environ.get("MONITOR_CAPTURES_KEPT", "10"))


# The statements every check runs, built once and run on the driver's cursor (`Prepared`).
_PAGES, _VERSIONS = PageRow.__table__, VersionRow.__table__
_PAGE_STATE = Prepared(  # a page's state, in the order of `PageState`'s fields
    select(
        _VERSIONS.c.id.label("version_id"),
        _VERSIONS.c.text,
        _VERSIONS.c.content_hash,
        _VERSIONS.c.final_url,
        _PAGES.c.last_mode,
        _PAGES.c.last_outcome,
        _PAGES.c.consecutive_failures,
        _VERSIONS.c.fingerprint,
        _PAGES.c.raw_hash,
        _PAGES.c.etag,
        _PAGES.c.last_modified,
    )
    .select_from(_PAGES.outerjoin(_VERSIONS, _VERSIONS.c.id == _PAGES.c.current_version_id))
    .where(_PAGES.c.id == bindparam("page_id"))
)
_PAGE_FOR_UPDATE = Prepared(
    select(_PAGES.c.current_version_id, _PAGES.c.consecutive_failures, _PAGES.c.failing_since)
    .where(_PAGES.c.id == bindparam("page_id"))
    .with_for_update()
)
_INSERT_CHECK = Prepared(insert(CheckRow.__table__).returning(CheckRow.__table__.c.id))
_INSERT_CHANGE = insert(ChangeRow.__table__).returning(ChangeRow.__table__.c.id)
_UPDATE_PAGE = Prepared(update(_PAGES).where(_PAGES.c.id == bindparam("page_id")))
_FIND_VERSION = Prepared(
    select(_VERSIONS.c.id).where(
        _VERSIONS.c.page_id == bindparam("page_id"),
        _VERSIONS.c.content_hash == bindparam("content_hash"),
    )
)
_INSERT_VERSION = Prepared(insert(_VERSIONS).returning(_VERSIONS.c.id))
_UPDATE_VERSION = Prepared(update(_VERSIONS).where(_VERSIONS.c.id == bindparam("version_id")))
_PRUNE_CAPTURES = Prepared(
    update(_VERSIONS)
    .where(
        _VERSIONS.c.page_id == bindparam("of_page"),
        _VERSIONS.c.id != bindparam("keep"),
        _VERSIONS.c.capture.is_not(None),
        _VERSIONS.c.id.not_in(
            select(_VERSIONS.c.id)
            .where(_VERSIONS.c.page_id == bindparam("of_page"))
            .order_by(_VERSIONS.c.last_seen.desc(), _VERSIONS.c.id.desc())
            .limit(bindparam("kept"))
            .scalar_subquery()
        ),
    )
    .values(capture=None)
)


def _forget_last_fetch(page: PageRow) -> None:
    """After a rules change the last fetch's hash and validators no longer stand for the
    current text (the next fetch is read in full)."""
    page.raw_hash = page.etag = page.last_modified = None


def redact_url(url: str) -> str:
    """A database URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()  # its busy timeout is the connection's (open_engine)
    _use_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Put the database in WAL mode (a no-op once it is). Switching a new one needs it to
    itself, and SQLite refuses at once, without waiting its busy timeout, while another
    connection holds a lock on it: instances opening a new store together try again."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _full_disk_note(engine: Engine) -> str:
    """SQLite names a full disk met while opening (no room for its shared-memory file) a
    bare "disk I/O error": say what it is when the database's disk is (nearly) full."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return ""
    directory = Path(database).parent
    try:
        stats = os.statvfs(directory)
    except OSError:
        return ""
    free = stats.f_bavail * stats.f_frsize
    if free >= 64 * 1024:
        return ""
    return f" (the disk holding {directory} is full: {free // 1024} KiB free)"


def open_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"--db {url!r} is not a database URL (e.g. sqlite:///snapshots/monitor.db)"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True)


MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision: each migration file is named after its revision id.
HEAD_REVISION = max(path.name.split("_")[0] for path in (MIGRATIONS / "versions").glob("0*.py"))


def schema_revision(engine: Engine) -> str | None:
    """The store's schema revision; None for a new store."""
    with engine.connect() as connection:
        try:
            return connection.scalar(text("SELECT version_num FROM alembic_version"))
        except (OperationalError, ProgrammingError):
            return None


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; instances take turns). A
    store already there is left alone without loading Alembic (a tenth of a second at every
    start of the command line); an empty database gets the newest schema from the models and
    is stamped with its revision, as Alembic's own cookbook builds one from scratch (loading
    Alembic and replaying every migration took a sixth of a second on each first run).
    `tests/test_store.py` checks that both ways give the same schema."""
    if schema_revision(engine) == HEAD_REVISION:
        return
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
        elif connection.dialect.name == "sqlite":
            # sqlite3 runs DDL outside any transaction unless one is open: without this, a
            # process killed mid-migration leaves tables behind and the store cannot start.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        if inspect(connection).get_table_names():
            upgrade(connection)
        else:
            create_newest(connection)


def upgrade(connection: Connection) -> None:
    """Run Alembic's migrations from the store's revision to the newest."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


# Alembic's record of a store's revision, as Alembic itself creates it.
_ALEMBIC_VERSION = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


def create_newest(connection: Connection) -> None:
    """Create the newest schema in an empty database, stamped with its revision."""
    Base.metadata.create_all(connection)
    _ALEMBIC_VERSION.create(connection)
    connection.execute(insert(_ALEMBIC_VERSION).values(version_num=HEAD_REVISION))


class Turn(Protocol):
    """A lock: `threading.Lock`, or `multiprocessing.Lock` to share with forked processes."""

    def acquire(self, *, timeout: float) -> bool: ...

    def release(self) -> None: ...


class Store:
    """Reads and writes the history. Open once per process; thread-safe (one session per call)."""

    def __init__(
        self, url: str = DEFAULT_DB, *, upgrade: bool = True, write_turn: Turn | None = None
    ) -> None:
        """`write_turn`: the lock the store's writers take turns with, shared with other
        processes' stores of the same database (`share_write_turn`); this process's own
        otherwise."""
        self.url = url
        self.engine = open_engine(url)
        try:
            if upgrade:
                migrate(self.engine)
        except OperationalError as exc:
            reason = f"{exc.orig}{_full_disk_note(self.engine)}"
            raise StoreError(f"cannot open the store {redact_url(url)}: {reason}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # PostgreSQL locks rows, not the database: its writers go on together.
        self._turn = write_turn or (
            threading.Lock() if self.engine.dialect.name == "sqlite" else None
        )

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def share_write_turn(self) -> Turn | None:
        """A write turn for this store and the stores of processes forked from now on (given
        it as `write_turn`), None where writers need none. With it, a run's processes queue
        for SQLite's one writer and each hands over at once, instead of sleeping and retrying
        in SQLite's busy handler: 1,000 unchanged checks in four processes took 0.93 of the
        time (median of 8 rounds taken in turn), first checks as long."""
        if self._turn is None:
            return None
        self._turn = multiprocessing.get_context("fork").Lock()
        return self._turn

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        """This process's turn to write. A process killed during its turn keeps it for ever:
        after waiting as long as SQLite's busy timeout, a writer goes on without it (SQLite's
        own lock still keeps writers apart)."""
        if self._turn is None:
            yield
            return
        held = self._turn.acquire(timeout=_SQLITE_BUSY_TIMEOUT)
        try:
            yield
        finally:
            if held:
                self._turn.release()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session for writes, taken in turn (`_write_turn`, as `record_check` does): SQLite
        takes one writer at a time and makes the others sleep and retry (up to 100 ms a turn),
        so the threads of this process (and of a run's helper processes) queue instead, each
        handing over at once."""
        with self._write_turn(), self.session() as session:
            yield session

    def sync_pages(self, pages: Iterable[Page]) -> None:
        """Create or update the row of each declared page (the history is never touched).
        An upsert, so that several instances starting together do not collide."""
        rows = [
            {
                "id": p.id,
                "provider": p.provider,
                "url": p.url,
                "title": p.decl.title,
                "declaration_hash": p.declaration_hash,
                "consecutive_failures": 0,
            }
            for p in pages
        ]
        # The store's own dialect (imported already): PostgreSQL's costs a SQLite store 33 ms.
        dialect = importlib.import_module(f"sqlalchemy.dialects.{self.engine.dialect.name}")
        statement = dialect.insert(_PAGES)
        upsert = statement.on_conflict_do_update(
            index_elements=[_PAGES.c.id],
            set_={
                name: statement.excluded[name]
                for name in ("provider", "url", "title", "declaration_hash")
            },
        )
        if rows:  # one statement, many rows: compiled once, not once per row
            with self.engine.begin() as connection:
                connection.execute(upsert, rows)

    def page_state(self, page_id: str) -> PageState:
        with self.engine.connect() as connection:
            row = _PAGE_STATE.first(connection, {"page_id": page_id})
        if row is None:
            return PageState(None, None, None, None, None, None, 0)
        return PageState(*row)

    def record_check(self, record: CheckRecord) -> RecordedCheck:
        """Write a check, its version (new or seen before) and its change in one transaction.
        The page row is locked first, so that instances checking the same page take turns."""
        with self._write_turn(), self.engine.begin() as connection:
            page = _PAGE_FOR_UPDATE.first(connection, {"page_id": record.page_id})
            if page is None:
                raise StoreError(f"page {record.page_id!r} is not in the store (sync_pages first)")
            current_version_id, failures, failing_since = page
            fields: dict[str, Any] = {
                "last_checked_at": record.started_at,
                "last_outcome": record.outcome,
            }
            version_id = None
            if record.text is not None:
                known = current_version_id is not None
                version_id = self._upsert_version(connection, record, known=known)
                fields |= {"current_version_id": version_id, "last_mode": record.fetch_mode}
            change_id = None
            if record.change is not None:
                change_id = self._insert_change(
                    connection,
                    record.change,
                    record.page_id,
                    (current_version_id, version_id),
                    record.started_at,
                )
                outbox.add(connection, change_id, record.deliveries, record.started_at)
            if record.outcome == "error":
                fields |= {
                    "consecutive_failures": failures + 1,
                    "failing_since": failing_since or record.started_at,
                    "last_error": record.error,
                }
            else:
                fields |= {
                    "consecutive_failures": 0,
                    "failing_since": None,
                    "last_error": None,
                    "raw_hash": record.raw_hash,
                    "etag": record.etag,
                    "last_modified": record.last_modified,
                }
            check = _INSERT_CHECK.first(
                connection,
                {
                    "page_id": record.page_id,
                    "started_at": record.started_at,
                    "duration_ms": record.duration_ms,
                    "outcome": record.outcome,
                    "fetch_mode": record.fetch_mode,
                    "status": record.status,
                    "version_id": version_id,
                    "change_id": change_id,
                    "error": record.error,
                },
            )
            assert check is not None
            _UPDATE_PAGE.run(connection, {"page_id": record.page_id, **fields})
            return RecordedCheck(check[0], version_id, change_id)

    @staticmethod
    def _insert_change(
        connection: Connection,
        change: NewChange,
        page_id: str,
        versions: tuple[int | None, int | None],
        at: datetime,
    ) -> int:
        """The id of a new change row, from version `versions[0]` to `versions[1]`."""
        row = {
            **vars(change),
            "page_id": page_id,
            "from_version_id": versions[0],
            "to_version_id": versions[1],
            "detected_at": at,
        }
        return connection.execute(_INSERT_CHANGE, row).scalar_one()

    @staticmethod
    def _upsert_version(connection: Connection, record: CheckRecord, *, known: bool) -> int:
        """The id of the page's version with this text: found and marked seen, or added.
        Only the latest versions keep their capture (the page's source). A page with no
        version yet (not `known`: every page on a first run) has none to find or let go of."""
        assert record.text is not None
        digest = content_hash(record.text)
        found = {"page_id": record.page_id, "content_hash": digest}
        row = _FIND_VERSION.first(connection, found) if known else None
        version_id = row[0] if row else None
        seen: dict[str, Any] = {"last_seen": record.started_at}
        if record.final_url:
            seen["final_url"] = record.final_url
        if record.fingerprint:
            seen["fingerprint"] = record.fingerprint
        if record.capture is not None:
            seen["capture"] = record.capture
        if version_id is None:
            first = {
                "first_seen": record.started_at,
                "text": record.text,
                "fetch_mode": record.fetch_mode or "http",
                "final_url": "",
                "status": record.status or 200,
            }
            inserted = _INSERT_VERSION.first(connection, found | first | seen)
            assert inserted is not None
            version_id = inserted[0]
        else:
            _UPDATE_VERSION.run(connection, {"version_id": version_id, **seen})
        if record.capture is not None and known:
            kept = {"of_page": record.page_id, "keep": version_id, "kept": CAPTURES_KEPT}
            _PRUNE_CAPTURES.run(connection, kept)
        return version_id

    # -- reading -------------------------------------------------------------------------

    def pages(self) -> list[PageRow]:
        with self.session() as session:
            return list(session.scalars(select(PageRow).order_by(PageRow.provider, PageRow.id)))

    def page(self, page_id: str) -> PageRow | None:
        with self.session() as session:
            return session.get(PageRow, page_id)

    def versions(self, page_id: str) -> list[VersionRow]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(VersionRow)
                    .where(VersionRow.page_id == page_id)
                    .order_by(VersionRow.first_seen)
                )
            )

    def changes(self, page_id: str | None = None, limit: int | None = None) -> list[ChangeRow]:
        with self.session() as session:
            query = select(ChangeRow).order_by(ChangeRow.detected_at.desc(), ChangeRow.id.desc())
            if page_id:
                query = query.where(ChangeRow.page_id == page_id)
            return list(session.scalars(query.limit(limit)))

    def change(self, change_id: int) -> ChangeRow | None:
        with self.session() as session:
            return session.get(ChangeRow, change_id)

    def capture_of(self, version_id: int) -> bytes | None:
        """The compressed page source a version was extracted from, if it is still kept."""
        with self.session() as session:
            return session.scalar(select(VersionRow.capture).where(VersionRow.id == version_id))

    def set_fingerprint(self, version_id: int, fingerprint: str) -> None:
        """New rules for the current version's text (which they read the same)."""
        with self.writing() as session:
            version = session.get(VersionRow, version_id)
            if version is not None:
                version.fingerprint = fingerprint
                page = session.get(PageRow, version.page_id)
                assert page is not None
                _forget_last_fetch(page)

    def record_technical(
        self, page_id: str, text: str, fingerprint: str, at: datetime, change: NewChange
    ) -> int:
        """A technical version: the stored page extracted again with the current rules. It
        becomes the page's current version, with a change that is never alerted."""
        with self.writing() as session:
            page = session.get(PageRow, page_id, with_for_update=True)
            if page is None or page.current_version_id is None:
                raise StoreError(f"page {page_id!r} has no version to extract again")
            previous = session.get(VersionRow, page.current_version_id)
            assert previous is not None
            record = CheckRecord(
                page_id,
                at,
                0,
                "technical",
                fetch_mode=previous.fetch_mode,
                status=previous.status,
                text=text,
                final_url=previous.final_url,
                fingerprint=fingerprint,
                capture=previous.capture,
            )
            connection = session.connection()
            version_id = self._upsert_version(connection, record, known=True)
            self._insert_change(connection, change, page_id, (previous.id, version_id), at)
            page.current_version_id = version_id
            _forget_last_fetch(page)
            return version_id

    def version(self, version_id: int | None) -> VersionRow | None:
        if version_id is None:
            return None
        with self.session() as session:
            return session.get(VersionRow, version_id)

    def checks(self, page_id: str, limit: int = 50) -> list[CheckRow]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(CheckRow)
                    .where(CheckRow.page_id == page_id)
                    .order_by(CheckRow.started_at.desc(), CheckRow.id.desc())
                    .limit(limit)
                )
            )

    def count_checks(self, page_id: str) -> int:
        with self.session() as session:
            return (
                session.scalar(
                    select(func.count()).select_from(CheckRow).where(CheckRow.page_id == page_id)
                )
                or 0
            )
