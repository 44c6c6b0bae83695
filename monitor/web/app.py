"""The review site: HTML pages, the JSON API, the Atom feed and /healthz on one Starlette app.

Handlers are plain functions (Starlette runs them in its thread pool) over the store's own
thread-safe sessions. Everything a page shows comes from the internet and is escaped by
Jinja2's autoescape; a Content-Security-Policy forbids scripts other than our own files.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from monitor.compare import SEVERITIES
from monitor.store import Store
from monitor.store.models import iso
from monitor.web import api, atom, queries
from monitor.web.auth import WriteAccess, WriteRefused
from monitor.web.declarations import Declarations
from monitor.web.diffview import diff_view, missing_phrases, text_view
from monitor.web.filters import query, safe_href, when
from monitor.web.params import filter_params, parse_filter

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class WebSettings:
    targets_dir: Path | None = None
    token: str | None = None
    user_header: str | None = None
    base_url: str | None = None


class Site:
    """What every handler needs: the store, the declarations, who may write, the templates."""

    def __init__(self, store: Store, settings: WebSettings) -> None:
        self.store = store
        self.declarations = Declarations(settings.targets_dir)
        self.access = WriteAccess(settings.token, settings.user_header, settings.base_url)
        self.base_url = settings.base_url.rstrip("/") if settings.base_url else None
        self.templates = Environment(
            loader=PackageLoader("monitor.web", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(when=when, iso=iso, href=safe_href)
        self.templates.globals.update(query=query, severities=SEVERITIES)

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        html = self.templates.get_template(name).render(
            request=request,
            unreviewed_total=queries.unreviewed_total(self.store),
            targets_problem=self.declarations.problem,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def public_url(self, request: Request, path: str) -> str:
        """An absolute link: MONITOR_BASE_URL when set, else the address this request used."""
        base = self.base_url or str(request.base_url).rstrip("/")
        return base + path


def site_of(request: Request) -> Site:
    return request.app.state.site


def overview_page(request: Request) -> Response:
    site = site_of(request)
    declared = site.declarations.pages()
    summaries = queries.overview(site.store, declared)
    by_provider: dict[str, list[tuple[queries.PageSummary, Any]]] = {}
    at_risk: dict[str, list[queries.PageSummary]] = {}
    for summary in summaries:
        decl = declared.get(summary.row.id)
        by_provider.setdefault(summary.row.provider, []).append((summary, decl))
        if summary.unreviewed_notified:
            guide = decl.decl.guide if decl and decl.decl.guide else ""
            at_risk.setdefault(guide, []).append(summary)
    return site.render(
        request,
        "overview.html",
        by_provider=by_provider,
        at_risk=sorted(at_risk.items(), key=lambda item: (item[0] == "", item[0])),
    )


def changes_page(request: Request) -> Response:
    site = site_of(request)
    wanted = parse_filter(request.query_params)
    result = queries.feed(site.store, wanted)
    return site.render(
        request,
        "changes.html",
        feed=result,
        wanted=wanted,
        params=filter_params(wanted),
        providers=queries.providers(site.store),
    )


def change_page(request: Request) -> Response:
    return render_change(request, done=request.query_params.get("reviewed") == "1")


def render_change(
    request: Request, *, done: bool = False, error: str | None = None, status: int = 200
) -> Response:
    """A change's page; after a refused review, with the reason (never taken from the URL)."""
    site = site_of(request)
    detail = queries.change_detail(site.store, request.path_params["change_id"])
    if detail is None:
        raise HTTPException(404, f"no change {request.path_params['change_id']}")
    declared = site.declarations.get(detail.page.id)
    watch = declared.decl.watch if declared else ()
    expect = declared.decl.expect if declared else ()
    after_text = detail.after.text if detail.after else None
    proxy_user = (
        request.headers.get(site.access.user_header, "").strip() if site.access.user_header else ""
    )
    return site.render(
        request,
        "change.html",
        detail=detail,
        change=detail.change,
        page=detail.page,
        declared=declared,
        hunks=diff_view(detail.change.diff, watch),
        before=text_view(detail.before.text, watch) if detail.before else None,
        after=text_view(after_text, watch) if after_text is not None else None,
        missing=missing_phrases(expect, after_text),
        expect=expect,
        access=site.access,
        proxy_user=proxy_user,
        error=error,
        done=done,
        status=status,
    )


async def review_form(request: Request) -> Response:
    site = site_of(request)
    change_id = request.path_params["change_id"]
    form = await request.form()
    note = str(form.get("note") or "").strip()[:4000]
    try:
        reviewer = site.access.reviewer(
            request, str(form.get("token") or ""), str(form.get("reviewer") or "")
        )
    except WriteRefused as refused:
        if refused.cross_site:
            return Response(str(refused), status_code=refused.status, media_type="text/plain")
        return await asyncio.to_thread(
            render_change, request, error=str(refused), status=refused.status
        )
    found = await asyncio.to_thread(queries.mark_reviewed, site.store, change_id, reviewer, note)
    if not found:
        raise HTTPException(404, f"no change {change_id}")
    return RedirectResponse(f"/changes/{change_id}?reviewed=1#review", status_code=303)


def page_page(request: Request) -> Response:
    site = site_of(request)
    history = queries.page_history(site.store, request.path_params["page_id"])
    if history is None:
        raise HTTPException(404, f"no page {request.path_params['page_id']!r} in the store")
    return site.render(
        request,
        "page.html",
        history=history,
        page=history.page,
        declared=site.declarations.get(history.page.id),
    )


def healthz(request: Request) -> Response:
    try:
        with site_of(request).store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse({"status": "error", "error": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok"})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/") or request.url.path == "/feed.atom":
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    site = site_of(request)
    return site.render(
        request,
        "error.html",
        status=exc.status_code,
        status_code=exc.status_code,
        message=exc.detail,
    )


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def create_app(store: Store, settings: WebSettings) -> Starlette:
    routes = [
        Route("/", overview_page, name="overview"),
        Route("/changes", changes_page, name="changes"),
        Route("/changes/{change_id:int}", change_page, name="change"),
        Route("/changes/{change_id:int}/review", review_form, methods=["POST"], name="review"),
        Route("/pages/{page_id}", page_page, name="page"),
        Route("/feed.atom", atom.feed, name="feed"),
        Route("/healthz", healthz, name="healthz"),
        *api.routes(),
        Mount("/static", StaticFiles(packages=[("monitor.web", "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: http_error},
    )
    app.state.site = Site(store, settings)
    return app
