"""Shared fixtures: pages served from 127.0.0.1, stores on SQLite and PostgreSQL, target files."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

# The command line as a user runs it (tests that need their own process: signals, forks).
MONITOR = str(Path(sys.executable).with_name("monitor"))
POSTGRES_ADMIN_URL = os.environ.get(
    "MONITOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None


class Site:
    """An HTTP server on 127.0.0.1 whose pages tests set and change at will."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                site.hits[path] = site.hits.get(path, 0) + 1
                route = site.routes.get(path)
                if route is None:
                    route = Route(b"<html><body><h1>Not found</h1></body></html>", 404)
                if route.delay:
                    time.sleep(route.delay)
                if route.handler:
                    route.handler(self)
                    return
                self.send_response(route.status)
                headers = {"Content-Type": "text/html; charset=utf-8", **route.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(route.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def page(
        self,
        path: str,
        html: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> str:
        self.routes[path] = Route(html.encode(), status, headers or {}, delay)
        return self.url(path)

    def raw(self, path: str, body: bytes, *, content_type: str, status: int = 200) -> str:
        self.routes[path] = Route(body, status, {"Content-Type": content_type})
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.routes[path] = Route(b"", status, {"Location": location})
        return self.url(path)

    def reset(self) -> None:
        self.routes.clear()
        self.hits.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def _site_server() -> Iterator[Site]:
    site = Site()
    yield site
    site.close()


@pytest.fixture
def site(_site_server: Site) -> Iterator[Site]:
    _site_server.reset()
    yield _site_server
    _site_server.reset()


def help_article(title: str, *paragraphs: str, extra: str = "") -> str:
    """A small help-centre article page: chrome around an <article>."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>.x{{color:red}}</style></head><body>
<header class="site-header"><a href="/">Help Center</a></header>
<nav aria-label="breadcrumb"><a href="/">Home</a> › <a href="/privacy">Privacy</a></nav>
<main><article><h1>{title}</h1>
{body}
{extra}
</article></main>
<footer><p>© 2026 Example Inc.</p></footer></body></html>"""


def write_targets(
    directory: Path,
    provider: str,
    pages: list[dict[str, Any]],
    *,
    name: str | None = None,
    tags: list[str] | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"provider": provider, "pages": pages}
    if tags:
        data["tags"] = tags
    path = directory / f"{name or provider.lower().replace(' ', '-')}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def targets_dir(tmp_path: Path) -> Path:
    path = tmp_path / "targets"
    path.mkdir()
    return path


def _postgres_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL: once on SQLite, once on the real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'monitor.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'monitor.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the real PostgreSQL server."""
    yield from _postgres_database()
