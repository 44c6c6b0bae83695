"""Word marks and term highlights as the review pages receive them."""

from __future__ import annotations

from monitor.vocabulary import term_spans
from monitor.web.diffview import diff_view, mark, missing_phrases, text_view
from monitor.web.filters import query, safe_href


def marked(segments) -> str:
    """Segments as text with [-removed-]/{+added+} and *term* marks, for readable asserts."""
    out = []
    for segment in segments:
        text = "".join(f"*{p.text}*" if p.term else p.text for p in segment.pieces)
        out.append(f"[{text}]" if segment.changed else text)
    return "".join(out)


def test_term_spans_merge_and_watch_terms() -> None:
    text = "Opt-out of training in Privacy Settings, by default."
    assert [text[a:b] for a, b in term_spans(text)] == [
        "Opt-out",
        "training",
        "Privacy",
        "Settings",
        "by default",
    ]
    assert [text[a:b] for a, b in term_spans(text, ("Privacy Settings",))][2] == "Privacy Settings"
    assert term_spans("Nothing to see here.") == []


def test_changed_words_grouped_and_terms_marked_inside() -> None:
    (hunk,) = diff_view(
        [
            {
                "old_start": 1,
                "new_start": 1,
                "removed": ["You can opt out of model training here."],
                "added": ["You can turn off model training here, and more."],
            }
        ]
    )
    (row,) = hunk.rows
    assert (row.old_number, row.new_number) == (2, 2)
    assert marked(row.old) == "You can [*opt out* of] model *training* here."
    assert marked(row.new) == "You can [turn off] model *training* here[, and more]."


def test_blocks_only_removed_or_added_are_wholly_marked() -> None:
    (hunk,) = diff_view(
        [{"old_start": 0, "new_start": 0, "removed": ["Gone."], "added": ["New.", "Also new."]}]
    )
    gone, new, also = hunk.rows  # nothing alike to pair: each block stands alone
    assert (marked(gone.old), gone.new) == ("[Gone.]", None)
    assert new.old is None and new.old_number is None and marked(new.new) == "[New.]"
    assert (marked(also.new), also.new_number) == ("[Also new.]", 2)


def test_mark_keeps_every_character() -> None:
    text = "<script>alert(1)</script> consent & delete"
    segments = mark(text, [(0, 8)], ())
    assert "".join(s.text for s in segments) == text
    assert [line and marked(line) for line in text_view("a\nWe train.")] == ["a", "We *train*."]


def test_missing_expected_phrases_ignore_case_and_spacing() -> None:
    expect = ["new and resumed conversations", "Privacy Settings"]
    after = "Applies to NEW and\tresumed conversations; see privacy   settings."
    assert missing_phrases(expect, after) == []
    assert missing_phrases(expect, "Applies to new conversations.") == expect
    assert missing_phrases(expect, None) == []


def test_only_web_links_are_clickable_and_queries_keep_filters() -> None:
    assert safe_href("https://example.org/x") == "https://example.org/x"
    assert safe_href("javascript:alert(1)") is None
    assert safe_href("JaVaScRiPt:alert(1)") is None
    assert safe_href("data:text/html,hi") is None and safe_href(None) is None
    params = {"severity": ("minor", "relevant"), "q": "opt out", "provider": None}
    assert query(params, page=2) == "?severity=minor&severity=relevant&q=opt+out&page=2"
