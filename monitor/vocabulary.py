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
    "retention": r"retain(?:s|ed|ing)?|retention|kept|keeps?|stor(?:e|es|ed|ing)|"
    r"sav(?:e|es|ed|ing)",
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
    "data sharing": r"(?:data|third[\s-]party)\s+sharing",
    "improve": r"improv(?:e|es|ed|ing)\s+(?:the\s+)?(?:model|ai|our\s+ai|our\s+services)",
    "chat history": r"chat\s+history|activity",
    "human review": r"human\s+review(?:ers?|ed)?",
    "object to": r"right\s+to\s+object",
    "AI models": r"(?:ai|artificial\s+intelligence|generative|(?:large\s+)?language|foundation)\s+"
    r"models?|llms?",
    "your data": r"(?:your|customer|user|member)\s+(?:data|content|information|conversations|"
    r"chats|interactions|posts)",
    "without consent": r"without\s+(?:your\s+)?(?:explicit\s+|prior\s+)?(?:consent|permission)",
    "recordings": r"(?:voice\s+|audio\s+)?recordings?",
    "going forward": r"new\s+(?:and|or)\s+resumed|going[\s-]forward|future\s+(?:model\s+)?"
    r"training|already\s+(?:taken\s+place|started|been\s+trained)",
}
# Where and to whom a setting applies: a change among these words in an opt-out sentence
# changes who is covered.
SCOPE = re.compile(
    r"(?<!\w)(?:EU|EEA|UK|United\s+Kingdom|European\s+(?:Union|Economic\s+Area)|Switzerland|"
    r"Brazil|Canada|US|United\s+States|California|markets?|countries|regions?|all|some|only|"
    r"except|excluding|everyone|adults?|minors?|teens?)(?!\w)",
    re.IGNORECASE,
)
# Plans and products a setting applies to; capitalised names only ("feel free" is not a plan).
PLANS = re.compile(
    r"(?<!\w)(?:Free|Pro\+?|Plus|Max|Team|Teams|Enterprise|Business|API|Education|Student|"
    r"Starter|Professional|Premium|Government|Gov|Organization|Work)(?!\w)"
)
# Words whose presence or absence reverses a sentence.
NEGATIONS = re.compile(
    r"(?<!\w)(?:not|no|never|none|nor|without|cannot|won't|don't|doesn't|isn't|aren't|"
    r"can't|didn't|wouldn't|shouldn't|haven't|hasn't|unless)(?!\w)|n't(?!\w)",
    re.IGNORECASE,
)
# Commitment and timing: "will store" -> "may store", "are updating" -> "updated".
MODALS = re.compile(
    r"(?<!\w)(?:will|may|might|can|could|must|shall|would|should|now|soon|currently|no\s+longer|"
    r"(?:are|is)\s+updating|updated|will\s+update|plan\s+to|going\s+to)(?!\w)",
    re.IGNORECASE,
)
# Opposite states: a sentence that swaps one for the other has flipped. Bare "on"/"off" only
# count next to a verb of switching or "by default", so "on your device" is not a state.
POLARITY = re.compile(
    r"(?<!\w)(?:(?:turn(?:s|ed|ing)?|switch(?:es|ed|ing)?|set|toggle[sd]?|is|are|remains?|"
    r"stays?)\s+(?:it\s+|this\s+|them\s+)?(?:to\s+)?(?P<switch>on|off)|(?P<default>on|off)\s+by\s+"
    r"default|\[(?P<toggle>on|off)\]|(?P<able>enabled|disabled)|opt(?:s|ed|ing)?[\s-]?"
    r"(?P<opt>in|out))(?!\w)",
    re.IGNORECASE,
)
_POSITIVE = {"on", "enabled", "in"}


def polarity(text: str) -> list[tuple[bool, int, int]]:
    """The on/off states a text names, in order: (positive?, start, end)."""
    return [
        (next(v for v in m.groups() if v).lower() in _POSITIVE, m.start(), m.end())
        for m in POLARITY.finditer(text)
    ]


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


def term_matches(text: str, extra: tuple[str, ...] = ()) -> list[tuple[str, int, int]]:
    """Every vocabulary match in `text`: (term, start, end)."""
    return [
        (name, match.start(), match.end())
        for name, regex in _compiled(extra)
        for match in regex.finditer(text)
    ]


def find_terms(text: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The vocabulary terms (built-in plus `extra`) that occur in `text`, in list order."""
    return [name for name, regex in _compiled(extra) if regex.search(text)]


def term_spans(text: str, extra: tuple[str, ...] = ()) -> list[tuple[int, int]]:
    """Where vocabulary terms occur in `text`: sorted, non-overlapping (start, end) offsets,
    so a reader can highlight them (overlapping matches are merged into one span)."""
    found = sorted((start, end) for _, start, end in term_matches(text, extra) if end > start)
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
