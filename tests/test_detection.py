"""The detection rules one by one: churn masks, vocabulary, sentence pairing, severities."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from monitor import churn
from monitor.churn import mask
from monitor.compare import Hunk, assess, pair_blocks
from monitor.render import diff_lines
from monitor.vocabulary import find_terms

PAGE = "\n".join(
    [
        "# Is my data used for training?",
        "We will not use your chats to train our models unless you opt in.",
        "Chats you delete are removed within 30 days.",
        "Change it in Privacy Settings <https://ex.test/settings/privacy>.",
        "This applies to the Free and Pro plans.",
        "Contact us about billing questions.",
    ]
)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("Updated 3 days ago", "Updated yesterday"),
        ("Last updated: March 3, 2025", "Last updated: 4 June 2026"),
        ("Published on 2 May 2025 at 10:15 AM", "Published on 9 June 2026 at 4:40 PM"),
        ("Since 28 August 2025, chats are kept.", "Since August 28, 2025, chats are kept."),
        ("1,204 people found this helpful", "1,377 people found this helpful"),
        ("312 upvotes · 4,100 views", "330 upvotes · 4,622 views"),
        ("12 out of 40 found this useful", "13 out of 41 found this useful"),
        ("© 2025 Example Inc.", "© 2026 Example Inc."),
        ("Copyright 2024-2025 Example", "Copyright 2024-2026 Example"),
        (
            "Policy <https://ex.test/r/website.v1.3f2a9c1e-7b4d-4c1a-9e2f-51d0a8c6b7e4>",
            "Policy <https://ex.test/r/website.v1.c07e51a2-1d9b-4f38-b6e0-77a4c2d913fe>",
        ),
        (
            "See <https://ex.test/a?s=Zx81kQp2LmN7vB4tR9wYe>",
            "See <https://ex.test/a?s=Pq3Lm9Xk2Vb7Nt4Rw8Hz1>",
        ),
        ("Docs <https://ex.test/en/articles/12-x>", "Docs <https://ex.test/articles/12-x>"),
        ("(1) Open Settings.", "(i) Open Settings."),
        ("2. Open Settings.", "b) Open Settings."),
        ("We improve personalisation.", "We improve personalization."),
        ("OUR BEHAVIOUR CENTRE", "our behavior center"),
        ("Read by ٣ people", "Read by 5 people"),  # digits of any script
    ],
)
def test_churn_masks_equal(before: str, after: str) -> None:
    assert mask(before).lower() == mask(after).lower()


def test_every_spelling_variant_passes_the_quick_check() -> None:
    """mask() only looks for spelling variants in blocks holding one of the stems."""
    for british in churn._SPELLING:
        assert any(stem in british for stem in churn._SPELLING_STEMS), british


TOKEN_PARTS = [
    "opt-out",
    "see",
    "<https://ex.test/a/b-c?x=1>",
    "3f2a9c1e-7b4d-4c1a-9e2f-51d0a8c6b7e4",
    "Zx81kQp2LmN7vB4tR9wYe",
    "a" * 19 + "1",
    "_" * 25,
    "q-" * 12,
    "٣" * 21 + "x",
    "data_controls_2025_faq",
]


@given(st.lists(st.sampled_from(TOKEN_PARTS), min_size=1, max_size=6), st.sampled_from(" /-"))
def test_every_token_passes_the_quick_check(parts: list[str], separator: str) -> None:
    """mask() only looks for tokens in blocks with four hyphens or a long run of word
    characters: wherever the token pattern matches, the check lets it through."""
    block = separator.join(parts)
    if churn._TOKEN.search(block):
        assert churn._may_hold_token(block)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("From 28 August 2025, chats are kept.", "From 28 September 2025, chats are kept."),
        ("Kept for 30 days.", "Kept for 90 days."),
        ("Updated our policy on training.", "Updated our policy on model training."),
        ("Updated: training is off by default", "Updated: training is on by default"),
        ("Updated 2 May 2025: opt out by June", "Updated 2 May 2025: opt out by July"),
        ("Docs <https://ex.test/en/articles/12-x>", "Docs <https://ex.test/en/forms/12-x>"),
        (
            "FAQ <https://ex.test/articles/7730893-data-controls-faq-for-everyone>",
            "FAQ <https://ex.test/articles/5722486-how-your-data-is-used-to-train>",
        ),
    ],
)
def test_masks_keep_real_differences(before: str, after: str) -> None:
    assert mask(before) != mask(after)


def test_vocabulary_inflections_and_whole_words() -> None:
    assert find_terms("Opting out of model training")[:2] == ["opt out", "train"]
    assert find_terms("You can opt-out") == ["opt out"]
    assert find_terms("We retained it") == ["retention"]
    assert find_terms("an objective view of retrained staff") == []
    assert find_terms("Do not sell or share my personal information") == [
        "personal data",
        "do not sell or share",
    ]
    assert find_terms("Turn on Keep Activity", ("Keep Activity",))[-1] == "Keep Activity"


def change(old: str, new: str, **kwargs: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    result = assess(PAGE, PAGE.replace(old, new), **kwargs)
    return result.severity, result.reasons


def test_severities_of_each_rule() -> None:
    assert change("Privacy Settings", "Data Controls", expect=("Privacy Settings",))[0] == (
        "critical"
    )
    assert change("will not use", "will use")[0] == "critical"
    assert change("opt in", "opt out")[0] == "critical"
    assert change("30 days", "60 days") == (
        "relevant",
        ("number changed in an opt-out sentence: 30 → 60",),
    )
    assert change("Free and Pro", "Free, Pro and Max") == ("relevant", ("plans changed: - → Max",))
    assert change("settings/privacy", "forms/request")[1][0] == (
        "link target changed: https://ex.test/settings/privacy → https://ex.test/forms/request"
    )
    assert change("billing questions", "invoices") == (
        "minor",
        ("1 sentence(s) changed, none about opt-outs",),
    )
    assert change("billing", "invoices", watch=("invoices",))[0] == "relevant"


def test_only_changed_words_count() -> None:
    """A sentence about training whose changed words are not opt-out words is minor."""
    assert change("your chats to", "your chats in order to")[0] == "minor"


def test_vanished_text_and_noise() -> None:
    gone = assess(PAGE, "# Is my data used for training?")
    assert gone.severity == "critical" and "% of the text vanished" in gone.reasons[0]
    quiet = assess(PAGE + "\nUpdated 2 days ago", PAGE + "\nUpdated today")
    assert quiet.severity == "noise" and quiet.hunks


def test_pairing_matches_similar_sentences_in_order() -> None:
    removed = ["Chats are kept for 30 days.", "Contact support."]
    added = ["A new introduction.", "Chats are kept for 90 days."]
    assert pair_blocks(removed, added) == [
        (None, "A new introduction."),
        ("Chats are kept for 30 days.", "Chats are kept for 90 days."),
        ("Contact support.", None),
    ]


def test_diff_lines_pair_sentences_and_highlight_terms() -> None:
    hunk = Hunk(0, 0, ("Intro.", "Chats are kept for 30 days."), ("Chats are kept for 90 days.",))
    lines = diff_lines([hunk])
    plain = [line.plain for line in lines]
    assert plain[1:] == [
        "- Intro.",
        "- Chats are kept for 30 days.",
        "+ Chats are kept for 90 days.",
    ]
    console = Console(record=True, force_terminal=True, color_system="standard", width=200)
    console.print(lines[3])
    assert "\x1b[7;32mkept" in console.export_text(styles=True)  # reverse video


@given(st.lists(st.text(max_size=80).map(lambda s: " ".join(s.split())), max_size=12))
@settings(max_examples=200, deadline=None)
def test_same_text_is_noise_and_any_text_is_graded(blocks: list[str]) -> None:
    text = "\n".join(b for b in blocks if b)
    same = assess(text, text)
    assert same.severity == "noise" and same.hunks == ()
    graded = assess(text, PAGE)
    assert graded.severity in ("noise", "minor", "relevant", "critical") and graded.reasons
