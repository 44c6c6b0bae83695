"""The alert: reasons first, then the removed and added sentences with word changes marked
and opt-out terms emphasised; in Markdown, HTML (email) or plain text."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from monitor.compare import Hunk, pair_blocks, severity_rank, word_diff
from monitor.vocabulary import emphasise

MAX_BLOCKS = 6  # removed/added pairs shown per change before "and N more"
MAX_BLOCK_CHARS = 600
GROUP_OVER = 3  # more changes than this to one destination in one run: one listing message


@dataclass(frozen=True)
class Alert:
    """A recorded change, with what a maintainer needs to judge it."""

    change_id: int
    severity: str
    kind: str
    provider: str
    page_id: str
    page_title: str
    url: str
    guide: str | None
    reasons: tuple[str, ...]
    hunks: tuple[Hunk, ...]
    watch: tuple[str, ...]
    detected_at: datetime

    def link(self, base_url: str | None) -> str | None:
        return f"{base_url.rstrip('/')}/changes/{self.change_id}" if base_url else None


@dataclass(frozen=True)
class _Style:
    """How one format writes the pieces of a message."""

    escape: Callable[[str], str]
    term: Callable[[str], str]
    deleted: Callable[[str], str]
    inserted: Callable[[str], str]
    line: Callable[[str, str], str]  # (sign, marked text) -> one removed/added line
    heading: Callable[[str], str]
    item: Callable[[str], str]
    link: Callable[[str, str], str]  # (label, url)
    join: str


def _plain(text: str) -> str:
    return text


def _html_line(sign: str, body: str) -> str:
    colour = "#ffebe9" if sign == "-" else "#e6ffec"
    return (
        f'<div style="background:{colour};padding:4px 8px;margin:2px 0;font-family:monospace;'
        f'white-space:pre-wrap">{html.escape(sign)} {body}</div>'
    )


STYLES = {
    "text": _Style(
        _plain,
        lambda t: f"*{t}*",
        lambda t: f"[-{t}-]",
        lambda t: f"{{+{t}+}}",
        lambda sign, body: f"{sign} {body}",
        lambda t: t,
        lambda t: f"• {t}",
        lambda label, url: f"{label}: {url}",
        "\n",
    ),
    "markdown": _Style(
        _plain,
        lambda t: f"_{t}_",
        lambda t: f"~~{t}~~",
        lambda t: f"**{t}**",
        lambda sign, body: f"`{sign}` {body}",
        lambda t: f"*{t}*",
        lambda t: f"• {t}",
        lambda label, url: f"{label}: <{url}>",
        "\n",
    ),
    "html": _Style(
        html.escape,
        lambda t: f"<strong>{html.escape(t)}</strong>",
        lambda t: f'<del style="background:#ffc0c0;color:#82071e">{t}</del>',
        lambda t: f'<ins style="background:#abf2bc;color:#055d20;text-decoration:none">{t}</ins>',
        _html_line,
        lambda t: f'<h3 style="margin:12px 0 4px">{html.escape(t)}</h3>',
        lambda t: f"<li>{t}</li>",
        lambda label, url: (
            f'<p>{html.escape(label)}: <a href="{html.escape(url)}">{html.escape(url)}</a></p>'
        ),
        "\n",
    ),
}


def title(alerts: list[Alert]) -> str:
    worst = max((a.severity for a in alerts), key=severity_rank)
    if len(alerts) == 1:
        alert = alerts[0]
        return f"[{alert.severity}] {alert.provider} · {alert.page_title}"
    pages = len({a.page_id for a in alerts})
    return f"[{worst}] {len(alerts)} changes on {pages} page(s)"


def render(alerts: list[Alert], fmt: str, base_url: str | None) -> str:
    """The body for one destination: one change in full, or a listing when there are many."""
    style = STYLES.get(fmt, STYLES["text"])
    if len(alerts) > GROUP_OVER:
        parts = [
            _summary(alert, style, base_url)
            for alert in sorted(
                alerts, key=lambda a: (-severity_rank(a.severity), a.provider, a.change_id)
            )
        ]
    else:
        parts = [_full(alert, style, base_url, heading=len(alerts) > 1) for alert in alerts]
    body = (style.join * 2).join(parts)
    return f"<html><body>{body}</body></html>" if fmt == "html" else body


def _marked(text: str, alert: Alert, style: _Style) -> str:
    clipped = text if len(text) <= MAX_BLOCK_CHARS else text[:MAX_BLOCK_CHARS] + "…"
    return emphasise(clipped, alert.watch, style.term, style.escape)


def _diff_lines(alert: Alert, style: _Style) -> list[str]:
    pairs = [pair for hunk in alert.hunks for pair in pair_blocks(hunk.removed, hunk.added)]
    lines: list[str] = []
    for old, new in pairs[:MAX_BLOCKS]:
        if old is not None and new is not None:
            minus, plus = [], []
            for op, piece in word_diff(old, new):
                marked = _marked(piece, alert, style)
                if op in ("equal", "delete"):
                    minus.append(marked if op == "equal" else style.deleted(marked))
                if op in ("equal", "insert"):
                    plus.append(marked if op == "equal" else style.inserted(marked))
            lines += [style.line("-", "".join(minus)), style.line("+", "".join(plus))]
        elif old is not None:
            lines.append(style.line("-", _marked(old, alert, style)))
        elif new is not None:
            lines.append(style.line("+", _marked(new, alert, style)))
    if len(pairs) > MAX_BLOCKS:
        lines.append(style.escape(f"… and {len(pairs) - MAX_BLOCKS} more changed block(s)"))
    return lines


def _links(alert: Alert, style: _Style, base_url: str | None) -> list[str]:
    lines = []
    if alert.guide:
        lines.append(style.link("Guide that depends on it", alert.guide))
    lines.append(style.link("Page", alert.url))
    if link := alert.link(base_url):
        lines.append(style.link("Review", link))
    lines.append(style.escape(f"In a terminal: monitor diff {alert.change_id}"))
    return lines


def _reasons(alert: Alert, style: _Style) -> str:
    items = [style.item(style.escape(reason)) for reason in alert.reasons]
    return f"<ul>{''.join(items)}</ul>" if style is STYLES["html"] else style.join.join(items)


def _full(alert: Alert, style: _Style, base_url: str | None, *, heading: bool) -> str:
    parts = []
    if heading:
        parts.append(style.heading(f"[{alert.severity}] {alert.provider} · {alert.page_title}"))
    parts.append(_reasons(alert, style))
    if diff := _diff_lines(alert, style):
        parts.append(style.join.join(diff))
    parts.append(style.join.join(_links(alert, style, base_url)))
    return (style.join * 2).join(parts)


def _summary(alert: Alert, style: _Style, base_url: str | None) -> str:
    reasons = alert.reasons[:2]
    more = f" (+{len(alert.reasons) - 2} more)" if len(alert.reasons) > 2 else ""
    lines = [
        style.heading(f"[{alert.severity}] {alert.provider} · {alert.page_title}"),
        style.escape("; ".join(reasons) + more),
    ]
    if link := alert.link(base_url):
        lines.append(style.link("Review", link))
    else:
        lines.append(style.escape(f"monitor diff {alert.change_id}"))
    return style.join.join(lines)
