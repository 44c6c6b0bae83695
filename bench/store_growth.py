"""Store growth: bytes added per 1,000 unchanged checks and per change, SQLite and PostgreSQL.

Runs the real check pipeline (fetch, extract, compare, store) in-process against help-centre
pages served on 127.0.0.1: a first check of every page, then rounds of unchanged checks,
then rounds in which every page changes one sentence. Sizes are measured with dead space
reclaimed (SQLite: VACUUM; PostgreSQL: VACUUM FULL, tables with their indexes and TOAST),
so they are what the history really holds. PostgreSQL is skipped when it cannot be reached.

    .venv/bin/python bench/store_growth.py --pages 100 --unchanged 10 --changes 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from check_now import RESULTS, article, serve, write_results
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.check import Checker
from monitor.fetch import Fetcher
from monitor.store import Store
from monitor.targets import Page, PageDecl

POSTGRES_ADMIN = os.environ.get(
    "MONITOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def size_bytes(store: Store) -> int:
    """What the history holds, dead space reclaimed."""
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as connection:
            connection.exec_driver_sql("VACUUM")  # into the write-ahead log, then the file:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return Path(store.engine.url.database or "").stat().st_size
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM FULL")
        return int(
            connection.scalar(
                text("SELECT sum(pg_total_relation_size(relid)) FROM pg_statio_user_tables")
            )
        )


async def rounds(store: Store, pages: list[Page], count: int) -> None:
    async with Fetcher() as fetcher:
        checker = Checker(store, fetcher, concurrency=8, confirm_delay=0)
        for _ in range(count):
            await checker.check_all(pages)


def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    bodies = {f"/a/{n}": article(n, 40, False, chrome_kb=200).encode() for n in range(args.pages)}
    server = serve(bodies, validators=False)  # every check reads its page in full
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pages = [
        Page(
            decl=PageDecl(id=f"p{n}", url=f"{base}/a/{n}", fetch="http"),
            provider="Bench",
            tags=(),
            source=Path("bench.yaml"),
        )
        for n in range(args.pages)
    ]
    store = Store(url)
    try:
        asyncio.run(rounds(store, pages, 1))
        start = size_bytes(store)
        asyncio.run(rounds(store, pages, args.unchanged))
        after_unchanged = size_bytes(store)
        for change in range(args.changes):
            for n in range(args.pages):
                bodies[f"/a/{n}"] = bodies[f"/a/{n}"].replace(
                    b"<h1>", f"<p>Revision {change}: you can opt out in Settings.</p><h1>".encode()
                )
            asyncio.run(rounds(store, pages, 1))
        after_changes = size_bytes(store)
    finally:
        store.close()
        server.shutdown()
    unchanged_checks = args.pages * args.unchanged
    changes = args.pages * args.changes
    return {
        "first_versions_bytes": start,
        "per_1000_unchanged_checks_bytes": round(
            (after_unchanged - start) * 1000 / unchanged_checks
        ),
        "per_change_bytes": round((after_changes - after_unchanged) / changes),
        "page_kb": round(sum(map(len, bodies.values())) / len(bodies) / 1024),
    }


def postgres_database() -> tuple[str, Any] | None:
    """A scratch database on the local PostgreSQL, or None when it is not running."""
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"monitor_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    except OperationalError:
        return None
    return POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}", (admin, name)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """The growth on SQLite, and on PostgreSQL when it answers."""
    results: dict[str, Any] = {}
    scratch = RESULTS / "store_growth.db"
    RESULTS.mkdir(exist_ok=True)
    for leftover in RESULTS.glob("store_growth.db*"):
        leftover.unlink()
    results["sqlite"] = measure(f"sqlite:///{scratch}", args)
    for leftover in RESULTS.glob("store_growth.db*"):
        leftover.unlink()
    postgres = postgres_database()
    if postgres is None:
        print(f"PostgreSQL not reachable at {POSTGRES_ADMIN}: skipped")
        return results
    url, (admin, name) = postgres
    try:
        results["postgresql"] = measure(url, args)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--unchanged", type=int, default=10, help="rounds of unchanged checks")
    parser.add_argument("--changes", type=int, default=3, help="rounds of changes")
    args = parser.parse_args()
    results = run_all(args)
    print(
        f"{args.pages} pages of about {results['sqlite']['page_kb']} KB; "
        f"{args.pages * args.unchanged} unchanged checks, {args.pages * args.changes} changes"
    )
    print(f"{'store':<12}{'per 1,000 unchanged checks':>28}{'per change':>14}")
    for backend, row in results.items():
        print(
            f"{backend:<12}{row['per_1000_unchanged_checks_bytes'] / 1024:>24.0f} KiB"
            f"{row['per_change_bytes'] / 1024:>10.1f} KiB"
        )
    write_results("store_growth", {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
