"""The statements every check runs, run on the database driver's own cursor.

SQLAlchemy builds each statement and compiles it into the store's SQL dialect, once for each
set of values it is given; the types' own processors convert the values both ways (a
datetime to and from SQLite's text form), so the rows are those SQLAlchemy itself writes and
reads. Only its execution layer is left out: per statement it took several times the
database's own work, and a check runs four to seven of them. On SQLite, writing a first check
took 0.22 ms instead of 0.29, an unchanged one 0.09 instead of 0.14, and reading a page's
state 0.027 instead of 0.049 (medians of three runs of 1,000 each, taken in turn).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import Executable

Processor = Callable[[Any], Any]


class _Form:
    """A statement's SQL for one set of value names, and how to pass and read values."""

    def __init__(self, statement: Any, dialect: Dialect, names: frozenset[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(names))
        # Values written into the statement itself (`.values(capture=None)`).
        self.fixed = {
            name: bind.effective_value for name, bind in compiled.binds.items() if name not in names
        }
        missing = [name for name in self.fixed if compiled.binds[name].required]
        if missing or "POSTCOMPILE" in compiled.string:
            raise ValueError(f"{statement} needs values for {missing} at execution")
        self.sql = compiled.string
        self.names = compiled.positiontup or list(compiled.binds)  # positional: in order
        self.positional = compiled.positiontup is not None
        self.to_database = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))
        }
        self.from_database: list[Processor | None] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.exported_columns
        ]

    def parameters(self, values: Mapping[str, Any]) -> Any:
        def converted(name: str) -> Any:
            value = values[name] if name in values else self.fixed[name]
            processor = self.to_database.get(name)
            return value if processor is None else processor(value)

        if self.positional:
            return tuple(converted(name) for name in self.names)
        return {name: converted(name) for name in self.names}

    def row(self, raw: Iterable[Any] | None) -> tuple[Any, ...] | None:
        if raw is None:
            return None
        return tuple(
            value if processor is None else processor(value)
            for value, processor in zip(raw, self.from_database, strict=True)
        )


class Prepared:
    """One of a check's statements, compiled for each dialect it runs on."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._forms: WeakKeyDictionary[Dialect, dict[frozenset[str], _Form]] = WeakKeyDictionary()

    def _form(self, connection: Connection, values: Mapping[str, Any]) -> _Form:
        forms = self._forms.setdefault(connection.dialect, {})
        names = frozenset(values)
        form = forms.get(names)
        if form is None:
            form = forms[names] = _Form(self.statement, connection.dialect, names)
        return form

    def _execute(self, connection: Connection, values: Mapping[str, Any]) -> tuple[_Form, Any]:
        form = self._form(connection, values)
        cursor = connection.connection.cursor()
        cursor.execute(form.sql, form.parameters(values))
        return form, cursor

    def run(self, connection: Connection, values: Mapping[str, Any]) -> None:
        """Run it in `connection`'s transaction."""
        self._execute(connection, values)

    def first(self, connection: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run it and return its first row (of a SELECT or a RETURNING), None without one."""
        form, cursor = self._execute(connection, values)
        return form.row(cursor.fetchone())
