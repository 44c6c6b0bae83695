"""Render changes for the terminal: reasons first, then the diff with word-level marks."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from monitor.compare import Hunk, pair_blocks, word_diff
from monitor.store import ChangeRow
from monitor.vocabulary import term_matches

SEVERITY_STYLE = {"noise": "dim", "minor": "cyan", "relevant": "yellow", "critical": "bold red"}


def severity_text(severity: str | None) -> Text:
    return Text(severity or "-", style=SEVERITY_STYLE.get(severity or "", ""))


def highlight_terms(line: Text, watch: tuple[str, ...] = ()) -> Text:
    """Opt-out vocabulary in reverse video, so a reader sees why a sentence matters."""
    for _term, start, end in term_matches(line.plain, watch):
        line.stylize("reverse", start, end)
    return line


def diff_lines(hunks: list[Hunk], watch: tuple[str, ...] = ()) -> list[Text]:
    """`- old` / `+ new` lines, removed and added sentences paired; words that changed inside
    a pair are underlined and bold, opt-out terms are in reverse video."""
    lines: list[Text] = []
    for hunk in hunks:
        lines.append(Text(f"@@ block {hunk.old_start + 1} → {hunk.new_start + 1} @@", style="dim"))
        for old, new in pair_blocks(hunk.removed, hunk.added):
            if old is not None and new is not None:
                pieces = word_diff(old, new)
                minus, plus = Text("- ", style="red"), Text("+ ", style="green")
                for op, piece in pieces:
                    if op in ("equal", "delete"):
                        minus.append(piece, style="red" if op == "equal" else "bold red underline")
                    if op in ("equal", "insert"):
                        plus.append(
                            piece, style="green" if op == "equal" else "bold green underline"
                        )
                lines += [minus, plus]
            elif old is not None:
                lines.append(Text(f"- {old}", style="red"))
            elif new is not None:
                lines.append(Text(f"+ {new}", style="green"))
    return [highlight_terms(line, watch) for line in lines]


def render_change(change: ChangeRow, page_label: str, url: str) -> RenderableType:
    head = Text()
    head.append(f"Change {change.id}", style="bold")
    head.append(" · ")
    head.append_text(severity_text(change.severity))
    detected = f"{change.detected_at:%Y-%m-%d %H:%M:%S} UTC"
    head.append(f" · {page_label}\n{url}\ndetected {detected} ({change.kind})\n")
    reasons = Text("Reasons:\n", style="bold")
    for reason in change.reasons:
        reasons.append(f"  • {reason}\n", style="")
    if change.terms:
        reasons.append(f"Opt-out terms: {', '.join(change.terms)}\n")
    hunks = [Hunk.from_json(item) for item in change.diff]
    body = diff_lines(hunks) if hunks else [Text("(no text difference recorded)", style="dim")]
    return Group(head, reasons, *body)
