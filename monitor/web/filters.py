"""Small helpers the templates call: dates, safe links, query strings."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode, urlsplit


def when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "never"


def safe_href(url: str | None) -> str | None:
    """Only http(s) URLs become links: a stored `javascript:` URL must never be clickable."""
    if not url:
        return None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def query(params: dict[str, object], **changes: object) -> str:
    """`?a=1&b=2` from the current filter with some values changed (None drops a key)."""
    merged = {**params, **changes}
    pairs: list[tuple[str, str]] = []
    for key, value in merged.items():
        if value is None or value == "" or value == ():
            continue
        if isinstance(value, list | tuple):
            pairs += [(key, str(item)) for item in value]
        else:
            pairs.append((key, str(value)))
    return "?" + urlencode(pairs) if pairs else "?"
