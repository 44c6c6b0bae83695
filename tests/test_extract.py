"""HTML → canonical text: stable, readable in a diff, and blind to markup churn."""

from __future__ import annotations

import zlib

import pytest

from monitor.extract import (
    SelectorMissing,
    compress,
    decompress,
    extract,
    hollow,
    normalise_text,
    normalise_url,
    source,
)

BASE = "https://help.example.com/en/articles/42-training"


def text(html: str, **options) -> str:
    return extract(html, base_url=BASE, **options).text


def test_blocks_headings_lists_tables_links() -> None:
    html = """<html><body><main>
      <h2>Turning it off</h2>
      <p>Open <a href="/settings/privacy?utm_source=mail#top">Privacy&nbsp;Settings</a> and switch
         it <em>off</em>.</p>
      <ol><li>Free</li><li><p>Pro</p></li></ol>
      <table><tr><th>Plan</th><th>Used for training</th></tr><tr><td>Team</td><td>No</td></tr></table>
    </main></body></html>"""
    assert text(html).splitlines() == [
        "## Turning it off",
        "Open Privacy Settings <https://help.example.com/settings/privacy> and switch it off.",
        "- Free",
        "- Pro",
        "Plan | Used for training",
        "Team | No",
    ]


def test_markup_and_whitespace_reshuffles_give_the_same_text() -> None:
    one = "<main><p>We will <b>not</b> use your chats.</p><p>Opt out  any time.</p></main>"
    two = """<main>
      <p>We   will <span class="x"><strong>not</strong></span>
         use your&#32;chats.</p>
      <div><p>Opt&nbsp;out any&nbsp;time.</p></div>
    </main>"""
    assert text(one) == text(two) == "We will not use your chats.\nOpt out any time."


def test_same_page_same_text() -> None:
    html = "<body><main><h1>A</h1><p>b <a href='c'>d</a></p></main></body>"
    assert len({text(html) for _ in range(5)}) == 1


def test_unicode_is_normalised() -> None:
    assert (
        normalise_text("\u201cDon\u2019t\u201d\u00a0train\u200b \u2014 ok\ufb01")
        == '"Don\'t" train - okfi'
    )


def test_scripts_styles_hidden_consent_and_chrome_are_dropped() -> None:
    html = """<html><head><style>p{}</style></head><body>
      <header>Site name</header><nav>Home · Pricing</nav>
      <div id="onetrust-consent-sdk"><p>We use cookies</p></div>
      <div class="CybotCookiebotDialog">Cookie choices</div>
      <div id="didomi-host">Consent</div>
      <main><article><header><h1>Kept title</h1></header>
        <p>Visible.</p><p hidden>Hidden attr.</p><p style="display: none">Hidden style.</p>
        <p aria-hidden="true">Icon</p><script>var x = "script text";</script>
        <template><p>template</p></template><noscript>noscript</noscript>
        <dialog><p>Closed dialog.</p></dialog><dialog open><p>Open dialog.</p></dialog>
        <p>Com<!-- a note -->ment.<input type="hidden" aria-label="token"></p>
        <div role="navigation">Menu</div><p style="visibility:hidden">Invisible.</p>
      </article></main>
      <aside>Related</aside><footer>© 2026</footer></body></html>"""
    assert text(html) == "# Kept title\nVisible.\nOpen dialog.\nComment."


def test_select_remove_and_ignore() -> None:
    html = """<body><div class="chrome">Menu</div><article>
      <p class="meta">Last updated: 3 June 2026</p>
      <p>Keep Activity is on by default.</p><div class="related">Related articles</div>
    </article></body>"""
    assert text(html, select="article", remove=(".related",), ignore=(r"Last updated: .*",)) == (
        "Keep Activity is on by default."
    )


def test_ignore_removes_only_the_match() -> None:
    html = "<main><p>Policy version 2026-06-09: we train on public posts.</p></main>"
    assert text(html, ignore=(r"version \d{4}-\d\d-\d\d:",)) == "Policy we train on public posts."


def test_select_matching_nothing_is_an_error() -> None:
    with pytest.raises(SelectorMissing, match="'article' matches nothing"):
        extract("<main><p>x</p></main>", base_url=BASE, select="article")


def test_several_matches_are_kept_in_order() -> None:
    html = (
        "<body><section class='s'>One</section><p>skip</p><section class='s'>Two</section></body>"
    )
    assert text(html, select=".s") == "One\nTwo"


def test_toggle_states_are_text() -> None:
    html = """<main><label>Help improve our models <input type="checkbox" checked></label>
      <div role="switch" aria-checked="false">Keep Activity</div></main>"""
    assert text(html) == "Help improve our models [on]\nKeep Activity [off]"


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/a/b?utm_medium=x&id=3#frag", "https://help.example.com/a/b?id=3"),
        ("HTTPS://Help.Example.COM:443/x", "https://help.example.com/x"),
        ("http://h.test:8080", "http://h.test:8080/"),
        ("mailto:privacy@example.com", "mailto:privacy@example.com"),
        ("#section", None),
        ("javascript:void(0)", None),
    ],
)
def test_urls_are_normalised(href: str, expected: str | None) -> None:
    assert normalise_url(href, BASE) == expected


