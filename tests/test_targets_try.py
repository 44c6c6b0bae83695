"""`monitor targets try` and the stored-history warnings of `monitor targets validate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import main
from monitor.targets import PageDecl
from monitor.tryout import inspect_html
from tests.conftest import Site, write_targets

ARTICLE = """<!doctype html><html><head><title>Training</title></head><body>
<div id="onetrust-banner-sdk">We use cookies. Accept all</div>
<nav><a href="/">Help home</a></nav>
<main>
<div class="breadcrumbs"><a href="/c">All collections</a></div>
<div class="article">
<div class="avatar__info">Written by Support · Updated 3 days ago</div>
<h1>Is my data used for training?</h1>
<p>Turn off Help improve Claude in Settings to opt out of model training.</p>
<p>Last reviewed: 12 May 2026</p>
<section class="related_articles"><h3>Related</h3><a href="/x">Deleting chats</a></section>
</div>
</main>
<footer>© 2026 Example</footer>
</body></html>"""

SCRIPT_BUILT = """<!doctype html><html><head><title>App</title></head><body>
<noscript>You need to enable JavaScript to run this app.</noscript><div id="app"></div>
<script>document.getElementById('app').innerHTML =
 '<main><h1>Data controls</h1><p>Switch off Improve the model for everyone to opt out.</p></main>';
