"""The bundled catalogue: valid, and each declaration behaves on a stand-in of its page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.extract import extract
from monitor.targets import Page, load_targets
from monitor.vocabulary import find_terms
from tests.conftest import Site
from tests.fixtures.providers import ARTICLES, page_html

CATALOGUE = Path(__file__).parent.parent / "targets"
PAGES = load_targets(CATALOGUE)
REQUIRED = {
    "Anthropic",
    "OpenAI",
    "Google",
    "Meta",
    "Microsoft",
    "LinkedIn",
    "X",
    "Reddit",
    "Quora",
    "Perplexity",
    "Amazon",
    "Apple",
    "Adobe",
    "Slack",
    "Zoom",
    "Grammarly",
    "Notion",
    "GitHub",
    "Automattic",
    "Pinterest",
    "Character.AI",
    "Mistral AI",
    "DeepSeek",
    "Otter.ai",
    "Snap",
    "Spotify",
    "Canva",
    "Figma",
    "Dropbox",
}


def test_the_catalogue_validates() -> None:
    result = CliRunner().invoke(main, ["targets", "validate", "--targets", str(CATALOGUE)])
    assert result.exit_code == 0, result.stderr
    assert {page.provider for page in PAGES} >= REQUIRED
    assert all(page.decl.title and page.decl.watch and page.tags for page in PAGES)


def test_every_page_has_a_stand_in() -> None:
    assert {page.id for page in PAGES} == set(ARTICLES)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.id)
def test_declaration_behaves_on_its_page(page: Page, site: Site) -> None:
    url = site.page("/article", page_html(page.id, page.label))
    text = extract(
        site.routes["/article"].body.decode(),
        base_url=url,
        select=page.decl.select,
        remove=page.decl.remove,
        ignore=page.decl.ignore,
    ).text
    assert "cookies" not in text and "All collections" not in text  # banner and chrome gone
    assert find_terms(text, page.decl.watch), "no opt-out wording extracted"
    for phrase in page.decl.expect:
        assert phrase.lower() in text.lower(), f"expect phrase {phrase!r} not found"
    for pattern in page.decl.ignore:  # what `ignore` covers never reaches the text
        assert not re.search(pattern, text)


def test_targets_try_shows_what_the_monitor_sees(site: Site, targets_dir: Path) -> None:
    from tests.conftest import write_targets

    url = site.page(
        "/a", page_html("grammarly-training-control", "Product Improvement and Training Control")
    )
    write_targets(
        targets_dir,
        "Grammarly",
        [
            {
                "id": "g",
                "url": url,
                "fetch": "http",
                "select": "article",
                "remove": ["p:last-of-type"],
                "expect": ["Product Improvement and Training", "Gone phrase"],
            }
        ],
    )
    result = CliRunner().invoke(
        main, ["targets", "try", "g", "--targets", str(targets_dir), "--show-dropped"]
    )
    assert result.exit_code == 1  # an expect phrase is missing
    assert "on by default for Free and Premium" in result.stdout
    assert (
        "taken away by select/remove/ignore" in result.stdout
        and "- Related: Privacy overview" in result.stdout
    )
    assert "expect found    'Product Improvement and Training'" in result.stdout
    assert "expect missing  'Gone phrase'" in result.stdout
    assert "opt-out terms: " in result.stdout and site.hits["/a"] == 1
    adhoc = CliRunner().invoke(main, ["targets", "try", url])
    assert adhoc.exit_code == 0 and "Help centre" not in adhoc.stdout  # default chrome removal


def test_validate_warns_from_the_history(site: Site, targets_dir: Path, sqlite_url: str) -> None:
    from tests.conftest import write_targets

    url = site.page("/a", page_html("figma-ai-content-training", "Figma AI"))
    declared = {
        "id": "f",
        "url": url,
        "fetch": "http",
        "select": "article",
        "expect": ["Content training"],
    }
    write_targets(targets_dir, "Figma", [declared])
    runner = CliRunner()
    runner.invoke(main, ["check-now", "--targets", str(targets_dir), "--db", sqlite_url])
    write_targets(
        targets_dir, "Figma", [{**declared, "expect": ["Content training", "Never said"]}]
    )
    result = runner.invoke(
        main, ["targets", "validate", "--targets", str(targets_dir), "--db", sqlite_url]
    )
    assert result.exit_code == 0
    assert "expect phrase 'Never said' is not in the last stored version" in result.stderr
    assert "Content training'" not in result.stderr
