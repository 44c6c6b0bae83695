"""A change's diff as data for the templates: rows of marked segments.

Each block becomes segments that say whether a word changed (word-level marks from
`monitor.compare.word_diff`) and whether it is an opt-out term (`monitor.vocabulary`). The
templates only print the segments, escaped; no HTML is built here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from monitor.compare import Hunk, pair_blocks, word_diff
from monitor.vocabulary import term_spans


@dataclass(frozen=True)
class Piece:
    text: str
    term: bool = False


@dataclass(frozen=True)
class Segment:
    """A run of text that changed (or did not), its opt-out terms cut out as pieces."""

    pieces: tuple[Piece, ...]
    changed: bool = False

    @property
    def text(self) -> str:
        return "".join(piece.text for piece in self.pieces)


@dataclass(frozen=True)
class Row:
    """One removed block beside the added block that replaced it (either may be missing)."""

    old_number: int | None
    new_number: int | None
    old: tuple[Segment, ...] | None
    new: tuple[Segment, ...] | None


@dataclass(frozen=True)
class HunkView:
    old_start: int
    new_start: int
    rows: tuple[Row, ...]


def mark(text: str, changed: Iterable[tuple[int, int]], watch: tuple[str, ...]) -> list[Segment]:
    """Cut `text` at every boundary of a changed range or a term span, labelling each piece."""
    changed = list(changed)
    terms = term_spans(text, watch)
    cuts = sorted({0, len(text), *(p for span in (*changed, *terms) for p in span)})
    segments: list[Segment] = []
    for start, end in pairwise(cuts):
        piece = Piece(text[start:end], term=any(a <= start and end <= b for a, b in terms))
        is_changed = any(a <= start and end <= b for a, b in changed)
        if segments and segments[-1].changed == is_changed:
            segments[-1] = Segment((*segments[-1].pieces, piece), is_changed)
        else:
            segments.append(Segment((piece,), is_changed))
    return segments


def _add_range(ranges: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    """Add a changed range without its outer whitespace, joined to the previous one when only
    whitespace lies between them."""
    piece = text[start:end]
    start, end = start + len(piece) - len(piece.lstrip()), end - len(piece) + len(piece.rstrip())
    if ranges and not text[ranges[-1][1] : start].strip():
        ranges[-1] = (ranges[-1][0], end)
    else:
        ranges.append((start, end))


def _changed_ranges(old: str, new: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Offsets of the deleted words in `old` and of the inserted words in `new`."""
    old_ranges: list[tuple[int, int]] = []
    new_ranges: list[tuple[int, int]] = []
    old_at = new_at = 0
    for op, piece in word_diff(old, new):
        if op == "delete" and piece.strip():
            _add_range(old_ranges, old, old_at, old_at + len(piece))
        if op == "insert" and piece.strip():
            _add_range(new_ranges, new, new_at, new_at + len(piece))
        if op in ("equal", "delete"):
            old_at += len(piece)
        if op in ("equal", "insert"):
            new_at += len(piece)
    return old_ranges, new_ranges


def hunk_view(hunk: Hunk, watch: tuple[str, ...] = ()) -> HunkView:
    rows: list[Row] = []
    old_number, new_number = hunk.old_start, hunk.new_start  # blocks are numbered from 1
    for old, new in pair_blocks(hunk.removed, hunk.added):
        old_number += old is not None
        new_number += new is not None
        if old is not None and new is not None:
            old_ranges, new_ranges = _changed_ranges(old, new)
        else:
            old_ranges = [(0, len(old))] if old else []
            new_ranges = [(0, len(new))] if new else []
        rows.append(
            Row(
                old_number=old_number if old is not None else None,
                new_number=new_number if new is not None else None,
                old=tuple(mark(old, old_ranges, watch)) if old is not None else None,
                new=tuple(mark(new, new_ranges, watch)) if new is not None else None,
            )
        )
    return HunkView(hunk.old_start, hunk.new_start, tuple(rows))


def diff_view(diff: list[dict], watch: tuple[str, ...] = ()) -> list[HunkView]:
    """The stored diff (JSON hunks) of a change, ready to print."""
    return [hunk_view(Hunk.from_json(item), watch) for item in diff]


def text_view(text: str, watch: tuple[str, ...] = ()) -> list[tuple[Segment, ...]]:
    """A whole version, block by block, with its opt-out terms marked."""
    return [tuple(mark(line, (), watch)) for line in text.splitlines()]


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def missing_phrases(expect: Iterable[str], after: str | None) -> list[str]:
    """Expected phrases (a guide relies on them) that the new text does not hold."""
    if after is None:
        return []
    text = _folded(after)
    return [phrase for phrase in expect if _folded(phrase) not in text]
