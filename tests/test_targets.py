"""Target files: the contract's schema, and errors that name file, page and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.targets import TargetError, load_targets, parse_interval, select_pages
from tests.conftest import write_targets

FULL = {
    "id": "anthropic-training-opt-out",
    "url": "https://example.com/page",
    "title": "Is my data used for model training?",
    "fetch": "browser",
    "select": "main",
    "remove": ["nav", ".cookie-banner"],
    "ignore": ["Last updated: .*"],
    "wait_for": "article h1",
    "watch": ["Privacy Settings"],
    "expect": ["new and resumed conversations"],
    "interval": "6h",
    "guide": "https://example.org/guides/claude",
    "notify": ["maintainers"],
    "auth": "testacct",
    "steps": [{"click": "#open-privacy"}, {"wait_for": "[role=dialog]"}],
}


def problems(directory: Path) -> str:
    with pytest.raises(TargetError) as caught:
        load_targets(directory)
    return "\n".join(caught.value.problems)


def test_every_contract_field_loads(targets_dir: Path) -> None:
    write_targets(targets_dir, "Anthropic", [FULL], tags=["ai-training"])
    [page] = load_targets(targets_dir)
    assert page.provider == "Anthropic"
    assert page.decl.remove == ("nav", ".cookie-banner")
    assert page.interval_seconds == 6 * 3600
    assert page.all_tags == ("ai-training", "maintainers")
    assert page.decl.steps[0].click == "#open-privacy"


def test_defaults(targets_dir: Path) -> None:
    write_targets(targets_dir, "P", [{"id": "p", "url": "http://127.0.0.1/x"}])
    [page] = load_targets(targets_dir)
    assert (page.decl.fetch, page.decl.interval, page.label) == ("auto", "6h", "p")


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ({"url": "https://x.test/"}, "page #1: field id: required field is missing"),
        ({"id": "Bad_Id", "url": "https://x.test/"}, "page 'Bad_Id': field id"),
        (
            {"id": "a", "url": "file:///etc/passwd"},
            "page 'a': field url: 'file:///etc/passwd' is not an http",
        ),
        ({"id": "a", "url": "https://x.test/", "fetch": "carrier-pigeon"}, "page 'a': field fetch"),
        (
            {"id": "a", "url": "https://x.test/", "interval": "often"},
            "page 'a': field interval: 'often' is not an interval",
        ),
        (
            {"id": "a", "url": "https://x.test/", "ignore": ["(unclosed"]},
            "page 'a': field ignore: '(unclosed' is not a valid regular expression",
        ),
        (
            {"id": "a", "url": "https://x.test/", "select": "main >>> p"},
            "page 'a': field select: 'main >>> p' is not a valid CSS selector",
        ),
        (
            {"id": "a", "url": "https://x.test/", "colour": "red"},
            "page 'a': field colour: unknown field",
        ),
        (
            {"id": "a", "url": "https://x.test/", "fetch": "http", "wait_for": "h1"},
            "'wait_for' needs a browser",
        ),
        (
            {"id": "a", "url": "https://x.test/", "steps": [{"click": "a", "press": "Enter"}]},
            "page 'a': field steps.0: a step needs exactly one",
        ),
    ],
)
def test_invalid_page_is_named(targets_dir: Path, page: dict, expected: str) -> None:
    path = write_targets(targets_dir, "Bad", [page])
    message = problems(targets_dir)
    assert str(path) in message
    assert expected in message


def test_file_level_problems(targets_dir: Path) -> None:
    (targets_dir / "broken.yaml").write_text("provider: X\npages: [\n")
    (targets_dir / "list.yaml").write_text("- just a list\n")
    (targets_dir / "empty-pages.yaml").write_text("provider: X\npages: []\n")
    (targets_dir / "no-provider.yaml").write_text("pages:\n  - id: a\n    url: https://x.test/\n")
    (targets_dir / "escape.yaml").write_text('provider: "X\\q"\npages: []\n')
    message = problems(targets_dir)
    assert "broken.yaml: invalid YAML (line" in message
    assert "escape.yaml: invalid YAML (line 1, column 14): found unknown escape character 'q'" in (
        message
    )
    assert "list.yaml: expected a mapping" in message
    assert "empty-pages.yaml: field pages" in message
    assert "no-provider.yaml: field provider: required field is missing" in message


def test_duplicate_ids_across_files(targets_dir: Path) -> None:
    write_targets(targets_dir, "One", [{"id": "same", "url": "https://a.test/"}])
    write_targets(targets_dir, "Two", [{"id": "same", "url": "https://b.test/"}])
    assert "page 'same': field id: already declared in" in problems(targets_dir)


def test_missing_directory_and_no_files(tmp_path: Path) -> None:
    assert "targets directory not found" in problems(tmp_path / "nowhere")
    assert "no target files" in problems(tmp_path)


def test_select_pages_keeps_order_and_refuses_unknown(targets_dir: Path) -> None:
    write_targets(targets_dir, "P", [{"id": i, "url": "https://x.test/"} for i in ("a", "b", "c")])
    pages = load_targets(targets_dir)
    assert [p.id for p in select_pages(pages, ["c", "a"])] == ["c", "a"]
    with pytest.raises(TargetError, match="unknown page id: z"):
        select_pages(pages, ["z"])


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400)]
)
def test_intervals(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds


def test_cli_validate_and_list(targets_dir: Path) -> None:
    write_targets(targets_dir, "Anthropic", [FULL])
    runner = CliRunner()
    ok = runner.invoke(main, ["targets", "validate", "--targets", str(targets_dir)])
    assert ok.exit_code == 0 and "ok: 1 page(s) in 1 file(s)" in ok.stdout
    listed = runner.invoke(main, ["targets", "list", "--json", "--targets", str(targets_dir)])
    assert '"id": "anthropic-training-opt-out"' in listed.stdout
    write_targets(targets_dir, "Bad", [{"id": "x"}])
    bad = runner.invoke(main, ["targets", "validate", "--targets", str(targets_dir)])
    assert bad.exit_code == 2 and "field url: required field is missing" in bad.stderr


def test_bundled_targets_are_valid() -> None:
    pages = load_targets(Path(__file__).parent.parent / "targets")
    assert {"anthropic-training-opt-out", "openai-data-controls-faq"} <= {p.id for p in pages}
