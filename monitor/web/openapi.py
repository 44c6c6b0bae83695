"""The OpenAPI 3.1 description of the JSON API (served at /api/openapi.json).

Written out by hand: the API is small, and the tests validate real responses against these
schemas, so the description cannot drift from what the server sends.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_NINT = {"type": ["integer", "null"]}
_SEVERITY = {"type": "string", "enum": ["noise", "minor", "relevant", "critical"]}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": sorted(properties)}


CHANGE = _object(
    {
        "id": {"type": "integer"},
        "page_id": _STR,
        "kind": {"type": "string", "description": "content | failure | recovery | technical"},
        "severity": _SEVERITY,
        "detected_at": {**_TIME, "type": "string"},
        "summary": _STR,
        "reasons": {"type": "array", "items": _STR},
        "terms": {"type": "array", "items": _STR, "description": "opt-out terms involved"},
        "from_version_id": _NINT,
        "to_version_id": _NINT,
        "reviewed": {"type": "boolean"},
        "reviewed_at": _TIME,
        "reviewed_by": _NSTR,
        "review_note": _NSTR,
        "url": {"type": "string", "description": "the change's review page"},
    }
)

HUNK = _object(
    {
        "old_start": {"type": "integer"},
        "new_start": {"type": "integer"},
        "removed": {"type": "array", "items": _STR},
        "added": {"type": "array", "items": _STR},
    }
)

CHANGE_DETAIL = {
    "allOf": [
        {"$ref": "#/components/schemas/Change"},
        _object(
            {
                "diff": {"type": "array", "items": {"$ref": "#/components/schemas/Hunk"}},
                "page": _object(
                    {
                        "id": _STR,
                        "provider": _STR,
                        "title": _NSTR,
                        "url": _STR,
                        "guide": _NSTR,
                    }
                ),
                "missing_expected": {
                    "type": "array",
                    "items": _STR,
                    "description": "`expect` phrases the new text no longer holds",
                },
                "before_text": _NSTR,
                "after_text": _NSTR,
                "previous_change_id": _NINT,
                "next_change_id": _NINT,
            }
        ),
    ]
}

PAGE = _object(
    {
        "id": _STR,
        "provider": _STR,
        "title": _NSTR,
        "url": _STR,
        "declared": {"type": "boolean", "description": "still in the target files"},
        "guide": _NSTR,
        "status": {"type": "string", "enum": ["ok", "failing", "never"]},
        "last_checked_at": _TIME,
        "failing_since": _TIME,
        "consecutive_failures": {"type": "integer"},
        "last_error": _NSTR,
        "unreviewed": {"type": "integer"},
        "unreviewed_relevant_or_critical": {"type": "integer"},
        "last_change": {
            "oneOf": [
                {"type": "null"},
                _object({"id": {"type": "integer"}, "severity": _SEVERITY, "detected_at": _STR}),
            ]
        },
        "url_html": _STR,
    }
)

CHANGE_LIST = _object(
    {
        "total": {"type": "integer"},
        "page": {"type": "integer"},
        "per_page": {"type": "integer"},
        "pages": {"type": "integer"},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Change"}},
    }
)

ERROR = _object({"error": _STR})


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_FILTERS = [
    {
        "name": "severity",
        "in": "query",
        "description": "repeat for several",
        "schema": {"type": "array", "items": _SEVERITY},
        "explode": True,
    },
    {"name": "provider", "in": "query", "schema": _STR},
    {"name": "page_id", "in": "query", "schema": _STR},
    {"name": "reviewed", "in": "query", "schema": {"type": "string", "enum": ["yes", "no"]}},
    {"name": "q", "in": "query", "description": "text search", "schema": _STR},
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
    },
]
_CHANGE_ID = {"name": "change_id", "in": "path", "required": True, "schema": {"type": "integer"}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Opt-out monitor review API",
        "version": "1",
        "description": "Pages watched, changes detected, and their review. Reading needs "
        "nothing; marking reviewed needs the MONITOR_WEB_TOKEN as a Bearer token (or the "
        "trusted proxy's user header when `monitor serve` is so configured).",
    },
    "paths": {
        "/api/pages": {
            "get": {
                "summary": "Every page in the store with its status and unreviewed changes",
                "responses": {"200": _json({"type": "array", "items": _ref("Page")}, "the pages")},
            }
        },
        "/api/changes": {
            "get": {
                "summary": "Changes, newest first, filtered and paginated",
                "parameters": _FILTERS,
                "responses": {
                    "200": _json(_ref("ChangeList"), "one page of changes"),
                    "400": _json(_ref("Error"), "a filter value is wrong"),
                },
            }
        },
        "/api/changes/{change_id}": {
            "get": {
                "summary": "One change with its diff, both texts and its neighbours",
                "parameters": [_CHANGE_ID],
                "responses": {
                    "200": _json(_ref("ChangeDetail"), "the change"),
                    "404": _json(_ref("Error"), "no such change"),
                },
            }
        },
        "/api/changes/{change_id}/review": {
            "post": {
                "summary": "Mark a change reviewed (who, when, a note)",
                "parameters": [_CHANGE_ID],
                "security": [{"token": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"reviewer": _STR, "note": _STR},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("Change"), "the change, now reviewed"),
                    "400": _json(_ref("Error"), "no reviewer name, or not JSON"),
                    "401": _json(_ref("Error"), "wrong or missing token"),
                    "403": _json(_ref("Error"), "writing is off, or a cross-site request"),
                    "404": _json(_ref("Error"), "no such change"),
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Page": PAGE,
            "Change": CHANGE,
            "Hunk": HUNK,
            "ChangeDetail": CHANGE_DETAIL,
            "ChangeList": CHANGE_LIST,
            "Error": ERROR,
        },
        "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
    },
}
