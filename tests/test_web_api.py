"""The JSON API, the Atom feed and the write rules of `monitor serve`, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from jsonschema import Draft202012Validator

from tests.conftest import Site, _postgres_database
from tests.web_history import EXPECTED, GUIDE, HOSTILE, TOKEN, History, Server, build_history, serve


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def history(
    request: pytest.FixtureRequest, _site_server: Site, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[History]:
    """One store with real history per backend, shared by the tests of this module."""
    directory = tmp_path_factory.mktemp("web-api")
    _site_server.reset()
    if request.param == "sqlite":
        yield build_history(_site_server, directory, f"sqlite:///{directory / 'monitor.db'}")
    else:
        for url in _postgres_database():
            yield build_history(_site_server, directory, url)
    _site_server.reset()


@pytest.fixture(scope="module")
def server(history: History) -> Iterator[Server]:
    with serve(history) as running:
        yield running


def conforms(openapi: dict[str, Any], schema_name: str, instance: Any) -> None:
    """Validate a response against a schema of the served OpenAPI description."""
    root = {"components": openapi["components"], "$ref": f"#/components/schemas/{schema_name}"}
    Draft202012Validator(root).validate(instance)


@pytest.fixture(scope="module")
def openapi(server: Server) -> dict[str, Any]:
    with server.client() as client:
        document = client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert {"/api/pages", "/api/changes", "/api/changes/{change_id}"} <= document["paths"].keys()
    return document


def test_pages_status_counts_and_undeclared(server: Server, openapi: dict) -> None:
    with server.client() as client:
        response = client.get("/api/pages")
    assert response.status_code == 200
    pages = {page["id"]: page for page in response.json()}
    for page in pages.values():
        conforms(openapi, "Page", page)
    training = pages["acme-training"]
    assert (training["status"], training["guide"], training["declared"]) == ("ok", GUIDE, True)
    assert training["unreviewed"] == 2 and training["unreviewed_relevant_or_critical"] >= 1
    assert training["last_change"]["severity"] == "minor"
    ads = pages["globex-ads"]
    assert ads["status"] == "failing" and ads["failing_since"] and "500" in ads["last_error"]
    assert pages["globex-old"]["declared"] is False
    assert pages["globex-old"]["title"] is None
    upcoming = pages["acme-upcoming"]
    assert (upcoming["status"], upcoming["declared"], upcoming["last_checked_at"]) == (
        "never",
        True,
        None,
    )


def test_html_pages_of_history_and_undeclared_pages(server: Server, history: History) -> None:
    with server.client() as client:
        failing = client.get("/pages/globex-ads")
        undeclared = client.get(f"/changes/{history.undeclared_change}")
        unknown = client.get("/pages/no-such-page")
    assert failing.status_code == 200
    assert "check failed" in failing.text and "HTTP 500" in failing.text
    assert "Version" in failing.text  # its first version is on the timeline too
    assert undeclared.status_code == 200 and "no longer declared" in undeclared.text
    assert "two years" in undeclared.text
    assert unknown.status_code == 404 and "no-such-page" in unknown.text


def test_change_list_filters_and_pages(server: Server, openapi: dict) -> None:
    with server.client() as client:
        everything = client.get("/api/changes").json()
        conforms(openapi, "ChangeList", everything)
        assert everything["total"] == 5  # four content changes and globex-ads' failure
        relevant = client.get("/api/changes", params={"severity": "relevant"}).json()
        assert relevant["items"] and {c["severity"] for c in relevant["items"]} == {"relevant"}
        both = client.get("/api/changes", params=[("severity", "minor"), ("severity", "relevant")])
        quieter = [c for c in everything["items"] if c["severity"] in ("minor", "relevant")]
        assert both.json()["total"] == len(quieter) >= 2
        globex = client.get("/api/changes", params={"provider": "Globex"}).json()
        assert sorted(c["page_id"] for c in globex["items"]) == ["globex-ads", "globex-old"]
        found = client.get("/api/changes", params={"q": "resumed"}).json()
        assert [c["page_id"] for c in found["items"]] == ["acme-training"]
        assert client.get("/api/changes", params={"q": "no such words"}).json()["total"] == 0
        first = client.get("/api/changes", params={"per_page": 3}).json()
        second = client.get("/api/changes", params={"per_page": 3, "page": 2}).json()
        assert (first["pages"], len(first["items"]), len(second["items"])) == (2, 3, 2)
        seen = first["items"] + second["items"]
        assert len({c["id"] for c in seen}) == 5
        times = [c["detected_at"] for c in seen]
        assert times == sorted(times, reverse=True)  # newest first
        bad = client.get("/api/changes", params={"severity": "urgent"})
        assert bad.status_code == 400 and "urgent" in bad.json()["error"]


def test_change_detail(server: Server, history: History, openapi: dict) -> None:
    first, second = history.training_changes
    with server.client() as client:
        detail = client.get(f"/api/changes/{first}").json()
        conforms(openapi, "ChangeDetail", detail)
        assert detail["severity"] in ("relevant", "critical")
        assert detail["missing_expected"] == [EXPECTED]
        assert EXPECTED in detail["before_text"] and EXPECTED not in detail["after_text"]
        assert (detail["previous_change_id"], detail["next_change_id"]) == (None, second)
        assert detail["page"]["guide"] == GUIDE
        assert detail["url"] == f"{server.base}/changes/{first}"
        removed = [line for hunk in detail["diff"] for line in hunk["removed"]]
        assert f"The setting applies to {EXPECTED}." in removed
        later = client.get(f"/api/changes/{second}").json()
        assert (later["previous_change_id"], later["next_change_id"]) == (first, None)
        missing = client.get("/api/changes/999999")
        assert missing.status_code == 404 and missing.json() == {"error": "no change 999999"}


def test_review_needs_the_token_and_same_origin(server: Server, history: History) -> None:
    change = history.undeclared_change
    path = f"/api/changes/{change}/review"
    body = {"reviewer": "Dana", "note": "guide unaffected"}
    with server.client() as client:
        assert client.post(path, json=body).status_code == 401
        wrong = client.post(path, json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and TOKEN not in wrong.text
        auth = {"Authorization": f"Bearer {TOKEN}"}
        forged = client.post(path, json=body, headers={**auth, "Origin": "https://evil.example"})
        assert forged.status_code == 403
        cross = client.post(path, json=body, headers={**auth, "Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        nameless = client.post(path, json={"note": "x"}, headers=auth)
        assert nameless.status_code == 400
        assert client.get(f"/api/changes/{change}").json()["reviewed"] is False
        done = client.post(path, json=body, headers={"X-Monitor-Token": TOKEN})
        assert done.status_code == 200
        assert (done.json()["reviewed_by"], done.json()["review_note"]) == ("Dana", body["note"])
        reviewed = client.get("/api/changes", params={"reviewed": "yes"}).json()
        assert [c["id"] for c in reviewed["items"]] == [change]
        open_ = client.get("/api/changes", params={"reviewed": "no"}).json()
        assert change not in [c["id"] for c in open_["items"]]


def test_html_form_review_refuses_a_forged_post(server: Server, history: History) -> None:
    """A cross-site form post is refused even with the right token in it."""
    change = history.training_changes[1]
    form = {"reviewer": "Mallory", "token": TOKEN, "note": "forged"}
    with server.client() as client:
        forged = client.post(
            f"/changes/{change}/review", data=form, headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 403
        assert client.get(f"/api/changes/{change}").json()["reviewed"] is False
        wrong = client.post(f"/changes/{change}/review", data={**form, "token": "guess"})
        assert wrong.status_code == 401 and "Not saved: wrong or missing token" in wrong.text
        assert "guess" not in wrong.text and TOKEN not in wrong.text
        assert client.get(f"/api/changes/{change}").json()["reviewed"] is False


def test_atom_feed_holds_relevant_and_critical_changes(server: Server) -> None:
    with server.client() as client:
        response = client.get("/feed.atom")
        notified = client.get(
            "/api/changes", params=[("severity", "relevant"), ("severity", "critical")]
        ).json()
    assert response.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    links = [entry.link for entry in parsed.entries]
    assert links == [f"{server.base}/changes/{c['id']}" for c in notified["items"]]
    assert {entry.tags[0].term for entry in parsed.entries} <= {"relevant", "critical"}
    assert any("opt-out terms" in entry.summary.lower() for entry in parsed.entries)


def test_healthz_and_security_headers(server: Server) -> None:
    announced = server.process.stderr.readline()
    assert "writes: token" in announced and TOKEN not in announced
    with server.client() as client:
        health = client.get("/healthz")
        page = client.get("/")
    assert health.json() == {"status": "ok"}
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert TOKEN not in page.text


def test_hostile_text_is_escaped_in_html(server: Server, history: History) -> None:
    with server.client() as client:
        html = client.get(f"/changes/{history.hostile_change}").text
    assert "<script>window.__pwned" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert HOSTILE.startswith("<script>")


def test_read_only_without_a_token(history: History) -> None:
    with serve(history, token=None) as running, running.client() as client:
        announced = running.process.stderr.readline()
        assert announced.startswith("serving http://127.0.0.1:")  # loopback unless told
        assert "read-only" in announced
        refused = client.post(
            f"/api/changes/{history.hostile_change}/review",
            json={"reviewer": "Dana"},
            headers={"Authorization": "Bearer anything"},
        )
        page = client.get(f"/changes/{history.hostile_change}").text
    assert refused.status_code == 403 and "MONITOR_WEB_TOKEN" in refused.json()["error"]
    assert "Reviewing is switched off" in page and 'name="token"' not in page


def test_trusted_proxy_header_names_the_reviewer(history: History, tmp_path: Path) -> None:
    change = history.hostile_change
    with (
        serve(history, "--user-header", "X-Forwarded-User", token=None) as running,
        running.client() as client,
    ):
        anonymous = client.post(f"/api/changes/{change}/review", json={})
        assert anonymous.status_code == 401
        done = client.post(
            f"/api/changes/{change}/review",
            json={"note": "checked"},
            headers={"X-Forwarded-User": "robin@example.org"},
        )
    assert done.status_code == 200 and done.json()["reviewed_by"] == "robin@example.org"
