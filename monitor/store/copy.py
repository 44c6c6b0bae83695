"""Copy a whole store to another database (SQLite → PostgreSQL, or back) without losing a row.

Both stores are brought to the newest schema first, so their tables match. Every table the
source holds is copied with its ids unchanged, in foreign-key order, in one transaction on the
destination; on PostgreSQL the id sequences are then moved past the copied ids, so new checks
continue without collisions. The destination must be empty: a copy never merges histories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Integer, MetaData, Table, func, make_url, select, text
from sqlalchemy.exc import ArgumentError

from monitor.store import Base, Store, StoreError, redact_url

BATCH = 1000
SCHEMA_TABLE = "alembic_version"  # written by the migrations on each side, never copied


class CopyRefused(StoreError):
    """The copy would merge into, or overwrite, a store that already holds a history."""


@dataclass(frozen=True)
class TableCopied:
    name: str
    rows: int


def copy_store(
    source_url: str, dest_url: str, progress: Callable[[TableCopied], None] | None = None
) -> list[TableCopied]:
    """Copy every table of `source_url` into the empty store at `dest_url`; rows per table."""
    if source_url == dest_url:
        raise CopyRefused("the source and the destination are the same database")
    _require_existing(source_url)
    source, dest = Store(source_url), Store(dest_url)
    try:
        tables = _tables_to_copy(source, dest)
        copied: list[TableCopied] = []
        with source.engine.connect() as reading, dest.engine.begin() as writing:
            if writing.dialect.name == "postgresql":
                writing.execute(text("SET LOCAL TIME ZONE 'UTC'"))
            for table in tables:
                if writing.scalar(select(func.count()).select_from(table)):
                    raise CopyRefused(
                        f"the destination {redact_url(dest_url)} already holds a history "
                        f"(table {table.name} has rows); copy into an empty database"
                    )
            for table in tables:
                done = TableCopied(table.name, _copy_rows(table, reading, writing))
                copied.append(done)
                if progress:
                    progress(done)
            _verify_counts(tables, copied, writing)
            if writing.dialect.name == "postgresql":
                _reset_sequences(tables, writing)
        return copied
    finally:
        source.close()
        dest.close()


def _require_existing(url: str) -> None:
    """Opening a SQLite path creates it: a mistyped source would copy an empty store."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # Store() names the bad URL
    database = parsed.database or ":memory:"
    if (
        parsed.get_backend_name() == "sqlite"
        and database != ":memory:"
        and not Path(database).is_file()
    ):
        raise CopyRefused(f"the source {url} does not exist")


def _tables_to_copy(source: Store, dest: Store) -> list[Table]:
    """The tables in foreign-key order; the store's own table definitions where it has them
    (they carry the UTC and JSON handling), the destination's reflected ones otherwise."""
    present = MetaData()
    present.reflect(source.engine)
    names = set(present.tables) - {SCHEMA_TABLE}
    reflected = MetaData()
    reflected.reflect(dest.engine)
    missing = names - set(reflected.tables)
    if missing:
        raise StoreError(
            f"the destination has no table {', '.join(sorted(missing))}: both stores must be "
            "on the same version of the monitor"
        )
    known = {t.name: t for t in Base.metadata.sorted_tables}
    ordered = [t.name for t in reflected.sorted_tables if t.name in names]
    return [known.get(name, reflected.tables[name]) for name in ordered]


def _copy_rows(table: Table, reading: Connection, writing: Connection) -> int:
    order = [column for column in table.primary_key.columns] or list(table.columns)
    query = select(table).order_by(*order).execution_options(yield_per=BATCH)
    rows = reading.execute(query).mappings()
    count = 0
    while batch := rows.fetchmany(BATCH):
        writing.execute(table.insert(), [dict(row) for row in batch])
        count += len(batch)
    return count


def _verify_counts(tables: list[Table], copied: list[TableCopied], writing: Connection) -> None:
    for table, done in zip(tables, copied, strict=True):
        written = writing.scalar(select(func.count()).select_from(table))
        if written != done.rows:
            raise StoreError(f"table {table.name}: read {done.rows} rows but {written} arrived")


def _reset_sequences(tables: list[Table], writing: Connection) -> None:
    """Move each id sequence past the largest copied id (or back to 1 for an empty table)."""
    for table in tables:
        for column in table.primary_key.columns:
            if not isinstance(column.type, Integer):
                continue
            sequence = writing.scalar(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": table.name, "column": column.name},
            )
            if sequence is None:
                continue
            highest = writing.scalar(select(func.max(column)))
            writing.execute(
                text("SELECT setval(:sequence, :value, :called)"),
                {"sequence": sequence, "value": highest or 1, "called": highest is not None},
            )
