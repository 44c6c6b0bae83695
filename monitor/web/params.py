"""The change-feed filter as it travels in query strings (HTML feed and JSON API alike)."""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException

from monitor.compare import SEVERITIES
from monitor.web import queries


def parse_filter(params: QueryParams) -> queries.FeedFilter:
    """The feed filter from a query string; a bad value is a 400 that names it."""
    severity = tuple(s for s in params.getlist("severity") if s)
    unknown = [s for s in severity if s not in SEVERITIES]
    if unknown:
        raise HTTPException(400, f"severity {unknown[0]!r} is not one of {', '.join(SEVERITIES)}")
    reviewed_text = params.get("reviewed", "")
    if reviewed_text not in ("", "yes", "no"):
        raise HTTPException(400, f"reviewed {reviewed_text!r} is not yes or no")
    page_text = params.get("page", "1")
    if not page_text.isdigit() or int(page_text) < 1:
        raise HTTPException(400, f"page {page_text!r} is not a page number (1, 2, ...)")
    per_page_text = params.get("per_page", str(queries.PER_PAGE))
    if not per_page_text.isdigit() or not 1 <= int(per_page_text) <= 500:
        raise HTTPException(400, f"per_page {per_page_text!r} is not between 1 and 500")
    return queries.FeedFilter(
        severity=severity,
        provider=params.get("provider") or None,
        page_id=params.get("page_id") or None,
        reviewed={"yes": True, "no": False}.get(reviewed_text),
        q=(params.get("q") or "").strip()[:200] or None,
        page=int(page_text),
        per_page=int(per_page_text),
    )


def filter_params(wanted: queries.FeedFilter) -> dict[str, object]:
    """The query-string form of a filter (for links that keep it)."""
    return {
        "severity": wanted.severity,
        "provider": wanted.provider,
        "page_id": wanted.page_id,
        "reviewed": {True: "yes", False: "no"}.get(wanted.reviewed),  # type: ignore[call-overload]
        "q": wanted.q,
    }
