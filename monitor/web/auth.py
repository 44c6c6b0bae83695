"""Who may write (mark a change reviewed), and protection against cross-site requests.

Reading needs nothing. Writing needs the token (MONITOR_WEB_TOKEN) sent in a form field or a
header, never only a cookie, so another site cannot forge it; or, when configured, the user
name a trusted reverse proxy puts in a header. Requests a browser marks as cross-site, or
whose Origin is not this site, are refused before either is looked at.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request


class WriteRefused(Exception):
    """The request may not write; the message says why, without echoing any secret."""

    def __init__(self, message: str, status: int = 403, *, cross_site: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.cross_site = cross_site


@dataclass(frozen=True)
class WriteAccess:
    token: str | None = None
    user_header: str | None = None
    base_url: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.user_header)

    def _origins(self, request: Request) -> set[str]:
        own = f"{request.url.scheme}://{request.url.netloc}"
        allowed = {own}
        if self.base_url:
            parts = urlsplit(self.base_url)
            allowed.add(f"{parts.scheme}://{parts.netloc}")
        return allowed

    def check_origin(self, request: Request) -> None:
        if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            raise WriteRefused("cross-site request refused", cross_site=True)
        origin = request.headers.get("origin")
        if origin and origin != "null" and origin not in self._origins(request):
            raise WriteRefused(f"request from origin {origin} refused", cross_site=True)
        if origin == "null":
            raise WriteRefused("request from an opaque origin refused", cross_site=True)

    def reviewer(self, request: Request, sent_token: str | None, name: str | None) -> str:
        """The name to record for this write, or WriteRefused."""
        self.check_origin(request)
        if self.user_header:
            user = request.headers.get(self.user_header, "").strip()
            if user:
                return user[:200]
        if not self.token:
            if self.user_header:
                raise WriteRefused(f"no {self.user_header} header from the proxy", 401)
            raise WriteRefused(
                "writing is switched off: start monitor serve with MONITOR_WEB_TOKEN set"
            )
        if not sent_token or not hmac.compare_digest(sent_token.encode(), self.token.encode()):
            raise WriteRefused("wrong or missing token", 401)
        name = (name or "").strip()
        if not name:
            raise WriteRefused("say who you are (reviewer name)", 400)
        return name[:200]


def bearer(request: Request) -> str | None:
    """A token from `Authorization: Bearer ...` or `X-Monitor-Token`."""
    value = request.headers.get("authorization", "")
    if value.lower().startswith("bearer "):
        return value[7:].strip()
    return request.headers.get("x-monitor-token")
