"""Property-based tests: no input makes extraction or target loading crash."""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.extract import SelectorMissing, extract, normalise_text
from monitor.targets import TargetError, load_file

BASE = "https://help.example.com/a"
TAGS = [
    "p",
    "div",
    "span",
    "a",
    "li",
    "ul",
    "table",
    "tr",
    "td",
    "h2",
    "script",
    "nav",
    "br",
    "b",
    "input",
    "main",
    "article",
    "template",
    "noscript",
    "style",
]


@st.composite
def html_documents(draw: st.DrawFn) -> str:
    """Tag soup: random nesting, unclosed tags, attributes, entities and odd characters."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(TAGS).map(lambda t: f"<{t}>"),
                st.sampled_from(TAGS).map(lambda t: f"</{t}>"),
                st.sampled_from(
                    [
                        '<a href="/x?utm_source=1#f">',
                        "<p hidden>",
                        '<div role="switch" aria-checked="true">',
                        '<input type="checkbox" checked>',
                        "&nbsp;",
                        "&amp;",
                        "&#8217;",
                        "<!-- c -->",
                        "<",
                    ]
                ),
                st.text(max_size=30),
            ),
            max_size=60,
        )
    )
    return "".join(pieces)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(html_documents())
def test_extraction_never_crashes_and_is_stable(document: str) -> None:
    first = extract(document, base_url=BASE).text
    assert extract(document, base_url=BASE).text == first  # the same page, the same text
    assert all(line == line.strip() and line for line in first.splitlines())


@settings(max_examples=200, deadline=None)
@given(html_documents(), st.sampled_from(["main", "p", "article > p", ".missing"]))
def test_select_either_extracts_or_says_it_matched_nothing(document: str, selector: str) -> None:
    try:
        extract(document, base_url=BASE, select=selector)
    except SelectorMissing as exc:
        assert exc.selector == selector


@settings(max_examples=300, deadline=None)
@given(html_documents())
def test_canonical_text_is_a_fixed_point(document: str) -> None:
    """Extracting a page made of the canonical text gives the canonical text back."""
    text = extract(document, base_url=BASE).text
    again = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines())
    assert extract(f"<body>{again}</body>", base_url=BASE).text == text


@given(st.text())
def test_normalise_text_is_idempotent(value: str) -> None:
    once = normalise_text(value)
    assert normalise_text(once) == once


yaml_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=20),
        st.sampled_from(["https://x.test/", "p-1", "6h", "auto", "main", "(", "ftp://x"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "provider",
                    "pages",
                    "id",
                    "url",
                    "fetch",
                    "select",
                    "ignore",
                    "interval",
                    "steps",
                    "click",
                    "tags",
                    "watch",
                    "x",
                ]
            ),
            children,
            max_size=6,
        ),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(yaml_values)
def test_target_files_never_raise_anything_but_a_named_error(data: object) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "random.yaml"
        path.write_text(yaml.safe_dump(data))
        try:
            load_file(path)
        except TargetError as exc:
            assert exc.problems and all(problem.startswith(str(path)) for problem in exc.problems)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_target_files_of_random_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "bytes.yaml"
        path.write_bytes(raw)
        try:
            load_file(path)
        except TargetError as exc:
            assert all(problem.startswith(str(path)) for problem in exc.problems)
