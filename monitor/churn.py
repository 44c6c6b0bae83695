"""Routine churn: the parts of a page that change without changing what it says.

`mask` rewrites one block so that churn compares equal: "last updated" lines, relative dates,
counters, copyright years and rotating tokens become placeholders; absolute dates become ISO
dates (so a format flip is equal but a new date is not); spelling variants, list numbering
and locale path segments are made uniform (the comparison also ignores letter case). Masking
is per block, so block N of the masked text is block N of the stored text.
"""

from __future__ import annotations

import re
from functools import lru_cache

from monitor.vocabulary import find_terms

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_DATES = [
    re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.I),  # August 28, 2025
    re.compile(rf"\b{_DAY}\s+{_MONTH},?\s+{_YEAR}\b", re.I),  # 28 August 2025
    re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<month>[01]\d)-(?P<day>[0-3]\d)(?:[T ][\d:.]+Z?)?\b"),
]
_TIME = re.compile(r"\b\d{1,2}:\d\d(?::\d\d)?\s*(?:[ap]\.?m\.?|utc|gmt)?(?!\w)", re.I)
_RELATIVE = re.compile(
    r"\b(?:(?:about|over|almost|\d+|an?|one|a few)\s+(?:second|minute|hour|day|week|month|year)s?"
    r"\s+ago|yesterday|today|just now|(?:this|last)\s+(?:week|month|year))\b",
    re.I,
)
_STAMP_LINE = re.compile(
    r"^(?:#+\s*)?(?:last\s+)?(?:updated|modified|edited|reviewed|published|posted|written)\b"
    r"(?!\s+(?:our|the|its|your|how|what|to)\b)",
    re.I,
)
# What makes such a line a stamp rather than news: a date, a time or a relative date in it.
_STAMP_VALUE = re.compile(r"<when>|<time>|\b(?:19|20)\d\d-\d\d-\d\d\b|\bago\b", re.I)
_STAMP_MAX = 80
_STAMP_REST_WORDS = 6  # "Posted by a Community Manager 3 weeks ago"
_COUNTER = re.compile(
    r"\b\d[\d,.]*\s*[kKmM]?\s+(?:views?|votes?|likes?|upvotes?|comments?|followers?|people|"
    r"readers?|helpful)\b|\b\d+\s+out\s+of\s+\d+\b",
    re.I,
)
# Every counter holds one of these (lower case).
_COUNTER_HINTS = (
    "view",
    "vote",
    "like",
    "comment",
    "follower",
    "people",
    "reader",
    "helpful",
    "out",
)
_COPYRIGHT = re.compile(r"(?:©|\(c\)|copyright)\s*(?:(?:19|20)\d\d\s*[-–]?\s*)+", re.I)
_TOKEN = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # UUID
    r"|(?<![\w-])(?=\w*\d)(?=\w*[a-z])\w{20,}(?![\w-])",  # long token, not a slug
    re.I,
)
_TOKEN_MIN = 20  # a long token's length (a UUID is longer, in five parts)
_WORD_RUN = re.compile(rf"\w{{{_TOKEN_MIN}}}")
_LOCALE_SEGMENT = re.compile(r"(?<=[^/]/)(?:[a-z]{2}(?:-[a-z]{2})?)/(?=[\w-])", re.I)
_LIST_MARK = re.compile(r"^(?:[-*•]\s*)?(?:\(?(?:\d{1,2}|[ivx]{1,4}|[a-h])[.)]\s+)", re.I)
_SPELLING = {
    "personalisation": "personalization",
    "personalise": "personalize",
    "personalised": "personalized",
    "recognise": "recognize",
    "recognised": "recognized",
    "organisation": "organization",
    "organisations": "organizations",
    "optimise": "optimize",
    "optimising": "optimizing",
    "behaviour": "behavior",
    "licence": "license",
    "centre": "center",
    "analyse": "analyze",
    "authorise": "authorize",
    "minimise": "minimize",
}
# Every British spelling above holds one of these.
_SPELLING_STEMS = (
    "personalis",
    "recognis",
    "organisation",
    "optimis",
    "behaviour",
    "licence",
    "centre",
    "analyse",
    "authorise",
    "minimise",
)
_SPELLING_RE = re.compile(r"\b(?:" + "|".join(_SPELLING) + r")\b", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
_YEAR_ANYWHERE = re.compile(_YEAR)  # every date and copyright holds one
# Every relative date holds one of these (lower case).
_RELATIVE_HINTS = ("ago", "yesterday", "today", "just now", "week", "month", "year")


def _iso_date(match: re.Match[str]) -> str:
    month = match.group("month")
    number = int(month) if month.isdigit() else _MONTHS[month.lower().rstrip(".")]
    return f"{match.group('year')}-{number:02d}-{int(match.group('day')):02d}"


def _is_stamp(text: str) -> bool:
    """An "Updated 3 days ago" line: a stamp keyword, a date, and nothing about opt-outs."""
    keyword = _STAMP_LINE.match(text.strip())
    if not keyword or len(text) > _STAMP_MAX or not _STAMP_VALUE.search(text):
        return False
    rest = _STAMP_VALUE.sub(" ", text.strip()[keyword.end() :])
    return len(rest.split()) <= _STAMP_REST_WORDS and not find_terms(rest)


def _may_hold_token(text: str) -> bool:
    """Whether `_TOKEN` can match: a UUID has four hyphens, a long token as many word
    characters in a row as `_TOKEN_MIN`. Links are long words too, without such a run; looking
    for one inside long words only, not along the whole block, took the masking of a 1 MB
    policy from 42 to 29 ms (medians of 21 rounds taken in turn; the same masks)."""
    return text.count("-") >= 4 or any(
        _WORD_RUN.search(word) for word in text.split() if len(word) >= _TOKEN_MIN
    )


def _has_digit(text: str) -> bool:
    if text.isascii():  # ten scans in C beat a regex over the whole block
        return any(digit in text for digit in "0123456789")
    return _DIGIT.search(text) is not None


@lru_cache(maxsize=8192)  # about 5 MB: the blocks of a 2 MB page, old and new
def mask(block: str) -> str:
    """The block with its routine churn made uniform (see the module docstring). Each
    pattern runs only when the block holds what it needs (a year, a colon, a hint word, a
    long run of word characters, a slash): most prose has none, and the stored text and the
    new one share most blocks (cached)."""
    text = block
    digits = _has_digit(block)
    lower = block.lower()
    if digits and _YEAR_ANYWHERE.search(block):
        text = _COPYRIGHT.sub("© <year> ", text)
        for pattern in _DATES:
            text = pattern.sub(_iso_date, text)
    if any(hint in lower for hint in _RELATIVE_HINTS):
        text = _RELATIVE.sub("<when>", text)
    if digits and ":" in text:
        text = _TIME.sub("<time>", text)
    if digits and any(hint in lower for hint in _COUNTER_HINTS):
        text = _COUNTER.sub("<count>", text)
    if _is_stamp(text):
        return "<updated>"
    if digits and _may_hold_token(text):
        text = _TOKEN.sub("<token>", text)
    if "/" in text:
        text = _LOCALE_SEGMENT.sub("", text)
    text = _LIST_MARK.sub("", text)
    if any(stem in lower for stem in _SPELLING_STEMS):
        text = _SPELLING_RE.sub(lambda m: _SPELLING[m.group(0).lower()], text)
    return " ".join(text.split())


def mask_blocks(text: str) -> list[str]:
    return [mask(line) for line in text.splitlines()]
