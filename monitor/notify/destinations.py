"""Where alerts go: Apprise URLs (or an Apprise config file), with routing read from tags.

Routing uses Apprise's own tags. A destination's tags may hold:
- `min-minor`, `min-relevant`, `min-critical`: the least severity it wants (default
  `relevant`; `noise` is never sent);
- `digest`: also `minor` changes, gathered into one message a day (after midnight UTC);
- any other tag: a topic. A destination with topics only gets the changes of pages whose
  provider `tags` or page `notify` tags share one of them; one without topics gets all.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from monitor.compare import severity_rank

if TYPE_CHECKING:  # Apprise loads when a destination is made: most runs have none
    import apprise

DEFAULT_MIN_SEVERITY = "relevant"
DIGEST_HOUR = 0  # UTC: minor changes for `digest` destinations go out after midnight
_MIN_TAG = re.compile(r"^min-(minor|relevant|critical)$")


class DestinationError(ValueError):
    """A notification URL or config that Apprise cannot use; the message is redacted."""


def redact(url: str) -> str:
    """What may be shown of a destination: its scheme and host, nothing that authenticates.
    Give it Apprise's privacy URL: some services put a token where the host would be."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unreadable URL)"
    scheme = parts.scheme or "?"
    return f"{scheme}://{host}{port}" if host else f"{scheme}://…"


def secrets_of(url: str) -> list[str]:
    """Every piece of a URL that could be a secret (the whole URL, and each part of its
    authority, path and query), to scrub from error messages."""
    pieces = []
    for form in (url, unquote(url)):  # services may quote parts of their URLs
        rest = form.split("://", 1)[-1]
        pieces += [form, rest, *re.split(r"[:@/?&=#]", rest)]
    return sorted({p for p in pieces if len(p) >= 4}, key=len, reverse=True)


@dataclass(frozen=True)
class Destination:
    key: str  # stable hash of the URL: the delivery rows' reference
    label: str  # redacted, for people
    apprise: apprise.Apprise = field(compare=False, repr=False)
    min_severity: str = DEFAULT_MIN_SEVERITY
    topics: frozenset[str] = frozenset()
    digest: bool = False  # also `minor` changes, gathered in one message a day
    secrets: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def due(self, severity: str, page_tags: tuple[str, ...], now: datetime) -> datetime | None:
        """When this destination wants a change sent: now, at the next daily digest (a
        `minor` change to a destination tagged `digest`), or never (None)."""
        if severity == "noise" or (self.topics and not self.topics & set(page_tags)):
            return None
        if severity_rank(severity) >= severity_rank(self.min_severity):
            return now
        if self.digest and severity == "minor":
            return (now + timedelta(days=1)).replace(
                hour=DIGEST_HOUR, minute=0, second=0, microsecond=0
            )
        return None

    @property
    def body_format(self) -> str:
        """The format the service renders best: HTML for email, Markdown for Slack and the
        like, plain text otherwise."""
        server = next(iter(self.apprise))
        formats = server.notify_format
        preferred = formats[0] if isinstance(formats, tuple) else formats
        return str(getattr(preferred, "value", preferred))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _destination(server: apprise.plugins.NotifyBase, given: str = "") -> Destination:
    """`given`: the URL as the user wrote it, which may hold secrets Apprise does not echo."""
    import apprise

    url = server.url()
    tags = {str(tag) for tag in server.tags}
    levels = [match.group(1) for tag in tags if (match := _MIN_TAG.match(tag))]
    single = apprise.Apprise()
    single.add(server)
    return Destination(
        key=hashlib.sha256(url.encode()).hexdigest()[:32],
        label=redact(server.url(privacy=True)),  # Apprise masks the tokens it knows of
        apprise=single,
        min_severity=min(levels, key=severity_rank) if levels else DEFAULT_MIN_SEVERITY,
        topics=frozenset(tag for tag in tags if not _MIN_TAG.match(tag) and tag != "digest"),
        digest="digest" in tags,
        secrets=tuple(sorted({*secrets_of(url), *secrets_of(given)}, key=len, reverse=True)),
    )


def load_destinations(values: tuple[str, ...] | list[str]) -> list[Destination]:
    """Destinations from `--notify` values: Apprise URLs, or paths of Apprise config files
    (YAML or TEXT, with tags). An unusable value is an error naming it (redacted)."""
    import apprise

    servers: list[tuple[apprise.plugins.NotifyBase, str]] = []
    for value in values:
        for item in value.split():
            if "://" not in item and Path(item).is_file():
                config = apprise.AppriseConfig()
                if not config.add(str(Path(item).resolve())):
                    raise DestinationError(f"{item}: not an Apprise configuration file")
                loaded = config.services()
                if not loaded:
                    raise DestinationError(f"{item}: no usable notification URL in this file")
                servers.extend((server, "") for server in loaded)
                continue
            server = apprise.Apprise.instantiate(item)
            if not server:
                raise DestinationError(
                    f"--notify {redact(item)}: not a notification URL Apprise can use"
                )
            servers.append((server, item))
    unique: dict[str, Destination] = {}
    for server, given in servers:
        destination = _destination(server, given)
        unique.setdefault(destination.key, destination)
    return list(unique.values())
