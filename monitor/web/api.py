"""The JSON API: the same reads as the HTML pages, and marking a change reviewed.

Its OpenAPI description is served at /api/openapi.json (see monitor/web/openapi.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monitor.store.models import ChangeRow, PageRow, iso
from monitor.web import queries
from monitor.web.auth import WriteRefused, bearer
from monitor.web.diffview import missing_phrases
from monitor.web.openapi import OPENAPI
from monitor.web.params import parse_filter

if TYPE_CHECKING:
    from monitor.web.app import Site


def _site(request: Request) -> Site:
    return request.app.state.site


def change_json(change: ChangeRow, site: Site, request: Request) -> dict[str, Any]:
    """A change as listed, with its address on this site."""
    return {**change.to_json(), "url": site.public_url(request, f"/changes/{change.id}")}


def page_json(summary: queries.PageSummary, site: Site, request: Request) -> dict[str, Any]:
    row: PageRow = summary.row
    declared = site.declarations.get(row.id)
    last = summary.last_change
    return {
        "id": row.id,
        "provider": row.provider,
        "title": (declared.decl.title if declared else None) or row.title,
        "url": row.url,
        "declared": declared is not None,
        "guide": declared.decl.guide if declared else None,
        "status": summary.status,
        "last_checked_at": iso(row.last_checked_at),
        "failing_since": iso(row.failing_since),
        "consecutive_failures": row.consecutive_failures,
        "last_error": row.last_error,
        "unreviewed": summary.unreviewed,
        "unreviewed_relevant_or_critical": summary.unreviewed_notified,
        "last_change": (
            {"id": last.id, "severity": last.severity, "detected_at": iso(last.detected_at)}
            if last
            else None
        ),
        "url_html": site.public_url(request, f"/pages/{row.id}"),
    }


def api_pages(request: Request) -> Response:
    site = _site(request)
    return JSONResponse(
        [
            page_json(summary, site, request)
            for summary in queries.overview(site.store, site.declarations.pages())
        ]
    )


def api_changes(request: Request) -> Response:
    site = _site(request)
    wanted = parse_filter(request.query_params)
    result = queries.feed(site.store, wanted)
    return JSONResponse(
        {
            "total": result.total,
            "page": wanted.page,
            "per_page": wanted.per_page,
            "pages": result.pages,
            "items": [change_json(item.change, site, request) for item in result.items],
        }
    )


def api_change(request: Request) -> Response:
    site = _site(request)
    detail = queries.change_detail(site.store, request.path_params["change_id"])
    if detail is None:
        raise HTTPException(404, f"no change {request.path_params['change_id']}")
    declared = site.declarations.get(detail.page.id)
    after = detail.after.text if detail.after else None
    return JSONResponse(
        {
            **change_json(detail.change, site, request),
            "diff": detail.change.diff,
            "page": {
                "id": detail.page.id,
                "provider": detail.page.provider,
                "title": (declared.decl.title if declared else None) or detail.page.title,
                "url": detail.page.url,
                "guide": declared.decl.guide if declared else None,
            },
            "missing_expected": missing_phrases(declared.decl.expect if declared else (), after),
            "before_text": detail.before.text if detail.before else None,
            "after_text": after,
            "previous_change_id": detail.previous_id,
            "next_change_id": detail.next_id,
        }
    )


async def api_review(request: Request) -> Response:
    site = _site(request)
    change_id = request.path_params["change_id"]
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        raise HTTPException(400, f"the body is not JSON: {exc.msg}") from exc
    if not isinstance(body, dict):
        raise HTTPException(400, 'the body must be an object like {"reviewer": ..., "note": ...}')
    try:
        reviewer = site.access.reviewer(request, bearer(request), str(body.get("reviewer") or ""))
    except WriteRefused as refused:
        raise HTTPException(refused.status, str(refused)) from None
    note = str(body.get("note") or "").strip()[:4000]
    if not await asyncio.to_thread(queries.mark_reviewed, site.store, change_id, reviewer, note):
        raise HTTPException(404, f"no change {change_id}")
    change = await asyncio.to_thread(site.store.change, change_id)
    assert change is not None
    return JSONResponse(change_json(change, site, request))


def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


def routes() -> list[Route]:
    return [
        Route("/api/pages", api_pages),
        Route("/api/changes", api_changes),
        Route("/api/changes/{change_id:int}", api_change),
        Route("/api/changes/{change_id:int}/review", api_review, methods=["POST"]),
        Route("/api/openapi.json", openapi),
    ]
