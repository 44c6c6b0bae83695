"""/feed.atom: the latest `relevant` and `critical` changes, for feed readers.

Built with ElementTree, which escapes every text and attribute it writes.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from starlette.requests import Request
from starlette.responses import Response

from monitor.store.models import iso
from monitor.web import queries

ATOM = "http://www.w3.org/2005/Atom"
ENTRIES = 50


def feed(request: Request) -> Response:
    site = request.app.state.site
    latest = queries.feed(
        site.store, queries.FeedFilter(severity=queries.NOTIFIED, per_page=ENTRIES)
    )
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")

    def child(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    home = site.public_url(request, "/")
    child(root, "id", home)
    child(root, "title", "Opt-out monitor: relevant and critical changes")
    child(root, "link", href=site.public_url(request, "/feed.atom"), rel="self")
    child(root, "link", href=home, rel="alternate", type="text/html")
    newest = latest.items[0].change.detected_at if latest.items else None
    child(root, "updated", iso(newest) or "1970-01-01T00:00:00+00:00")
    child(child(root, "author"), "name", "opt-out monitor")
    for item in latest.items:
        change = item.change
        link = site.public_url(request, f"/changes/{change.id}")
        entry = child(root, "entry")
        child(entry, "id", link)
        child(
            entry, "title", f"[{change.severity}] {item.title or change.page_id}: {change.summary}"
        )
        child(entry, "link", href=link, rel="alternate", type="text/html")
        child(entry, "updated", iso(change.detected_at))
        child(entry, "category", term=change.severity)
        child(entry, "category", term=item.provider, label="provider")
        lines = [f"{item.provider} · {change.page_id}", *change.reasons]
        if change.terms:
            lines.append("Opt-out terms: " + ", ".join(change.terms))
        child(entry, "summary", "\n".join(lines))
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/atom+xml; charset=utf-8")
