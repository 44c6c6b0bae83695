"""Target declarations: the `targets/*.yaml` files, their schema and their loading.

A target file declares one provider and the pages to watch. Every file is validated before
anything runs; one bad file stops the whole run (nothing is checked) with messages that name
the file, the page and the field, so a typo never turns into a silent gap in the history.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

PAGE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
DEFAULT_INTERVAL = "6h"
_INTERVAL_RE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def parse_interval(value: str) -> int:
    """Seconds in an interval written like `90s`, `30m`, `6h` or `1d`."""
    match = _INTERVAL_RE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not an interval like 90s, 30m, 6h or 1d")
    seconds = int(match.group(1)) * _INTERVAL_UNITS[match.group(2)]
    if seconds < 1:
        raise ValueError(f"{value!r} is shorter than one second")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FillStep(_Strict):
    selector: NonEmpty
    env: NonEmpty


class SelectOptionStep(_Strict):
    selector: NonEmpty
    value: NonEmpty | None = None
    label: NonEmpty | None = None


class Step(_Strict):
    """One browser action before extraction; exactly one of the fields is set."""

    click: NonEmpty | None = None
    fill: FillStep | None = None
    press: NonEmpty | None = None
    wait_for: NonEmpty | None = None
    select_option: SelectOptionStep | None = None
    timeout: float | None = Field(default=None, gt=0, le=120)

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        actions = [
            n for n in ("click", "fill", "press", "wait_for", "select_option") if getattr(self, n)
        ]
        if len(actions) != 1:
            raise ValueError(
                "a step needs exactly one of click, fill, press, wait_for, select_option"
            )
        return self


class PageDecl(_Strict):
    """One watched page, as declared in a target file."""

    id: Annotated[str, StringConstraints(pattern=PAGE_ID_PATTERN, max_length=120)]
    url: NonEmpty
    title: NonEmpty | None = None
    fetch: Literal["auto", "http", "browser"] = "auto"
    select: NonEmpty | None = None
    remove: tuple[NonEmpty, ...] = ()
    ignore: tuple[NonEmpty, ...] = ()
    wait_for: NonEmpty | None = None
    watch: tuple[NonEmpty, ...] = ()
    expect: tuple[NonEmpty, ...] = ()
    interval: NonEmpty = DEFAULT_INTERVAL
    guide: NonEmpty | None = None
    notify: tuple[NonEmpty, ...] = ()
    auth: NonEmpty | None = None
    logged_in: NonEmpty | None = None
    steps: tuple[Step, ...] = ()

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.split("/")[0]:
            raise ValueError(f"{value!r} is not an http or https URL")
        return value

    @field_validator("ignore")
    @classmethod
    def _regexes(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc
        return patterns

    @field_validator("select", "wait_for", "logged_in")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is not None:
            _check_selector(value)
        return value

    @field_validator("remove")
    @classmethod
    def _selectors(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            _check_selector(value)
        return values

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        parse_interval(value)
        return value

    @model_validator(mode="after")
    def _browser_only(self) -> PageDecl:
        if self.fetch == "http":
            for name in ("wait_for", "steps", "auth"):
                if getattr(self, name):
                    raise ValueError(f"{name!r} needs a browser: use fetch: browser or auto")
        return self


class TargetFile(_Strict):
    provider: NonEmpty
    tags: tuple[NonEmpty, ...] = ()
    pages: Annotated[tuple[PageDecl, ...], Field(min_length=1)]


def _check_selector(selector: str) -> None:
    """Refuse a CSS selector that extraction's engine (cssselect) cannot read."""
    from monitor.extract import css

    css(selector)


