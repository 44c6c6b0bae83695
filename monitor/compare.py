"""Compare two canonical texts: a block-level diff with word-level detail, and a severity.

`assess` is the seam where severity rules live; it returns a severity with the reasons a
person needs to judge the change.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Literal

from monitor.churn import mask_blocks
from monitor.vocabulary import MODALS, NEGATIONS, PLANS, SCOPE, polarity, term_matches

Severity = Literal["noise", "minor", "relevant", "critical"]
SEVERITIES: tuple[Severity, ...] = ("noise", "minor", "relevant", "critical")
_WORDS = re.compile(r"\s+|<[^<>\s]+>|[^\s\w]|\w+")
_LINK = re.compile(r"<(https?://[^<>\s]+|mailto:[^<>\s]+)>")
_NUMBER = re.compile(
    r"\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"eighteen|thirty|sixty|ninety|hundred)\b",
    re.IGNORECASE,
)
_DATE = re.compile(r"\b(?:19|20)\d\d-\d\d-\d\d\b")
_EFFECT = re.compile(
    r"\b(?:effective|starting|from|until|takes? effect|goes? into effect|begin\w*|deadline|"
    r"by|before|after|no later than)\b",
    re.IGNORECASE,
)
_PLAN_CONTEXT = re.compile(
    r"\b(?:plans?|tiers?|accounts?|subscriptions?|applies|available)\b", re.I
)
_SWITCH = re.compile(r"\[(?:on|off)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^\s<])")
VANISH_SHARE = 0.6  # "most of the text": more than this share of the characters is gone
VANISH_MIN_CHARS = 200
PAIRING_LIMIT = 40_000  # removed x added sentences beyond which a rewrite is not paired


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Hunk:
    """A run of removed and/or added blocks, with where it starts in each text."""

    old_start: int
    new_start: int
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "old_start": self.old_start,
            "new_start": self.new_start,
            "removed": list(self.removed),
            "added": list(self.added),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hunk:
        return cls(
            data["old_start"], data["new_start"], tuple(data["removed"]), tuple(data["added"])
        )


@dataclass(frozen=True)
class Assessment:
    severity: Severity
    reasons: tuple[str, ...]
    terms: tuple[str, ...] = ()
    hunks: tuple[Hunk, ...] = field(default=())

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons[:3]) if self.reasons else "no difference"


def diff_blocks(old: str, new: str) -> list[Hunk]:
    """Block (line) level diff; equal runs are left out."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    return [
        Hunk(i1, j1, tuple(old_lines[i1:i2]), tuple(new_lines[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """Word-level marks between two blocks: (`equal` | `delete` | `insert`, text) pieces."""
    old_words, new_words = _WORDS.findall(old), _WORDS.findall(new)
    matcher = difflib.SequenceMatcher(None, old_words, new_words, autojunk=False)
    pieces: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pieces.append(("equal", "".join(old_words[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(("delete", "".join(old_words[i1:i2])))
        if j2 > j1:
            pieces.append(("insert", "".join(new_words[j1:j2])))
    return pieces


def pair_blocks(
    removed: Sequence[str], added: Sequence[str]
) -> list[tuple[str | None, str | None]]:
    """Removed and added text side by side: each removed piece with the most similar added
    piece (when they share at least half their words, or are the only two), the rest alone,
    in reading order."""
    if len(removed) == len(added) == 1:
        return [(removed[0], added[0])]
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    for i, old in enumerate(removed if len(removed) * len(added) <= PAIRING_LIMIT else ()):
        scores = [(_similarity(old, new), j) for j, new in enumerate(added) if j not in taken]
        best = max(scores, default=(0.0, -1))
        if best[0] >= 0.5:
            pairs[i] = best[1]
            taken.add(best[1])
    out: list[tuple[str | None, str | None]] = []
    next_added = 0
    for i, old in enumerate(removed):
        j = pairs.get(i)
        if j is not None:
            out += [(None, added[k]) for k in range(next_added, j) if k not in pairs.values()]
            next_added = max(next_added, j + 1)
        out.append((old, added[j] if j is not None else None))
    out += [(None, added[k]) for k in range(next_added, len(added)) if k not in pairs.values()]
    return out


def _similarity(old: str, new: str) -> float:
    matcher = difflib.SequenceMatcher(None, old.split(), new.split(), autojunk=False)
    return matcher.ratio() if matcher.real_quick_ratio() >= 0.5 <= matcher.quick_ratio() else 0.0


def assess(
    old: str, new: str, *, watch: tuple[str, ...] = (), expect: tuple[str, ...] = ()
) -> Assessment:
    """The severity of the change from `old` to `new` with its reasons; the rules are in
    docs/detection.md. Churn is masked first, so a change of churn alone is `noise`."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    masked_old, masked_new = mask_blocks(old), mask_blocks(new)
    matcher = difflib.SequenceMatcher(
        None, [b.lower() for b in masked_old], [b.lower() for b in masked_new], autojunk=False
    )
    hunks = tuple(
        Hunk(i1, j1, tuple(old_lines[i1:i2]), tuple(new_lines[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    )
    if not hunks:
        reason = "only routine churn differs (dates, counters, tokens)"
        return Assessment("noise", (reason,), (), tuple(diff_blocks(old, new)))
    findings = Findings()
    _expected_gone(old, new, expect, findings)
    _vanished(masked_old, masked_new, findings)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed = [s for line in masked_old[i1:i2] for s in sentences(line)]
            added = [s for line in masked_new[j1:j2] for s in sentences(line)]
            inner = difflib.SequenceMatcher(
                None, [s.lower() for s in removed], [s.lower() for s in added], autojunk=False
            )
            for op, a1, a2, b1, b2 in inner.get_opcodes():
                if op != "equal":
                    for before, after in pair_blocks(removed[a1:a2], added[b1:b2]):
                        _sentence_rules(before, after, watch, findings)
    return findings.assessment(hunks)


def with_reason(assessment: Assessment, severity: Severity, reason: str) -> Assessment:
    """The assessment with one more reason first, its severity raised to at least `severity`."""
    higher = max(assessment.severity, severity, key=severity_rank)
    reasons = (reason, *(r for r in assessment.reasons if not r.startswith("only routine")))
    return Assessment(higher, reasons, assessment.terms, assessment.hunks)


def capped(assessment: Assessment, severity: Severity, reason: str) -> Assessment:
    """The assessment with one more reason first, its severity lowered to at most `severity`."""
    lower = min(assessment.severity, severity, key=severity_rank)
    return Assessment(lower, (reason, *assessment.reasons), assessment.terms, assessment.hunks)


def failure(reason: str) -> Assessment:
    """A page that worked and now fails (after a retry) is critical: the guide may be stale."""
    return Assessment("critical", (reason,))


@dataclass
class Findings:
    """Reasons gathered by the rules, each at a severity; the highest one wins."""

    reasons: dict[str, Severity] = field(default_factory=dict)
    terms: list[str] = field(default_factory=list)
    edits: int = 0

    def add(self, severity: Severity, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons[reason] = severity

    def assessment(self, hunks: tuple[Hunk, ...]) -> Assessment:
        if self.terms:
            self.add("relevant", f"opt-out terms changed: {', '.join(self.terms)}")
        if self.edits and not self.reasons:
            self.add("minor", f"{self.edits} sentence(s) changed, none about opt-outs")
        if not self.reasons:
            return Assessment("noise", ("only routine churn differs",), (), hunks)
        ordered = sorted(self.reasons.items(), key=lambda item: -severity_rank(item[1]))
        severity = ordered[0][1]
        return Assessment(severity, tuple(r for r, _ in ordered), tuple(self.terms), hunks)


def _expected_gone(old: str, new: str, expect: tuple[str, ...], findings: Findings) -> None:
    if not expect:
        return
    flat_old, flat_new = " ".join(old.lower().split()), " ".join(new.lower().split())
    for phrase in expect:
        wanted = " ".join(phrase.lower().split())
        if wanted in flat_old and wanted not in flat_new:
            findings.add("critical", f'expected phrase gone: "{phrase}"')


def _vanished(masked_old: list[str], masked_new: list[str], findings: Findings) -> None:
    before, after = sum(map(len, masked_old)), sum(map(len, masked_new))
    if before >= VANISH_MIN_CHARS and after < before * (1 - VANISH_SHARE):
        findings.add("critical", f"{round(100 * (before - after) / before)}% of the text vanished")


def _changed_spans(before: str, after: str) -> tuple[list[range], list[range]]:
    """Character ranges of the words that differ, in `before` and in `after`."""
    old_words, new_words = _WORDS.findall(before), _WORDS.findall(after)
    old_at = [0, *accumulate(map(len, old_words))]
    new_at = [0, *accumulate(map(len, new_words))]
    matcher = difflib.SequenceMatcher(
        None, [w.lower() for w in old_words], [w.lower() for w in new_words], autojunk=False
    )
    old_spans, new_spans = [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            if i2 > i1 and "".join(old_words[i1:i2]).strip():
                old_spans.append(range(old_at[i1], old_at[i2]))
            if j2 > j1 and "".join(new_words[j1:j2]).strip():
                new_spans.append(range(new_at[j1], new_at[j2]))
    return old_spans, new_spans


def _overlaps(span: Sequence[int], spans: list[range]) -> bool:
    start, end = span[0], span[1]
    return any(start < changed.stop and changed.start < end for changed in spans)


def _touched_terms(text: str, spans: list[range], watch: tuple[str, ...]) -> list[str]:
    return [term for term, *span in term_matches(text, watch) if _overlaps(span, spans)]


def _numbers(text: str, spans: list[range]) -> list[str]:
    """Dates and numbers of `text` that the change touches, whole (a date, not its day)."""
    found = [m for m in _DATE.finditer(text) if _overlaps(m.span(), spans)]
    dates = [m.span() for m in _DATE.finditer(text)]
    found += [
        m
        for m in _NUMBER.finditer(text)
        if _overlaps(m.span(), spans) and not any(a <= m.start() < b for a, b in dates)
    ]
    return [m.group(0) for m in sorted(found, key=lambda m: m.start())]


def _unlinked(text: str) -> str:
    """The text with link targets blanked to spaces (offsets kept): URLs carry no polarity."""
    return _LINK.sub(lambda m: " " * len(m.group(0)), text)


def _changed_text(text: str, spans: list[range]) -> str:
    return " ".join(text[span.start : span.stop] for span in spans)


def _sentence_rules(
    before: str | None, after: str | None, watch: tuple[str, ...], findings: Findings
) -> None:
    """The rules for one removed/added/changed sentence (masked, lower-case)."""
    findings.edits += 1
    old, new = before or "", after or ""
    old_spans, new_spans = (
        _changed_spans(old, new) if before and after else ([range(len(old))], [range(len(new))])
    )
    if not old_spans and not new_spans:
        return
    touched = _touched_terms(old, old_spans, watch) + _touched_terms(new, new_spans, watch)
    about_opt_out = bool(term_matches(old, watch) or term_matches(new, watch))
    terms = list(dict.fromkeys(touched))
    for term in terms:
        if term not in findings.terms:
            findings.terms.append(term)
    changed_old, changed_new = _changed_text(old, old_spans), _changed_text(new, new_spans)
    if before and after and _flipped(old, new, old_spans, new_spans, about_opt_out):
        findings.add("critical", f'meaning flipped: "{_short(old)}" → "{_short(new)}"')
    if before and after and about_opt_out:
        links_old, links_new = _LINK.findall(changed_old), _LINK.findall(new)
        if _LINK.search(changed_old) or _LINK.search(changed_new):
            gone = [u for u in _LINK.findall(old) if u not in links_new] or links_old
            came = [u for u in links_new if u not in _LINK.findall(old)]
            if gone or came:
                findings.add(
                    "relevant",
                    f"link target changed: {', '.join(gone) or '-'} → {', '.join(came) or '-'}",
                )
        numbers_old, numbers_new = _numbers(old, old_spans), _numbers(new, new_spans)
        dated = any(_DATE.fullmatch(n) for n in (*numbers_old, *numbers_new))
        if (numbers_old or numbers_new) and (not dated or _EFFECT.search(old + " " + new)):
            findings.add(
                "relevant",
                f"number changed in an opt-out sentence: {' '.join(numbers_old) or '-'} → "
                f"{' '.join(numbers_new) or '-'}",
            )
        for what, words in (("scope", SCOPE), ("commitment or timing", MODALS)):
            gone = [m.group(0) for m in words.finditer(old) if _overlaps(m.span(), old_spans)]
            came = [m.group(0) for m in words.finditer(new) if _overlaps(m.span(), new_spans)]
            if [w.lower() for w in gone] != [w.lower() for w in came]:
                findings.add(
                    "relevant",
                    f"{what} changed in an opt-out sentence: {' '.join(gone) or '-'} → "
                    f"{' '.join(came) or '-'}",
                )
    scoped = about_opt_out or _PLAN_CONTEXT.search(old + " " + new)
    if scoped and (PLANS.search(changed_old) or PLANS.search(changed_new)):
        plans_old, plans_new = set(PLANS.findall(old)), set(PLANS.findall(new))
        if before and after and plans_old != plans_new:
            gone = ", ".join(sorted(plans_old - plans_new)) or "-"
            came = ", ".join(sorted(plans_new - plans_old)) or "-"
            findings.add("relevant", f"plans changed: {gone} → {came}")


def _flipped(
    old: str, new: str, old_spans: list[range], new_spans: list[range], about_opt_out: bool
) -> bool:
    """A negation added or removed, or on/off states swapped, in an opt-out sentence; a
    switch (`[on]` -> `[off]`) flipping counts wherever it is: it is a setting's state."""
    words_old, words_new = _unlinked(old), _unlinked(new)
    states_old = [on for on, *span in polarity(words_old) if _overlaps(span, old_spans)]
    states_new = [on for on, *span in polarity(words_new) if _overlaps(span, new_spans)]
    swapped = bool(states_old and states_new and states_old != states_new)
    if swapped and _SWITCH.search(old) and _SWITCH.search(new):
        return True
    negations = len(NEGATIONS.findall(words_old)) != len(NEGATIONS.findall(words_new))
    return about_opt_out and (negations or swapped)


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sentences(block: str) -> list[str]:
    """A block split into sentences (a link target stays with its sentence)."""
    return [part for part in _SENTENCE_END.split(block) if part.strip()]
