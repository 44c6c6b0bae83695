"""Every detection rule as a user meets it: `monitor check-now --json` against local pages."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from monitor.cli import main
from tests.conftest import Route, Site, help_article, write_targets

TITLE = "Is my chat history used to train models?"
STEPS = "Open Settings, then Data Controls, and switch off Improve the model for everyone."
POLICY = "We will not use your chats to train our models unless you opt in."
RETENTION = "Deleted chats are removed from our systems within 30 days."
PLANS = "This setting applies to the Free and Plus plans."
SETTINGS_LINK = 'Change it on <a href="/settings/data-controls">the Data Controls page</a>.'
FILLER = "Our help centre answers questions about accounts, billing and getting started."


def article(*paragraphs: str, updated: str = "Updated 2 days ago", votes: int = 40) -> str:
    defaults = (STEPS, POLICY, RETENTION, PLANS, SETTINGS_LINK, FILLER)
    extra = f"<p>{updated}</p><p>{votes} people found this helpful</p>"
    return help_article(TITLE, *(paragraphs or defaults), extra=extra)


def replaced(old: str, new: str, **kwargs: Any) -> str:
    defaults = [STEPS, POLICY, RETENTION, PLANS, SETTINGS_LINK, FILLER]
    return article(*(p.replace(old, new) for p in defaults), **kwargs)


@pytest.fixture(autouse=True)
def no_confirmation_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_CONFIRM_DELAY", "0")


class Monitor:
    """Runs `check-now --json` for one page and reads its history, as a user would."""

    def __init__(self, site: Site, targets_dir: Path, db_url: str, **decl: Any) -> None:
        self.site, self.db = site, db_url
        self.url = site.url("/help/training")
        write_targets(
            targets_dir, "Example AI", [{"id": "p", "url": self.url, "fetch": "http", **decl}]
        )
        self.targets = str(targets_dir)

    def serve(self, html: str, status: int = 200) -> None:
        self.site.page("/help/training", html, status=status)

    def check(self) -> tuple[Result, dict[str, Any]]:
        result = CliRunner().invoke(
            main,
            ["check-now", "--json", "--targets", self.targets, "--db", self.db],
            catch_exceptions=False,
        )
        return result, json.loads(result.stdout.splitlines()[0])

    def line(self) -> dict[str, Any]:
        return self.check()[1]

    def history(self) -> dict[str, Any]:
        result = CliRunner().invoke(main, ["history", "p", "--db", self.db, "--json"])
        return json.loads(result.stdout)

    def change(self, change_id: int) -> dict[str, Any]:
        return next(c for c in self.history()["changes"] if c["id"] == change_id)

    def after(self, html: str, status: int = 200) -> dict[str, Any]:
        """Check the default article once, then `html`; the second line."""
        self.serve(article())
        assert self.line()["status"] == "first"
        self.serve(html, status)
        return self.line()


@pytest.fixture
def monitor(site: Site, targets_dir: Path, sqlite_url: str) -> Callable[..., Monitor]:
    return lambda **decl: Monitor(site, targets_dir, sqlite_url, **decl)


def test_expected_phrase_gone_is_critical(site: Site, targets_dir: Path, db_url: str) -> None:
    m = Monitor(site, targets_dir, db_url, expect=["Improve the model for everyone"])
    line = m.after(replaced("Improve the model for everyone", "Model training"))
    assert (line["status"], line["severity"]) == ("changed", "critical")
    reasons = m.change(line["change_id"])["reasons"]
    assert reasons[0] == 'expected phrase gone: "Improve the model for everyone"'


def test_negation_flip_is_critical(monitor: Callable[..., Monitor]) -> None:
    m = monitor()
    line = m.after(replaced("We will not use", "We will use"))
    assert line["severity"] == "critical"
    assert line["summary"].startswith('meaning flipped: "We will not use your chats')
    shown = CliRunner().invoke(main, ["diff", str(line["change_id"]), "--db", m.db]).stdout
    reasons_at = shown.index("• meaning flipped:")
    assert reasons_at < shown.index("- We will not use") < shown.index("+ We will use")


def test_opt_in_to_opt_out_is_critical(monitor: Callable[..., Monitor]) -> None:
    line = monitor().after(replaced("unless you opt in", "unless you opt out"))
    assert line["severity"] == "critical" and "meaning flipped" in line["summary"]


def test_most_text_vanishing_is_critical(monitor: Callable[..., Monitor]) -> None:
    line = monitor().after(article("This article is being updated."))
    assert line["severity"] == "critical"
    assert "% of the text vanished" in line["summary"]


def test_retention_number_is_relevant(monitor: Callable[..., Monitor]) -> None:
    line = monitor().after(replaced("within 30 days", "within 90 days"))
    assert (line["severity"], line["summary"]) == (
        "relevant",
        "number changed in an opt-out sentence: 30 → 90",
    )


def test_plan_list_is_relevant(monitor: Callable[..., Monitor]) -> None:
    line = monitor().after(replaced("the Free and Plus plans", "the Free plan"))
    assert line["severity"] == "relevant" and "plans changed: Plus → -" in line["summary"]


def test_link_target_is_relevant(monitor: Callable[..., Monitor]) -> None:
    m = monitor()
    line = m.after(replaced("/settings/data-controls", "/forms/training-request"))
    assert line["severity"] == "relevant"
    assert any(
        r.startswith("link target changed: http") and r.endswith("/forms/training-request")
        for r in m.change(line["change_id"])["reasons"]
    )


def test_watch_term_makes_a_change_relevant(
    site: Site, tmp_path: Path, monitor: Callable[..., Monitor]
) -> None:
    plain = monitor().after(replaced("billing", "invoices"))
    assert plain["severity"] == "minor"
    other_store = f"sqlite:///{tmp_path / 'watch.db'}"
    watching = Monitor(site, tmp_path / "watch", other_store, watch=["invoices"])
    watched = watching.after(replaced("billing", "invoices"))
    assert watched["severity"] == "relevant"
    assert watched["summary"] == "opt-out terms changed: invoices"


def test_term_near_a_churn_edit_is_not_relevant(monitor: Callable[..., Monitor]) -> None:
    """The sentence mentions training, but only its non-opt-out words changed."""
    line = monitor().after(replaced("Open Settings, then", "Go to Settings and then"))
    assert line["severity"] == "minor"


def test_routine_churn_is_noise_and_never_alerts(monitor: Callable[..., Monitor]) -> None:
    m = monitor()
    churned = article(updated="Updated yesterday", votes=57).replace("© 2026", "© 2027")
    line = m.after(churned.replace("switch off", "switch&nbsp;off"))
    assert (line["status"], line["severity"]) == ("changed", "noise")
    assert m.change(line["change_id"])["reasons"][0].startswith("only routine churn")


def test_first_failure_after_retry_is_critical_then_recovery(
    site: Site, targets_dir: Path, db_url: str
) -> None:
    m = Monitor(site, targets_dir, db_url)
    m.serve(article())
    m.line()
    m.serve(article(), status=404)
    before = site.hits["/help/training"]
    result, failed = m.check()
    assert result.exit_code == 1
    assert site.hits["/help/training"] - before == 2  # retried once
    assert (failed["status"], failed["severity"]) == ("error", "critical")
    assert "404" in failed["error"]
    change = m.change(failed["change_id"])
    assert (change["kind"], change["reasons"], change["to_version_id"]) == (
        "failure",
        ["page now answers 404"],
        None,
    )
    result, still = m.check()
    assert result.exit_code == 1
    assert (still["status"], still["severity"], still["change_id"]) == ("error", None, None)
    m.serve(article())
    back = m.line()
    assert back["status"] == "changed" and back["severity"] == "minor"
    recovery = m.change(back["change_id"])
    assert recovery["kind"] == "recovery"
    assert recovery["reasons"][0] == "page answers again after 2 failed check(s)"


def test_failure_that_passes_on_retry_is_not_recorded(
    site: Site, monitor: Callable[..., Monitor]
) -> None:
    m = monitor()
    m.serve(article())
    m.line()
    calls = {"n": 0}

    def fails_once(handler: BaseHTTPRequestHandler) -> None:
        calls["n"] += 1
        body = article().encode()
        handler.send_response(503 if calls["n"] == 1 else 200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        with contextlib.suppress(BrokenPipeError):
            handler.wfile.write(body)

    site.routes["/help/training"] = Route(handler=fails_once)
    result, line = m.check()
    assert result.exit_code == 0 and line["status"] == "unchanged" and calls["n"] == 2


def test_select_matching_nothing_is_critical(monitor: Callable[..., Monitor]) -> None:
    m = monitor(select="article")
    line = m.after(article().replace("<article>", "<section>").replace("</article>", "</section>"))
    assert (line["status"], line["severity"]) == ("error", "critical")
    assert m.change(line["change_id"])["reasons"] == ['select "article" matches nothing']


def test_redirect_to_another_page_is_critical(site: Site, monitor: Callable[..., Monitor]) -> None:
    m = monitor()
    m.serve(article())
    m.line()
    site.page("/help/home", article())
    site.redirect("/help/training", "/help/home")
    line = m.line()
    assert (line["status"], line["severity"]) == ("changed", "critical")
    assert line["summary"].startswith("now redirects to a different page:")
    assert line["summary"].endswith("/help/home")


def flapping(contents: list[str]) -> Callable[[BaseHTTPRequestHandler], None]:
    """A handler that serves the given pages in turn, one per request."""
    served: Iterator[str] = iter(contents)

    def handler(request: BaseHTTPRequestHandler) -> None:
        body = next(served, contents[-1]).encode()
        request.send_response(200)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        with contextlib.suppress(BrokenPipeError):
            request.wfile.write(body)

    return handler


def test_difference_not_confirmed_is_not_recorded(
    site: Site, monitor: Callable[..., Monitor]
) -> None:
    m = monitor()
    m.serve(article())
    m.line()
    site.routes["/help/training"] = Route(
        handler=flapping([replaced("We will not use", "We will use"), article()])
    )
    line = m.line()
    assert (line["status"], line["change_id"]) == ("unchanged", None)
    assert line["summary"] == "difference not confirmed by a second fetch"
    assert m.history()["changes"] == []


def test_returning_variant_is_named_and_alerts_once(monitor: Callable[..., Monitor]) -> None:
    m = monitor()
    variant_a, variant_b = article(), replaced("within 30 days", "within 60 days")
    m.serve(variant_a)
    m.line()
    m.serve(variant_b)
    first = m.line()
    assert first["severity"] == "relevant"
    m.serve(variant_a)
    back = m.line()
    m.serve(variant_b)
    again = m.line()
    for line in (back, again):
        assert line["status"] == "changed" and line["severity"] == "minor"
        assert line["summary"].startswith("returned to an earlier variant, version ")
    assert m.change(again["change_id"])["kind"] == "variant"


def test_scope_and_commitment_changes_are_relevant(monitor: Callable[..., Monitor]) -> None:
    m = monitor()
    line = m.after(replaced("Deleted chats are removed", "Deleted chats may be removed"))
    assert line["severity"] == "relevant"
    assert "commitment or timing changed in an opt-out sentence: - → may" in line["summary"]
    scoped = replaced("This setting applies to the", "In the EU, this setting applies to the")
    m.serve(scoped)
    line = m.line()
    assert line["severity"] == "relevant"
    assert "scope changed in an opt-out sentence: - → EU" in line["summary"]


def test_switch_state_flip_is_critical(monitor: Callable[..., Monitor]) -> None:
    switch = '<button role="switch" aria-checked="{}" aria-label="Training"></button>'
    m = monitor()
    m.serve(article(STEPS, switch.format("false")))
    m.line()
    m.serve(article(STEPS, switch.format("true")))
    line = m.line()
    assert line["severity"] == "critical"
    assert line["summary"] == 'meaning flipped: "[off]" → "[on]"'


def test_consent_banner_and_token_churn_is_noise(monitor: Callable[..., Monitor]) -> None:
    def page(token: str, banner: str = "") -> str:
        more = f'<a href="/r/website.v1.{token}">More about training</a>'
        return article(STEPS, POLICY, more).replace("<main>", banner + "<main>")

    m = monitor()
    m.serve(page("3f2a9c1e-7b4d-4c1a-9e2f-51d0a8c6b7e4"))
    m.line()
    banner = '<div id="onetrust-banner-sdk"><p>We use cookies. Accept all?</p></div>'
    m.serve(page("c07e51a2-1d9b-4f38-b6e0-77a4c2d913fe", banner))
    line = m.line()
    assert (line["status"], line["severity"]) == ("changed", "noise")


def test_confirmation_fetches_twice_only_for_content(
    site: Site, monitor: Callable[..., Monitor]
) -> None:
    m = monitor()
    m.serve(article())
    m.line()
    m.serve(article(updated="Updated today"))
    before = site.hits["/help/training"]
    assert m.line()["severity"] == "noise"
    assert site.hits["/help/training"] - before == 1
    m.serve(replaced("within 30 days", "within 7 days"))
    before = site.hits["/help/training"]
    assert m.line()["severity"] == "relevant"
    assert site.hits["/help/training"] - before == 2


def test_redirect_to_a_locale_path_of_the_same_page_is_not_a_move(
    site: Site, monitor: Callable[..., Monitor]
) -> None:
    m = monitor()
    m.serve(article())
    m.line()
    site.page("/en/help/training", article())
    site.redirect("/help/training", "/en/help/training", 301)
    line = m.line()
    assert (line["status"], line["change_id"]) == ("unchanged", None)
