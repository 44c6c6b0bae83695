"""A changed declaration is not a provider change: technical versions instead of alerts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from monitor import extract
from monitor.cli import main
from monitor.store import Store
from tests.conftest import Site, help_article, write_targets

PROMO = '<div class="promo"><p>Try our new mobile app today.</p></div>'
STEPS = "Turn off Help improve our models in Privacy Settings."
SCOPE = "The setting applies to new and resumed conversations."


def page(scope: str = SCOPE) -> str:
    return help_article(
        "Training controls", STEPS, scope, extra=PROMO + "<p>Last reviewed by the team.</p>"
    )


def run(*args: str) -> dict:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return {"code": result.exit_code, "out": result.stdout, "err": result.stderr}


def check(targets: Path, db: str) -> dict:
    result = run("check-now", "--json", "--targets", str(targets), "--db", db)
    return json.loads(result["out"].splitlines()[0])


def history(db: str) -> dict:
    return json.loads(run("history", "p", "--db", db, "--json")["out"])


def test_editing_the_rules_of_an_unchanged_page_alerts_nothing(
    site: Site, targets_dir: Path, db_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("MONITOR_CONFIRM_DELAY", "0")
    url = site.page("/p", page())
    declared = {"id": "p", "url": url, "fetch": "http"}
    write_targets(targets_dir, "Example", [declared])
    assert check(targets_dir, db_url)["status"] == "first"
    for edit in (
        {"remove": [".promo"]},
        {"ignore": ["Last reviewed by .*"]},
        {"select": "article p"},
    ):
        declared = {**declared, **edit}
        write_targets(targets_dir, "Example", [declared])
        line = check(targets_dir, db_url)
        assert (line["status"], line["severity"], line["change_id"]) == ("unchanged", None, None), (
            edit
        )
    changes = history(db_url)["changes"]
    assert [c["kind"] for c in changes] == ["technical"] * 3
    assert {c["severity"] for c in changes} == {"noise"}
    text = Store(db_url).page_state("p").text
    assert "mobile app" not in text and "Last reviewed" not in text and "Help improve" in text


def test_a_new_extractor_that_reads_more_of_a_page_alerts_nothing(
    site: Site, targets_dir: Path, db_url: str, monkeypatch
) -> None:
    """Upgrading: the stored text came from an extractor that lost what follows `</html>`
    (this one reads it, as a browser shows it). The first check after the upgrade records a
    technical version, not a change of the provider's."""
    monkeypatch.setenv("MONITOR_CONFIRM_DELAY", "0")
    url = site.page("/p", page() + "<p>Opt out of model training in Settings.</p>")
    write_targets(targets_dir, "Example", [{"id": "p", "url": url, "fetch": "http"}])
    with monkeypatch.context() as older:
        older.setattr(extract, "EXTRACTOR_VERSION", "1")
        older.setattr(extract, "_DOCUMENT_END_TAGS", re.compile(rb"(?!)"))
        assert check(targets_dir, db_url)["status"] == "first"
    assert "Opt out of model training" not in Store(db_url).page_state("p").text

    line = check(targets_dir, db_url)
    assert (line["status"], line["severity"], line["change_id"]) == ("unchanged", None, None)
    changes = history(db_url)["changes"]
    assert [(c["kind"], c["severity"]) for c in changes] == [("technical", "noise")]
    assert "Opt out of model training" in Store(db_url).page_state("p").text


def test_a_provider_edit_with_a_declaration_edit_shows_only_the_provider_part(
    site: Site, targets_dir: Path, sqlite_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("MONITOR_CONFIRM_DELAY", "0")
    url = site.page("/p", page())
    write_targets(targets_dir, "Example", [{"id": "p", "url": url, "fetch": "http"}])
    check(targets_dir, sqlite_url)
    write_targets(
        targets_dir, "Example", [{"id": "p", "url": url, "fetch": "http", "remove": [".promo"]}]
    )
    site.page("/p", page("The setting applies to new conversations only."))
    line = check(targets_dir, sqlite_url)
    assert line["status"] == "changed" and line["severity"] in ("relevant", "critical")
    diff = json.loads(run("diff", str(line["change_id"]), "--db", sqlite_url, "--json")["out"])[
        "diff"
    ]
    touched = [text for hunk in diff for text in (*hunk["removed"], *hunk["added"])]
    assert touched == [SCOPE, "The setting applies to new conversations only."]  # no promo line
    kinds = [c["kind"] for c in history(sqlite_url)["changes"]]
    assert kinds == ["content", "technical"]


def test_reextract_command_and_expect_warnings(
    site: Site, targets_dir: Path, sqlite_url: str
) -> None:
    url = site.page("/p", page())
    write_targets(targets_dir, "Example", [{"id": "p", "url": url, "fetch": "http"}])
    check(targets_dir, sqlite_url)
    write_targets(
        targets_dir,
        "Example",
        [
            {
                "id": "p",
                "url": url,
                "fetch": "http",
                "select": "article",
                "remove": [".promo"],
                "expect": ["Help improve our models", "mobile app"],
            }
        ],
    )
    validate = run("targets", "validate", "--targets", str(targets_dir), "--db", sqlite_url)
    assert "expect 'mobile app' is not in the last stored version" in validate["err"]
    assert "'Help improve our models'" not in validate["err"]
    result = run("targets", "reextract", "--targets", str(targets_dir), "--db", sqlite_url)
    assert "text moved" in result["out"] and "1 of 1 page(s) read differently" in result["out"]
    again = run("targets", "reextract", "--targets", str(targets_dir), "--db", sqlite_url)
    assert "0 of 1 page(s)" in again["out"]


def test_old_captures_are_pruned_and_the_latest_kept(
    site: Site, targets_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MONITOR_CONFIRM_DELAY", "0")
    monkeypatch.setattr("monitor.store.CAPTURES_KEPT", 3)
    db = f"sqlite:///{tmp_path / 'm.db'}"
    url = site.page("/p", page())
    write_targets(targets_dir, "Example", [{"id": "p", "url": url, "fetch": "http"}])
    for n in range(6):
        site.page("/p", page(f"The setting applies to conversations from day {n}."))
        check(targets_dir, db)
    store = Store(db)
    versions = store.versions("p")
    kept = [v.id for v in versions if store.capture_of(v.id) is not None]
    assert len(versions) == 6 and kept == [v.id for v in versions][-3:]
    assert store.page_state("p").version_id in kept
