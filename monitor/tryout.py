"""`monitor targets try`: fetch a page once and show what its declaration makes of it.

Writing a target means guessing a `select`, some `remove` selectors and `ignore` patterns,
and phrases to `expect`. This module shows the effect of each guess on the real page, by
running the real extraction with and without each rule and reporting the blocks each one
took away, the opt-out terms in the result and which `expect` phrases are there. Nothing is
stored.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from monitor.extract import SelectorMissing, count_matches, extract, normalise_text, parse
from monitor.fetch import Capture, Fetcher, FetchMode
from monitor.targets import Page, PageDecl, TargetError
from monitor.vocabulary import find_terms

TRY_ID = "try"


def phrase_found(text: str, phrase: str) -> bool:
    """Whether an `expect` phrase occurs in canonical text (case and spacing do not matter)."""
    return normalise_text(phrase).casefold() in text.casefold()


@dataclass(frozen=True)
class Removal:
    """What one rule took away: how many nodes (or regex matches) it hit, and which blocks."""

    rule: str
    matched: int
    blocks: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "matched": self.matched, "blocks": list(self.blocks)}


@dataclass(frozen=True)
class Inspection:
    """The extraction of one HTML document under a declaration, rule by rule."""

    text: str
    select_missing: bool
    script_wall: bool
    removals: tuple[Removal, ...]
    terms: tuple[str, ...]
    expect_found: tuple[str, ...]
    expect_missing: tuple[str, ...]

    @property
    def unmatched_rules(self) -> tuple[str, ...]:
        """Rules that hit nothing on this page: a typo, or a page whose structure moved."""
        return tuple(r.rule for r in self.removals if r.matched == 0)


@dataclass(frozen=True)
class Tryout:
    page: Page
    capture: Capture
    inspection: Inspection
    mode_note: str

    def to_json(self) -> dict[str, Any]:
        i = self.inspection
        return {
            "target": self.page.id,
            "url": self.page.url,
            "final_url": self.capture.final_url,
            "status": self.capture.status,
            "fetch": self.capture.mode,
            "fetch_note": self.mode_note,
            "select_missing": i.select_missing,
            "blocks": len(i.text.splitlines()),
            "text": i.text,
            "removed": [r.to_json() for r in i.removals],
            "unmatched": list(i.unmatched_rules),
            "terms": list(i.terms),
            "expect_found": list(i.expect_found),
            "expect_missing": list(i.expect_missing),
        }


def _taken(before: list[str], after: list[str]) -> tuple[str, ...]:
    """Blocks of `before` that `after` no longer has (counting repeats), in page order."""
    left = Counter(after)
    taken = []
    for block in before:
        if left[block]:
            left[block] -= 1
        else:
            taken.append(block)
    return tuple(taken)


def inspect_html(html: str, base_url: str, decl: PageDecl) -> Inspection:
    """Run the real extraction once per rule so each rule's effect can be shown on its own."""
    tree = parse(html)  # for the counts of matches; extraction takes its own tree apart

    def blocks(**rules: Any) -> list[str]:
        return extract(html, base_url=base_url, **rules).blocks

    removals: list[Removal] = []
    unselected = blocks()
    for selector in decl.remove:
        without = blocks(remove=(selector,))
        matched = count_matches(tree, selector)
        removals.append(Removal(f"remove {selector}", matched, _taken(unselected, without)))
    select_missing = False
    trimmed = blocks(remove=decl.remove)
    if decl.select:
        matched = count_matches(tree, decl.select)
        try:
            selected = blocks(select=decl.select, remove=decl.remove)
        except SelectorMissing:
            select_missing, selected = True, trimmed
        removals.insert(0, Removal(f"select {decl.select}", matched, _taken(trimmed, selected)))
        trimmed = selected
    for pattern in decl.ignore:
        regex = re.compile(pattern)
        hits = [match.group(0) for line in trimmed for match in regex.finditer(line)]
        removals.append(Removal(f"ignore {pattern}", len(hits), tuple(dict.fromkeys(hits))))
    final = extract(
        html,
        base_url=base_url,
        select=None if select_missing else decl.select,
        remove=decl.remove,
        ignore=decl.ignore,
    )
    found = tuple(p for p in decl.expect if phrase_found(final.text, p))
    return Inspection(
        text=final.text,
        select_missing=select_missing,
        script_wall=final.script_wall,
        removals=tuple(removals),
        terms=tuple(find_terms(final.text, decl.watch)),
        expect_found=found,
        expect_missing=tuple(p for p in decl.expect if p not in found),
    )