@dataclass(frozen=True)
class Page:
    """A declared page together with what it inherits from its file."""

    decl: PageDecl
    provider: str
    tags: tuple[str, ...]
    source: Path

    @property
    def id(self) -> str:
        return self.decl.id

    @property
    def url(self) -> str:
        return self.decl.url

    @property
    def label(self) -> str:
        return self.decl.title or self.decl.id

    @property
    def interval_seconds(self) -> int:
        return parse_interval(self.decl.interval)

    @property
    def all_tags(self) -> tuple[str, ...]:
        """Apprise tags that pick this page's destinations: the provider's and the page's."""
        return tuple(dict.fromkeys((*self.tags, *self.decl.notify)))

    @property
    def declaration_hash(self) -> str:
        payload = json.dumps(
            {"provider": self.provider, "tags": self.tags, **self.decl.model_dump(mode="json")},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class TargetError(Exception):
    """One or more target files are invalid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def _field_path(source: Path, data: Any, loc: tuple[Any, ...]) -> str:
    """Describe where an error sits: file, page (by id, or index when it has none), field."""
    if len(loc) >= 2 and loc[0] == "pages" and isinstance(loc[1], int):
        index = loc[1]
        page_id = None
        if isinstance(data, dict) and isinstance(data.get("pages"), list):
            pages = data["pages"]
            if index < len(pages) and isinstance(pages[index], dict):
                page_id = pages[index].get("id")
        where = f"page {page_id!r}" if isinstance(page_id, str) else f"page #{index + 1}"
        rest = ".".join(str(part) for part in loc[2:] if not str(part).startswith("function-"))
        return f"{source}: {where}: field {rest or '(page)'}"
    field = ".".join(str(part) for part in loc) or "(file)"
    return f"{source}: field {field}"


def _clean_message(message: str) -> str:
    return message.removeprefix("Value error, ")


# libyaml's loader where PyYAML was built with it: a tenth of the pure-Python one's time.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str) -> Any:
    """Parse with the fast loader; on an error, parse again with the pure-Python one, whose
    messages say more (the character of a bad escape, the token it expected)."""
    try:
        return yaml.load(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        return yaml.safe_load(text)


def load_file(path: Path) -> list[Page]:
    """Load and validate one target file; raise TargetError naming file, page and field."""
    try:
        data = _load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise TargetError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TargetError([f"{path}: invalid YAML{where}: {problem}"]) from exc
    if not isinstance(data, dict):
        raise TargetError([f"{path}: expected a mapping with 'provider' and 'pages' at the top"])
    try:
        target = TargetFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = _clean_message(error["msg"])
            if error["type"] == "extra_forbidden":
                message = "unknown field"
            elif error["type"] == "missing":
                message = "required field is missing"
            problems.append(f"{_field_path(path, data, error['loc'])}: {message}")
        raise TargetError(problems) from exc
    return [
        Page(decl=p, provider=target.provider, tags=target.tags, source=path) for p in target.pages
    ]


def load_targets(directory: Path) -> list[Page]:
    """Load every `*.yaml`/`*.yml` file of a directory; all problems are reported together."""
    if not directory.is_dir():
        raise TargetError([f"{directory}: targets directory not found"])
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise TargetError([f"{directory}: no target files (*.yaml) found"])
    pages: list[Page] = []
    problems: list[str] = []
    for path in files:
        try:
            pages.extend(load_file(path))
        except TargetError as exc:
            problems.extend(exc.problems)
    seen: dict[str, Path] = {}
    for page in pages:
        if page.id in seen:
            problems.append(
                f"{page.source}: page {page.id!r}: field id: already declared in {seen[page.id]}"
            )
        seen.setdefault(page.id, page.source)
    if problems:
        raise TargetError(problems)
    return pages


def select_pages(pages: list[Page], ids: list[str] | tuple[str, ...]) -> list[Page]:
    """The pages named by id (all when none are named); unknown ids are an error."""
    if not ids:
        return pages
    by_id = {page.id: page for page in pages}
    unknown = [page_id for page_id in ids if page_id not in by_id]
    if unknown:
        raise TargetError([f"unknown page id: {page_id}" for page_id in unknown])
    return [by_id[page_id] for page_id in dict.fromkeys(ids)]
