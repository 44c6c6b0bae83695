"""Settings behind a login: saved sessions, steps, and an expired session that is no change."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result

from monitor import auth
from monitor.cli import main
from monitor.store import Store
from tests.conftest import Route, Site, write_targets

LOGIN_FORM = """<!doctype html><html><body><main><h1>Sign in</h1>
<form action="/login-submit" method="get">
<input name="user" id="user"><input type="password" name="password" id="password">
<button id="sign-in" type="submit">Sign in</button></form></main></body></html>"""

SETTINGS = """<!doctype html><html><body><main id="settings"><h1>Settings</h1>
<p class="account">Signed in as tester</p>
<button id="open-privacy" onclick="document.getElementById('privacy').showModal()">Privacy</button>
<dialog id="privacy"><h2>Privacy</h2>
<label><input type="checkbox" checked> {label}</label>
<p>You can turn this off at any time.</p></dialog>
</main></body></html>"""


@dataclass
class LoginSite:
    """A provider with a login form, a session cookie, and a settings dialog."""

    site: Site
    label: str = "Help improve the model with my chats"
    sessions: set[str] = field(default_factory=set)
    password: str = "correct horse"

    def install(self) -> None:
        self.site.page("/login", LOGIN_FORM)
        self.site.routes["/login-submit"] = Route(handler=self._submit)
        self.site.routes["/settings"] = Route(handler=self._settings)

    def expire_all(self) -> None:
        self.sessions.clear()

    def _submit(self, request: BaseHTTPRequestHandler) -> None:
        form = parse_qs(urlsplit(request.path).query)
        if form.get("password") == [self.password]:
            token = f"tok{len(self.sessions) + 1}"
            self.sessions.add(token)
            _reply(request, 302, {"Location": "/settings", "Set-Cookie": f"session={token}"})
        else:
            _reply(request, 302, {"Location": "/login"})

    def _settings(self, request: BaseHTTPRequestHandler) -> None:
        cookies = request.headers.get("Cookie", "")
        token = dict(p.strip().split("=", 1) for p in cookies.split(";") if "=" in p).get("session")
        if token not in self.sessions:
            _reply(request, 302, {"Location": "/login"})
            return
        _reply(request, 200, {"Content-Type": "text/html"}, SETTINGS.format(label=self.label))


def _reply(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: str = ""):
    data = body.encode()
    request.send_response(status)
    for name, value in headers.items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


def monitor(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "secrets"
    monkeypatch.setenv("MONITOR_SECRETS", str(path))
    return path


@pytest.fixture
def provider(site: Site) -> LoginSite:
    login = LoginSite(site)
    login.install()
    return login


async def _log_in(page: Any) -> None:
    await page.fill("#user", "tester")
    await page.fill("#password", "correct horse")
    await page.click("#sign-in")


def _save(provider: LoginSite) -> Path:
    return asyncio.run(
        auth.save_session(
            "testacct",
            provider.site.url("/login"),
            done_selector=".account",
            headless=True,
            timeout=30,
            act=_log_in,
        )
    )


def _settings_page(provider: LoginSite, **extra: Any) -> dict[str, Any]:
    return {
        "id": "settings-privacy",
        "url": provider.site.url("/settings"),
        "fetch": "browser",
        "auth": "testacct",
        "select": "dialog",
        "steps": [{"click": "#open-privacy"}, {"wait_for": "dialog[open]"}],
        **extra,
    }


def _check(targets_dir: Path, db: str) -> dict[str, Any]:
    result = monitor("check-now", "--json", "--targets", str(targets_dir), "--db", db)
    return json.loads(result.stdout.splitlines()[0])


def test_label_change_behind_login_and_click_is_detected(
    provider: LoginSite, secrets: Path, targets_dir: Path, sqlite_url: str
) -> None:
    saved = _save(provider)
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    write_targets(targets_dir, "Example", [_settings_page(provider)])

    first = _check(targets_dir, sqlite_url)
    assert first["status"] == "first", first
    provider.label = "Use my chats to train the model"
    changed = _check(targets_dir, sqlite_url)
    assert changed["status"] == "changed", changed

    store = Store(sqlite_url)
    text = store.page_state("settings-privacy").text or ""
    assert "Use my chats to train the model" in text
    assert "You can turn this off at any time." in text


def test_expired_session_is_an_error_not_a_change(
    provider: LoginSite, secrets: Path, targets_dir: Path, sqlite_url: str
) -> None:
    _save(provider)
    write_targets(targets_dir, "Example", [_settings_page(provider)])
    assert _check(targets_dir, sqlite_url)["status"] == "first"
    before = Store(sqlite_url).page_state("settings-privacy")

    provider.expire_all()
    expired = _check(targets_dir, sqlite_url)
    assert expired["status"] == "error"
    assert "session expired: run `monitor auth save testacct`" in expired["error"]
    for _ in range(2):  # a second expiry must not become a recorded change either
        after = Store(sqlite_url).page_state("settings-privacy")
        assert (after.version_id, after.text) == (before.version_id, before.text)
        assert _check(targets_dir, sqlite_url)["severity"] is None


def test_logged_in_selector_decides(
    provider: LoginSite, secrets: Path, targets_dir: Path, sqlite_url: str
) -> None:
    _save(provider)
    page = _settings_page(provider, logged_in=".no-such-marker", steps=[])
    write_targets(targets_dir, "Example", [page])
    assert "session expired" in _check(targets_dir, sqlite_url)["error"]


def test_failed_step_names_number_and_selector(
    provider: LoginSite, secrets: Path, targets_dir: Path, sqlite_url: str
) -> None:
    _save(provider)
    steps = [{"click": "#open-privacy"}, {"click": "#gone", "timeout": 1}]
    write_targets(targets_dir, "Example", [_settings_page(provider, steps=steps)])
    result = _check(targets_dir, sqlite_url)
    assert result["status"] == "error"
    assert "step 2 (click '#gone')" in result["error"]


def test_fill_reads_only_the_environment(
    provider: LoginSite,
    secrets: Path,
    targets_dir: Path,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth.write_state("testacct", {"cookies": [], "origins": []})
    steps = [{"fill": {"selector": "#password", "env": "TEST_LOGIN_SECRET"}}]
    page = _settings_page(provider, url=provider.site.url("/login"), steps=steps, select="form")
    page["auth"] = "testacct"
    write_targets(targets_dir, "Example", [page])
    monkeypatch.delenv("TEST_LOGIN_SECRET", raising=False)
    missing = _check(targets_dir, sqlite_url)
    assert (
        "step 1 (fill '#password'): environment variable TEST_LOGIN_SECRET is not set"
        in (missing["error"])
    )


def test_import_and_list_never_show_contents(
    tmp_path: Path, secrets: Path, targets_dir: Path, provider: LoginSite
) -> None:
    exported = tmp_path / "state.json"
    exported.write_text(json.dumps({"cookies": [{"name": "session", "value": "SECRETVALUE"}]}))
    write_targets(targets_dir, "Example", [_settings_page(provider)])
    imported = monitor("auth", "import", "testacct", str(exported))
    assert imported.exit_code == 0
    listed = monitor("auth", "list", "--targets", str(targets_dir))
    assert "testacct" in listed.stdout and "settings-privacy" in listed.stdout
    for output in (imported.stdout, listed.stdout, imported.stderr, listed.stderr):
        assert "SECRETVALUE" not in output
    assert stat.S_IMODE((secrets / "testacct.json").stat().st_mode) == 0o600
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    refused = monitor("auth", "import", "other", str(bad))
    assert refused.exit_code == 2 and "not a Playwright storage state" in refused.stderr
    assert os.listdir(secrets) == ["testacct.json"]