async def try_page(page: Page, fetcher: Fetcher) -> Tryout:
    """Fetch once the way a check would (an `auto` page falls back to the browser when its
    HTTP text looks script-built or lacks the `select` part) and inspect the result.

    Raises FetchError when the page cannot be fetched."""
    decl = page.decl
    use_browser = decl.fetch == "browser" or (decl.fetch == "auto" and bool(decl.wait_for))
    mode: FetchMode = "browser" if use_browser else "http"
    capture = await fetcher.fetch(page, mode)
    inspection = await asyncio.to_thread(inspect_html, capture.html, capture.final_url, decl)
    note = f"fetch: {decl.fetch}"
    if decl.fetch == "auto" and mode == "http":
        why = (
            "the HTTP text looked script-built"
            if inspection.script_wall
            else f"select {decl.select!r} matched nothing over HTTP"
            if inspection.select_missing
            else None
        )
        if why:
            capture = await fetcher.fetch(page, "browser")
            inspection = await asyncio.to_thread(
                inspect_html, capture.html, capture.final_url, decl
            )
            note = f"fetch: auto used the browser because {why}; consider fetch: browser"
        else:
            note = "fetch: auto got the text over HTTP; fetch: http would do"
    return Tryout(page, capture, inspection, note)


def page_to_try(
    pages: list[Page], id_or_url: str, overrides: dict[str, Any], targets_dir: Path
) -> Page:
    """The declared page named by id, or an ad-hoc page for a URL, with the rules given on
    the command line taking the place of the declared ones."""
    by_id = {page.id: page for page in pages}
    if id_or_url in by_id:
        base = by_id[id_or_url]
        data, provider, tags, source = base.decl.model_dump(), base.provider, base.tags, base.source
    elif "://" in id_or_url:
        data, provider, tags, source = {"id": TRY_ID, "url": id_or_url}, "(try)", (), targets_dir
    else:
        raise TargetError([f"unknown page id: {id_or_url} (give a declared id or a URL)"])
    data.update({k: v for k, v in overrides.items() if v not in (None, ())})
    try:
        decl = PageDecl.model_validate(data)
    except ValueError as exc:
        raise TargetError([f"{id_or_url}: {exc}"]) from exc
    return Page(decl=decl, provider=provider, tags=tags, source=source)


def render_tryout(result: Tryout, shown: int = 5) -> RenderableType:
    """The text, then what each rule took away, then the terms and expectations found."""
    i, capture = result.inspection, result.capture
    parts: list[RenderableType] = [
        Text(f"{result.page.label}\n{capture.final_url} (HTTP {capture.status})", style="bold"),
        Text(result.mode_note, style="dim"),
        Text(f"\n--- extracted text ({len(i.text.splitlines())} blocks) ---", style="bold"),
        Text(i.text or "(no text)"),
        Text("\n--- taken away ---", style="bold"),
    ]
    if i.select_missing:
        parts.append(Text(f"select {result.page.decl.select!r} matches nothing", style="red"))
    for removal in i.removals:
        style = "yellow" if removal.matched == 0 else ""
        parts.append(Text(f"{removal.rule}: {removal.matched} match(es)", style=style))
        parts += [Text(f"    {block}", style="dim") for block in removal.blocks[:shown]]
        if len(removal.blocks) > shown:
            parts.append(Text(f"    ... and {len(removal.blocks) - shown} more", style="dim"))
    if not i.removals:
        parts.append(Text("no select/remove/ignore declared (site chrome removed by default)"))
    parts.append(Text(f"\nopt-out terms: {', '.join(i.terms) or 'none'}", style="bold"))
    parts += [Text(f"expect found: {p}", style="green") for p in i.expect_found]
    parts += [Text(f"expect MISSING: {p}", style="bold red") for p in i.expect_missing]
    return Group(*parts)
