"""Tools for writing targets: try a declaration on the live page, and check it against the
history, without storing anything."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.check import Observer, reextracted
from monitor.extract import extract, fingerprint
from monitor.fetch import Fetcher
from monitor.store import Store
from monitor.targets import Page, PageDecl
from monitor.vocabulary import find_terms


@dataclass(frozen=True)
class Tryout:
    page: Page
    fetch_mode: str
    final_url: str
    text: str  # what the declaration keeps
    dropped: tuple[str, ...]  # blocks of the whole page that select/remove/ignore took away
    terms: tuple[str, ...]
    expect_found: tuple[str, ...]
    expect_missing: tuple[str, ...]


def adhoc_page(url: str) -> Page:
    """A page for `targets try URL`: the defaults of a new declaration."""
    return Page(
        PageDecl(id="try", url=url), provider="(try)", tags=(), source=Path("(command line)")
    )


async def try_page(page: Page, *, timeout: float) -> Tryout:
    """Fetch once and extract with the page's rules; raises PageFailure like a check."""
    async with Fetcher(timeout=timeout) as fetcher:
        observation = await Observer(fetcher, retry_delay=0).observe(page)
    capture, text = observation.capture, observation.extraction.text
    whole = extract(capture.html, base_url=capture.final_url).text
    kept = set(text.splitlines())
    dropped = tuple(line for line in whole.splitlines() if line not in kept)
    lowered = text.lower()
    return Tryout(
        page=page,
        fetch_mode=capture.mode,
        final_url=capture.final_url,
        text=text,
        dropped=dropped,
        terms=tuple(find_terms(text, page.decl.watch)),
        expect_found=tuple(p for p in page.decl.expect if p.lower() in lowered),
        expect_missing=tuple(p for p in page.decl.expect if p.lower() not in lowered),
    )


def history_warnings(pages: list[Page], store: Store) -> list[str]:
    """`expect` phrases absent from the last stored version, and selectors that matched
    nothing at the last check."""
    warnings = []
    for page in pages:
        row = store.page(page.id)
        if row is None:
            continue
        if row.last_outcome == "error" and row.last_error and "matches nothing" in row.last_error:
            warnings.append(f"{page.source}: page {page.id!r}: last check: {row.last_error}")
        state = store.page_state(page.id)
        if state.text is None:
            continue
        current = state.text
        if state.fingerprint != fingerprint(page.decl):  # the rules changed: read it anew
            current = reextracted(store, page, state) or current
        lowered = current.lower()
        for phrase in page.decl.expect:
            if phrase.lower() not in lowered:
                warnings.append(
                    f"{page.source}: page {page.id!r}: expect phrase {phrase!r} is not in "
                    "the last stored version"
                )
    return warnings