</script></body></html>"""


def monitor(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def decl(**fields: object) -> PageDecl:
    return PageDecl.model_validate({"id": "t", "url": "http://127.0.0.1/", **fields})


def test_each_rule_reports_what_it_took_away() -> None:
    found = inspect_html(
        ARTICLE,
        "http://127.0.0.1/",
        decl(
            select=".article",
            remove=[".related_articles", ".avatar__info", ".not-on-this-page"],
            ignore=[r"Last reviewed: \d+ \w+ \d{4}"],
            expect=["Help improve Claude", "new and resumed conversations"],
            watch=["Help improve Claude"],
        ),
    )
    assert found.text.splitlines() == [
        "# Is my data used for training?",
        "Turn off Help improve Claude in Settings to opt out of model training.",
    ]
    taken = {removal.rule: (removal.matched, removal.blocks) for removal in found.removals}
    assert taken == {
        "select .article": (1, ("All collections <http://127.0.0.1/c>",)),
        "remove .related_articles": (1, ("### Related", "Deleting chats <http://127.0.0.1/x>")),
        "remove .avatar__info": (1, ("Written by Support · Updated 3 days ago",)),
        "remove .not-on-this-page": (0, ()),
        r"ignore Last reviewed: \d+ \w+ \d{4}": (1, ("Last reviewed: 12 May 2026",)),
    }
    assert found.unmatched_rules == ("remove .not-on-this-page",)
    assert found.expect_found == ("Help improve Claude",)
    assert found.expect_missing == ("new and resumed conversations",)
    assert {"opt out", "train", "Help improve Claude"} <= set(found.terms)
    assert not found.select_missing


def test_a_select_that_matches_nothing_shows_the_whole_page() -> None:
    found = inspect_html(ARTICLE, "http://127.0.0.1/", decl(select="#gone"))
    assert found.select_missing
    assert found.removals[0].matched == 0
    assert "Turn off Help improve Claude in Settings to opt out of model training." in found.text


def test_try_a_url_prints_json_and_stores_nothing(site: Site, tmp_path: Path) -> None:
    url = site.page("/article", ARTICLE)
    db = tmp_path / "store.db"
    result = monitor(
        "targets",
        "try",
        url,
        "--json",
        "--select",
        ".article",
        "--remove",
        ".related_articles",
        "--expect",
        "opt out of model training",
        "--expect",
        "Privacy Settings",
        env={"MONITOR_DB": f"sqlite:///{db}"},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["url"], report["status"], report["fetch"]) == (url, 200, "http")
    assert report["expect_found"] == ["opt out of model training"]
    assert report["expect_missing"] == ["Privacy Settings"]
    assert [r["rule"] for r in report["removed"]] == ["select .article", "remove .related_articles"]
    assert "fetch: http would do" in report["fetch_note"]
    assert "Related" not in report["text"]
    assert not db.exists()


def test_try_a_declared_page_with_a_rule_replaced(
    site: Site, targets_dir: Path, tmp_path: Path
) -> None:
    url = site.page("/article", ARTICLE)
    write_targets(
        targets_dir,
        "Example",
        [{"id": "example-training", "url": url, "fetch": "http", "select": ".article"}],
    )
    declared = monitor("targets", "try", "example-training", "--targets", str(targets_dir))
    assert declared.exit_code == 0, declared.output
    assert "select .article: 1 match(es)" in declared.stdout
    assert "Related" in declared.stdout  # the related list is still in the text

    moved = monitor(
        "targets", "try", "example-training", "--targets", str(targets_dir), "--select", "#gone"
    )
    assert moved.exit_code == 1
    assert "select '#gone' matches nothing" in moved.stdout


def test_try_names_unknown_ids_and_failed_fetches(site: Site, targets_dir: Path) -> None:
    write_targets(targets_dir, "Example", [{"id": "example", "url": site.url("/a")}])
    unknown = monitor("targets", "try", "nope", "--targets", str(targets_dir))
    assert unknown.exit_code == 2
    assert "unknown page id: nope" in unknown.stderr

    missing = monitor("targets", "try", site.url("/missing"), "--fetch", "http")
    assert missing.exit_code == 1
    assert "404" in missing.stderr

    bad = monitor("targets", "try", site.url("/a"), "--select", "a[")
    assert bad.exit_code == 2
    assert "not a valid CSS selector" in bad.stderr


@pytest.mark.browser
def test_try_auto_says_when_the_browser_was_needed(site: Site) -> None:
    url = site.page("/app", SCRIPT_BUILT)
    result = monitor("targets", "try", url, "--json", "--expect", "Improve the model for everyone")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["fetch"] == "browser"
    assert "looked script-built" in report["fetch_note"]
    assert report["expect_missing"] == []


def test_validate_warns_from_the_stored_history(site: Site, targets_dir: Path, db_url: str) -> None:
    url = site.page("/article", ARTICLE)
    page = {"id": "example-training", "url": url, "fetch": "http", "select": ".article"}
    write_targets(targets_dir, "Example", [page])
    checked = monitor("check-now", "--targets", str(targets_dir), "--db", db_url)
    assert checked.exit_code == 0, checked.output

    write_targets(
        targets_dir,
        "Example",
        [{**page, "expect": ["opt out of model training", "new and resumed conversations"]}],
    )
    validate = ("targets", "validate", "--targets", str(targets_dir), "--db", db_url)
    warned = monitor(*validate)
    assert warned.exit_code == 0
    assert "ok: 1 page(s) in 1 file(s)" in warned.stdout
    assert "expect 'new and resumed conversations' is not in the last stored version" in (
        warned.stderr
    )
    assert "opt out of model training" not in warned.stderr

    site.page("/article", ARTICLE.replace('class="article"', 'class="article-v2"'))
    failed = monitor("check-now", "--targets", str(targets_dir), "--db", db_url)
    assert failed.exit_code == 1
    warned = monitor(*validate)
    assert warned.exit_code == 0
    assert "select '.article' matched nothing last time" in warned.stderr


def test_validate_without_a_store_only_checks_files(
    targets_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_DB", raising=False)
    write_targets(
        targets_dir, "Example", [{"id": "a", "url": "https://example.org/", "expect": ["x"]}]
    )
    result = monitor("targets", "validate", "--targets", str(targets_dir))
    assert result.exit_code == 0
    assert result.stderr == ""
    assert not (tmp_path / "snapshots").exists()