def test_script_wall_is_detected() -> None:
    wall = "<body><div id=root></div><noscript>Please enable JavaScript.</noscript><script>1</script></body>"
    assert extract(wall, base_url=BASE).script_wall
    static = (
        "<body><main><p>"
        + "Plain server-rendered text. " * 20
        + "</p></main><script>1</script></body>"
    )
    assert not extract(static, base_url=BASE).script_wall


def test_garbage_html_does_not_crash() -> None:
    for junk in (
        "",
        "<",
        "<<>>&&;",
        "<p><b><i>unclosed",
        "\x00\x01binary",
        "<table><tr><td>a<td>b",
    ):
        extract(junk, base_url=BASE)


@pytest.mark.parametrize("opening", ["<div>", "<span>", "<a href='/x'>", "<li>", "<table><tr><td>"])
def test_very_deep_nesting_is_read(opening: str) -> None:
    assert "deep text" in text("<body>" + opening * 10_000 + "<p>deep text</p></body>")


@pytest.mark.parametrize("closing", ["</html>", "</body>", "</body></html>", "</HTML >"])
def test_text_after_the_document_end_tags_is_read(closing: str) -> None:
    """A browser shows what a page sends after `</html>`: so does extraction."""
    page = f"<html><body><p>Before the end.</p>{closing}<p>Opt out in Settings.</p>"
    assert text(page) == "Before the end.\nOpt out in Settings."


def test_control_characters_after_dropped_elements_are_kept() -> None:
    page = "<body><p>Chat history<script>x()</script>\x1f is on<style>p{}</style>\x0b.</p></body>"
    assert text(page).split() == ["Chat", "history", "is", "on", "."]


def test_selectors_beyond_the_basics() -> None:
    page = (
        "<main><section><h2>Ads</h2><p>Ad settings.</p></section>"
        "<section><h2>Chats</h2><p>Chat settings.</p></section></main>"
    )
    assert text(page, select='section:has(h2:contains("Chats"))') == "## Chats\nChat settings."
    assert text(page, remove=("section:nth-of-type(1)",)) == "## Chats\nChat settings."


def test_an_unreadable_selector_is_named() -> None:
    with pytest.raises(ValueError, match="'p::text' is not a valid CSS selector"):
        extract("<p>x</p>", base_url=BASE, select="p::text")


def test_captures_are_plain_zlib_both_ways() -> None:
    """Captures stored by zlib itself (as earlier versions did) are read back, and ours are
    readable by any zlib: a store's captures never need converting."""
    page = "<p>Turn off <b>Ads personalisation</b> in My Ad Centre. ✓</p>" * 500
    assert decompress(zlib.compress(page.encode(), 1)) == page
    assert zlib.decompress(compress(page.encode())).decode() == page
    assert len(compress(page.encode())) < len(page.encode()) / 10


def test_script_and_style_bodies_are_emptied_before_parsing() -> None:
    page = (
        b"<head><STYLE media='x'>p{color:red}</style></head><body><p>Kept</p>"
        b'<script type="application/json">{"a": "</div>"}</SCRIPT >'
        b"<script src=x.js></script><p>After</p></body>"
    )
    assert hollow(page) == (
        b"<head><STYLE media='x'></style></head><body><p>Kept</p>"
        b'<script type="application/json"></SCRIPT ><script src=x.js></script><p>After</p></body>'
    )
    assert text(page.decode()) == "Kept\nAfter"


@pytest.mark.parametrize(
    "page",
    [
        # A comment is not markup: the `<script>` inside it starts nothing.
        b"<!-- <script> --><p>Visible</p></script>",
        b"<!-- a > b <script> --><p>Visible</p></script>",
        b"<!-- <style> --><p>Visible</p><style>x</style>",
        # Nor is an attribute's value, nor the text of a title or a textarea.
        b"<p title='<script>'>Visible</p><script>x</script>",
        b"<p title='<style>'>Visible</p><style>x</style>",
        b'<p title="a <script>">Visible</p></script><p>Visible</p>',
        b'<p title="a>b <script>">Visible</p><script>x</script>',
        b"<title><script></title><p>Visible</p><script>x</script>",
        b"<textarea><style>Visible</style></textarea>",
        # A script whose end is uncertain (a comment inside) is left whole.
        b"<script><!-- document.write('<script></script>') --></script><p>Visible</p>",
        # An end tag with no start, a start with no end, another element.
        b"</script><p>Visible</p><script>never closed",
        b"<scripts>custom element</scripts><p>Visible</p>",
    ],
)
def test_hollowing_leaves_what_it_cannot_be_sure_of(page: bytes) -> None:
    assert b"Visible" in hollow(page)
    assert "Visible" in text(page.decode())
    assert extract(page.decode(), base_url=BASE) == extract(source(page.decode()), base_url=BASE)


def test_a_source_reads_as_its_page_and_again_the_same() -> None:
    """Versions keep their page's source: extracting it again (after a rules change) must
    give what the page gave."""
    page = (
        "<html><head><style>.a{}</style><script>var s = '<p>not text</p>';</script></head>"
        "<body><main><p>Opt out in <a href='/s'>Settings</a>.</p></main></body></html>"
        "<p>After the end</p>"
    )
    once = source(page)
    assert source(once.decode()) == once
    assert text(page) == text(once.decode()) == extract(once, base_url=BASE).text
    assert text(page) == "Opt out in Settings <https://help.example.com/s>.\nAfter the end"
