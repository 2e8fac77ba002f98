"""What every repository of the state store needs: IN (…) lists in chunks, insert-or-ignore."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, Table
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T", bound=Hashable)

# Values bound in one IN (…): well under SQLite's and PostgreSQL's limits on parameters.
IN_CHUNK = 500


def chunked(values: Iterable[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """``values`` without repeats, in their order, in lists of at most ``size``."""
    wanted = list(dict.fromkeys(values))
    for start in range(0, len(wanted), size):
        yield wanted[start : start + size]


def found_among(conn: Connection, query: Callable[[list[T]], Select[Any]], values: Iterable[T]) -> set[Any]:
    """Every value ``query(chunk)`` selects, for each chunk of ``values``."""
    found: set[Any] = set()
    for chunk in chunked(values):
        found.update(conn.execute(query(chunk)).scalars())
    return found


def insert_ignoring(
    conn: Connection, table: Table, index_elements: Sequence[str] | None = None
) -> postgresql.Insert | sqlite.Insert:
    """INSERT that leaves a row already there as it is (the first one written wins).

    One statement, so two writers racing for the same key need no select-then-insert and no
    IntegrityError to catch; with ``.returning(…)`` it returns only the rows it inserted.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement: postgresql.Insert | sqlite.Insert = dialect.insert(table)
    return statement.on_conflict_do_nothing(index_elements=index_elements)


def insert_many_ignoring(
    conn: Connection,
    table: Table,
    conflict: Sequence[str],
    shared: Mapping[str, object],
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
) -> None:
    """Insert ``rows`` (values of ``columns``, already as the database takes them: text,
    numbers, None) with ``shared`` for every row, leaving rows already there as they are.

    Straight through the driver's executemany: for a million rows SQLAlchemy's per-row
    parameter handling would cost more than the database does. ``shared`` values go through
    their columns' types once.
    """
    dialect = conn.dialect
    constants = []
    for name, value in shared.items():
        # The dialect's own type, or SQLite would get a datetime for the driver to adapt per row.
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        constants.append(process(value) if process else value)
    names = [*shared, *columns]
    quote = dialect.identifier_preparer.quote
    if dialect.paramstyle == "qmark":
        marks = ", ".join("?" for _ in names)
        params: list[Any] = [(*constants, *row) for row in rows]
    else:  # psycopg: pyformat
        marks = ", ".join(f"%(p{n})s" for n in range(len(names)))
        params = [{f"p{n}": value for n, value in enumerate((*constants, *row))} for row in rows]
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(map(quote, conflict))}) DO NOTHING"
    )
    conn.exec_driver_sql(sql, params)
