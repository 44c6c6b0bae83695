"""The review site in a real Chromium: follow a change, see the marks, review it, see the count
drop; and a monitored page whose text holds script and markup stays inert text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from monitor.fetch.browser import CHROMIUM_FLAGS, choose_browser
from tests.conftest import Site
from tests.web_history import EXPECTED, TOKEN, History, Server, build_history, serve

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def history(_site_server: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    directory = tmp_path_factory.mktemp("web-browser")
    _site_server.reset()
    yield build_history(_site_server, directory, f"sqlite:///{directory / 'monitor.db'}")
    _site_server.reset()


@pytest.fixture(scope="module")
def server(history: History) -> Iterator[Server]:
    with serve(history) as running:
        yield running


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Browser]:
    """Started after the history is built: Playwright's sync API holds an event loop."""
    choice = choose_browser(None)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=choice.executable, args=list(CHROMIUM_FLAGS)
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_review_a_change(page: Page, server: Server, history: History) -> None:
    page.goto(server.base + "/")
    total = page.locator("#unreviewed-total")
    row = page.locator('tr[data-page="acme-training"]')
    before_total, before_row = int(total.inner_text()), int(row.locator(".unreviewed").inner_text())
    assert before_row == 2
    expect(page.locator('tr[data-page="globex-ads"]')).to_contain_text("failing since")
    expect(page.locator('tr[data-page="globex-old"]')).to_contain_text("no longer declared")
    expect(page.locator('tr[data-page="acme-upcoming"]')).to_contain_text("never checked")
    expect(page.get_by_role("link", name="https://guides.example.org/acme-chat")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    shot(page, "web-overview.png")

    page.get_by_role("link", name="Changes", exact=True).click()
    page.get_by_label("Provider").select_option("Acme")
    page.get_by_label("relevant").check()
    page.get_by_label("critical").check()
    page.get_by_role("button", name="Filter").click()
    first = history.training_changes[0]
    expect(page.locator("#result-count")).to_contain_text("change(s)")
    expect(page.locator("ol.feed > li")).to_have_count(2)  # Acme's alerting changes
    shot(page, "web-changes.png")
    page.locator(f'a[href="/changes/{first}"]').click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Is my chat used for training?")
    side = page.locator("table.sbs")
    expect(side.locator("del").first).to_have_text("opt out of")
    expect(side.locator("ins").first).to_have_text("turn off")
    expect(side.locator("del mark.term").first).to_have_text("opt out")
    expect(page.locator(".inline .minus")).to_have_count(2)
    expect(page.locator(".missing")).to_contain_text(EXPECTED)
    expect(page.get_by_role("link", name="Next change of this page →")).to_be_visible()
    shot(page, "web-change.png")

    page.get_by_label("Your name").fill("Dana")
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_label("Note").fill("Guide step 3 needs the new wording.")
    page.get_by_role("button", name="Mark reviewed").click()
    expect(page.locator("#review-state")).to_contain_text("Reviewed by Dana")
    expect(page.locator("blockquote.note")).to_have_text("Guide step 3 needs the new wording.")
    assert int(total.inner_text()) == before_total - 1

    page.goto(server.base + "/")
    assert int(row.locator(".unreviewed").inner_text()) == before_row - 1
    assert int(total.inner_text()) == before_total - 1


def test_wrong_token_is_refused_in_the_form(page: Page, server: Server, history: History) -> None:
    second = history.training_changes[1]
    page.goto(f"{server.base}/changes/{second}")
    page.get_by_label("Your name").fill("Eve")
    page.get_by_label("Token").fill("a guess")
    page.get_by_role("button", name="Mark reviewed").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong or missing token")
    expect(page.locator("#review-state")).to_have_text("Not reviewed yet.")


def test_hostile_page_text_stays_inert(page: Page, server: Server, history: History) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path in (
        f"/changes/{history.hostile_change}",
        "/pages/acme-hostile",
        "/changes?q=pwned",
        "/",
    ):
        page.goto(server.base + path)
        assert page.evaluate("typeof window.__pwned") == "undefined", path
        assert page.locator("img").count() == 0, path
        assert page.locator("main script").count() == 0, path
    page.goto(f"{server.base}/changes/{history.hostile_change}")
    page.locator("details").nth(1).locator("summary").click()
    shown = '<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2">'
    expect(page.locator(".inline .plus", has_text="pwned")).to_contain_text(shown)
    expect(page.locator(".fulltext").nth(1)).to_contain_text(shown + " again")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    shot(page, "web-hostile.png")


def test_readable_on_a_phone(browser: Browser, server: Server, history: History) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    phone.goto(f"{server.base}/changes/{history.training_changes[0]}")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the change page scrolls sideways on a phone ({width} px)"
    shot(phone, "web-change-phone.png")
    context.close()
