"""Compare two canonical texts: a block-level diff with word-level detail, and a severity.

`assess` is the seam where severity rules live; it returns a severity with the reasons a
person needs to judge the change.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from monitor.vocabulary import find_terms

Severity = Literal["noise", "minor", "relevant", "critical"]
SEVERITIES: tuple[Severity, ...] = ("noise", "minor", "relevant", "critical")
_WORDS = re.compile(r"\s+|[^\s\w]|\w+")


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


def assess(old: str, new: str, *, watch: tuple[str, ...] = ()) -> Assessment:
    """First severity: `relevant` when changed blocks hold opt-out words, else `minor`."""
    hunks = tuple(diff_blocks(old, new))
    if not hunks:
        return Assessment("noise", ("only ignorable material differs",))
    changed = "\n".join(line for hunk in hunks for line in (*hunk.removed, *hunk.added))
    terms = tuple(find_terms(changed, watch))
    removed = sum(len(h.removed) for h in hunks)
    added = sum(len(h.added) for h in hunks)
    reasons = [f"{removed} block(s) removed, {added} added"]
    if terms:
        reasons.insert(0, f"opt-out terms changed: {', '.join(terms)}")
        return Assessment("relevant", tuple(reasons), terms, hunks)
    return Assessment("minor", tuple(reasons), (), hunks)
