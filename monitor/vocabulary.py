"""Opt-out vocabulary: the words whose change can make an opt-out guide wrong.

Matching is case-insensitive and on whole words; a page's `watch` terms are added to the
built-in list. Each entry is a regular expression fragment so that inflections and spellings
(opt out / opt-out / opting out) count as one term, reported under its first spelling.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

BUILT_IN: dict[str, str] = {
    "opt out": r"opt(?:s|ed|ing)?[\s-]?outs?",
    "opt in": r"opt(?:s|ed|ing)?[\s-]?ins?",
    "train": r"train(?:s|ed|ing)?",
    "fine-tune": r"fine[\s-]?tun(?:e|es|ed|ing)",
    "improve our models": r"improve\s+(?:our|the|its|their)\s+(?:ai\s+)?models?",
    "model improvement": r"model\s+improvement",
    "personal data": r"personal\s+(?:data|information)",
    "retention": r"retain(?:s|ed|ing)?|retention",
    "delete": r"delet(?:e|es|ed|ing|ion)",
    "consent": r"consent(?:s|ed|ing)?",
    "object": r"object(?:s|ed|ing)?|objections?",
    "legitimate interest": r"legitimate\s+interests?",
    "do not sell or share": r"do\s+not\s+(?:sell|share)(?:\s+or\s+(?:sell|share))?",
    "toggle": r"toggl(?:e|es|ed|ing)",
    "setting": r"settings?",
    "default": r"defaults?|by\s+default",
    "generative AI": r"generative\s+ai",
    "machine learning": r"machine\s+learning",
    "privacy": r"privacy",
}


@lru_cache(maxsize=512)
def _compiled(extra: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    entries = [
        (name, re.compile(rf"(?<!\w)(?:{pattern})(?!\w)", re.IGNORECASE))
        for name, pattern in BUILT_IN.items()
    ]
    entries += [
        (term, re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE)) for term in extra
    ]
    return entries


def find_terms(text: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The vocabulary terms (built-in plus `extra`) that occur in `text`, in list order."""
    return [name for name, regex in _compiled(extra) if regex.search(text)]


def term_spans(text: str, extra: tuple[str, ...] = ()) -> list[tuple[int, int]]:
    """Where vocabulary terms occur in `text`: sorted, non-overlapping (start, end) offsets,
    so a reader can highlight them (overlapping matches are merged into one span)."""
    found = sorted(
        (match.start(), match.end())
        for _, regex in _compiled(extra)
        for match in regex.finditer(text)
        if match.end() > match.start()
    )
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def emphasise(
    text: str, extra: tuple[str, ...], mark: Callable[[str], str], escape: Callable[[str], str]
) -> str:
    """`text` with every vocabulary term passed through `mark` and the rest through `escape`."""
    pieces, position = [], 0
    for start, end in term_spans(text, extra):
        pieces += [escape(text[position:start]), mark(text[start:end])]
        position = end
    pieces.append(escape(text[position:]))
    return "".join(pieces)
