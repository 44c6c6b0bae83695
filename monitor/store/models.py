"""Tables: every page, every distinct version of its text, every check, every change.

An unchanged check costs one small `checks` row; a page's text is stored once per distinct
content (a page that returns to an earlier variant points at the existing version again).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT keys on PostgreSQL, INTEGER (the rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class PageRow(Base):
    __tablename__ = "pages"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    provider: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    declaration_hash: Mapped[str] = mapped_column(String(64))
    current_version_id: Mapped[int | None] = mapped_column(Id)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    last_mode: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last fetch that showed the current text: a hash of its source (`extract.source`) and
    # its HTTP validators, so that an unchanged page is known without reading it again.
    raw_hash: Mapped[str | None] = mapped_column(String(64))
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    # Scheduling across instances: when the page is next due, and who is checking it now.
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("page_id", "content_hash"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    page_id: Mapped[str] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    fetch_mode: Mapped[str] = mapped_column(String(16))
    final_url: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    # What shaped the text (the page's rules and the extractor), and the page's source it
    # was extracted from (zlib-compressed, kept for the latest versions), so that the text can
    # be extracted again after a declaration edit instead of alerting on it.
    fingerprint: Mapped[str | None] = mapped_column(String(32))
    capture: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)


class ChangeRow(Base):
    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_page_detected", "page_id", "detected_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    page_id: Mapped[str] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # content | failure | recovery
    severity: Mapped[str] = mapped_column(String(16), index=True)
    from_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"))
    to_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"))
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    summary: Mapped[str] = mapped_column(Text)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    terms: Mapped[list[str]] = mapped_column(JSON)
    diff: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    review_note: Mapped[str | None] = mapped_column(Text)

    def to_json(self) -> dict[str, Any]:
        """What the change is, how bad, why, and whether someone has looked at it (the
        JSON shared by the command line and the web API)."""
        return {
            "id": self.id,
            "page_id": self.page_id,
            "kind": self.kind,
            "severity": self.severity,
            "detected_at": iso(self.detected_at),
            "summary": self.summary,
            "reasons": self.reasons,
            "terms": self.terms,
            "from_version_id": self.from_version_id,
            "to_version_id": self.to_version_id,
            "reviewed": self.reviewed_at is not None,
            "reviewed_at": iso(self.reviewed_at),
            "reviewed_by": self.reviewed_by,
            "review_note": self.review_note,
        }


class CheckRow(Base):
    __tablename__ = "checks"
    __table_args__ = (Index("ix_checks_page_started", "page_id", "started_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    page_id: Mapped[str] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))  # first | unchanged | changed | error
    fetch_mode: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[int | None] = mapped_column(Integer)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"))
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id"))
    error: Mapped[str | None] = mapped_column(Text)


class DeliveryRow(Base):
    """One alert to one destination: the outbox. Written with its change, sent after commit."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("change_id", "destination"),
        Index("ix_deliveries_state_next", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"))
    destination: Mapped[str] = mapped_column(String(64))  # a hash of the URL, never the URL
    label: Mapped[str] = mapped_column(String(300))  # scheme and host, for people
    state: Mapped[str] = mapped_column(String(16))  # pending | sending | sent | failed | uncertain
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sending_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
