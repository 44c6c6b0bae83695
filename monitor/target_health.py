"""Warnings about declarations that no longer fit their pages, read from the stored history.

A target file can be valid and still be wrong for its page: an `expect` phrase the page no
longer (or never) says, or a `select` that stopped matching at the last check. These are
warnings for the person keeping the catalogue, separate from the file errors that stop a run.
"""

from __future__ import annotations

from monitor.check import reextracted
from monitor.extract import fingerprint
from monitor.store import Store
from monitor.targets import Page
from monitor.tryout import phrase_found


def stored_warnings(store: Store, pages: list[Page]) -> list[str]:
    """One line per problem the last stored version and the last check show; pages never
    checked get none."""
    warnings: list[str] = []
    for page in pages:
        where = f"{page.source}: page {page.id!r}"
        row = store.page(page.id)
        if row is None:
            continue
        version = store.version(row.current_version_id)
        if version is not None:
            text = version.text
            if version.fingerprint != fingerprint(page.decl):  # rules edited: read it anew
                text = reextracted(store, page, store.page_state(page.id)) or text
            seen = f"{version.last_seen:%Y-%m-%d %H:%M} UTC"
            warnings += [
                f"{where}: expect {phrase!r} is not in the last stored version (seen {seen})"
                for phrase in page.decl.expect
                if not phrase_found(text, phrase)
            ]
        last = store.checks(page.id, 1)
        error = last[0].error if last and last[0].outcome == "error" else None
        select, wait_for = page.decl.select, page.decl.wait_for
        if error and select and "matches nothing" in error:
            warnings.append(f"{where}: select {select!r} matched nothing last time")
        if error and wait_for and f"wait_for {wait_for!r}" in error:
            warnings.append(f"{where}: wait_for {wait_for!r} matched nothing last time")
    return warnings
