"""The bundled catalogue (`targets/`) against offline pages modelled on each provider's site.

Every declared page is served from 127.0.0.1 (its URL rewritten to the local copy in
`tests/fixtures/providers/<file>/<page-id>.html`) and run through the real fetch and extract,
as `monitor targets try` does: the declaration's `select`, `remove` and `ignore` must each hit
something, the text must keep the opt-out wording, and every `expect` phrase must be found.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.fetch import Fetcher
from monitor.targets import Page, load_targets
from monitor.tryout import Tryout, inspect_html, try_page
from tests.conftest import Site

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "targets"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "providers"
# Built-in terms that carry opt-out meaning on their own ("privacy" and "setting" do not).
STRONG_TERMS = {
    "opt out",
    "opt in",
    "train",
    "fine-tune",
    "improve our models",
    "model improvement",
    "object",
    "consent",
    "machine learning",
    "generative AI",
}
ISSUE_PROVIDERS = {
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

PAGES = load_targets(TARGETS)
FILES = sorted({page.source.stem for page in PAGES})


def fixture_for(page: Page) -> Path:
    """The page's offline copy; pages that share a URL share the first one's copy."""
    for candidate in PAGES:
        path = FIXTURES / candidate.source.stem / f"{candidate.id}.html"
        if candidate.url == page.url and path.is_file():
            return path
    raise AssertionError(f"{page.id}: no fixture in {FIXTURES / page.source.stem}")


def local_copy(page: Page, url: str) -> Page:
    return Page(
        decl=page.decl.model_copy(update={"url": url}),
        provider=page.provider,
        tags=page.tags,
        source=page.source,
    )


@pytest.fixture(scope="module")
def tryouts() -> dict[str, Tryout]:
    """Each page tried once against its local copy, all through one shared browser."""
    site = Site()
    local = []
    for page in PAGES:
        fixture = fixture_for(page)
        path = f"/{fixture.parent.name}/{fixture.stem}"
        local.append(local_copy(page, site.page(path, fixture.read_text(encoding="utf-8"))))

    async def run() -> list[Tryout]:
        async with Fetcher(timeout=60, browser_pages=4) as fetcher:
            return list(await asyncio.gather(*(try_page(page, fetcher) for page in local)))

    try:
        return {result.page.id: result for result in asyncio.run(run())}
    finally:
        site.close()


def problems_of(result: Tryout) -> list[str]:
    page, found = result.page, result.inspection
    problems = []
    if found.select_missing:
        problems.append(f"select {page.decl.select!r} matched nothing")
    problems += [f"{rule} matched nothing" for rule in found.unmatched_rules]
    problems += [f"expect {phrase!r} not found" for phrase in found.expect_missing]
    if not STRONG_TERMS & set(found.terms):
        problems.append(f"no opt-out wording in the text (terms: {found.terms})")
    if not set(page.decl.watch) & set(found.terms):
        problems.append(f"none of the watch terms {page.decl.watch} occurs")
    if "©" in found.text:
        problems.append("site footer text survived extraction")
    return [f"{page.id}: {problem}" for problem in problems]


def test_catalogue_covers_the_issue_providers() -> None:
    providers = {page.provider for page in PAGES}
    assert providers >= ISSUE_PROVIDERS, sorted(ISSUE_PROVIDERS - providers)
    assert len(FILES) == len(providers) >= 29  # one file per provider


@pytest.mark.browser
@pytest.mark.parametrize("stem", FILES)
def test_declarations_behave_on_the_provider_fixture(stem: str, tryouts: dict[str, Tryout]) -> None:
    results = [tryouts[page.id] for page in PAGES if page.source.stem == stem]
    assert results
    problems = [problem for result in results for problem in problems_of(result)]
    assert not problems, "\n".join(problems)


def script_built(page: Page) -> bool:
    return "<noscript>" in fixture_for(page).read_text(encoding="utf-8")


@pytest.mark.parametrize("page", [p for p in PAGES if script_built(p)], ids=lambda p: p.id)
def test_script_built_copies_hold_no_text_over_http(page: Page) -> None:
    """A copy built by scripts holds no text over plain HTTP, which is why its page is
    declared for the browser; the declared phrases only appear once scripts run."""
    over_http = inspect_html(fixture_for(page).read_text(encoding="utf-8"), "http://x/", page.decl)
    assert (over_http.text, over_http.script_wall) == ("", True)
    assert page.decl.fetch != "http"


def test_no_http_page_has_a_script_built_copy() -> None:
    assert not [page.id for page in PAGES if page.decl.fetch == "http" and script_built(page)]


def test_validate_passes_on_the_catalogue() -> None:
    result = CliRunner().invoke(
        main,
        ["targets", "validate", "--targets", str(TARGETS)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert f"ok: {len(PAGES)} page(s) in {len(FILES)} file(s)" in result.stdout
