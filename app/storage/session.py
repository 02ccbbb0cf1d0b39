"""Statements prepared once per connection, and transactions that send their own BEGIN and COMMIT.

The exchange's connections are in autocommit mode (`exchange_engine`), so
psycopg2 sends no BEGIN of its own: a transaction's BEGIN travels in the
same message as its first statement, a lone read is one round trip with no
transaction around it, and every round trip is one `cursor.execute` that an
event listener can count.

psycopg2 sends every statement as text, which PostgreSQL would parse and plan
anew each time; for the exchange's statements that is most of their cost.
So each is prepared (`PREPARE name (types) AS ...`) the first time a
connection runs it, in the same message, and executed by name afterwards. A
prepared statement lives as long as its server session and survives rollback.

The text goes straight to the driver's cursor of SQLAlchemy's pooled
connection, and rows come back as named tuples: SQLAlchemy's execution and
result objects cost about 27 us a statement, a fifth of the Python of a
request, and these statements need none of their type processing (psycopg2
already returns `Decimal`, `int`, `str` and `datetime`). Failures are raised
as SQLAlchemy raises them, a lost connection invalidated and marked so.
"""

import collections
import contextlib
import functools
from collections.abc import Iterator

import psycopg2
from sqlalchemy import Connection, Engine, event, literal, literal_column
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import visitors
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import BindParameter

_DIALECT = PGDialect_psycopg2()
_NUMBERED = PGDialect_psycopg2(paramstyle="numeric_dollar")
_PREPARED = "prepared statements"  # key of the names prepared, in each connection's info


class Statement:
    """A SQLAlchemy Core statement compiled once, prepared per connection, executed by name.

    Constants of the statement are written into the SQL, so the text reads as
    PostgreSQL sees it (`side = 'sell' AND open_shares > 0`, matching the
    book's partial indexes, whatever plan is cached) and only the per-call
    values are parameters, each of a declared type.
    """

    def __init__(self, name: str, statement: Executable):
        inlined = visitors.replacement_traverse(statement, {}, _inline)
        numbered = inlined.compile(dialect=_NUMBERED)
        parameters = list(numbered.positiontup)
        types = ", ".join(_type_of(numbered.binds[parameter]) for parameter in parameters)
        values = ", ".join(f"%({parameter})s" for parameter in parameters)
        self.name = name
        self.sql = str(inlined.compile(dialect=_DIALECT))  # what a reader or EXPLAIN wants
        # PostgreSQL wants no parentheses at all for a statement without parameters.
        self.definition = f"PREPARE {name}{f' ({types})' if parameters else ''} AS {numbered}"
        self.call = f"EXECUTE {name}{f'({values})' if parameters else ''}"

    def __repr__(self) -> str:
        return f"Statement({self.name!r}, {self.sql!r})"


def _inline(element):
    """A constant as a literal; its type from the value when the statement gives none."""
    if isinstance(element, BindParameter) and element.value is not None:
        kind = literal(element.value).type if element.type._isnull else element.type
        return literal_column(kind.literal_processor(_DIALECT)(element.value), kind)
    return None


def _type_of(parameter: BindParameter) -> str:
    if parameter.type._isnull:
        raise TypeError(f"parameter {parameter.key!r} needs a type to be prepared")
    return parameter.type.compile(dialect=_DIALECT)


def read(connection: Connection, statement: Statement, **parameters) -> list[tuple]:
    """One statement on its own: autocommit gives it one snapshot and no BEGIN or COMMIT."""
    return _send(connection, (statement,), parameters)


def _send(
    connection: Connection,
    statements: tuple[Statement, ...],
    parameters: dict,
    before: str = "",
    after: str = "",
) -> list[tuple]:
    """Run `statements` in one message, each prepared in it the first time this
    connection runs it; the rows of the last come back.

    `before` and `after` travel in the same message. If a message preparing
    a statement fails, whether its PREPARE took effect is unknown, so the
    connection is discarded: the next one starts afresh.
    """
    prepared = connection.info.setdefault(_PREPARED, set())
    unprepared = [statement for statement in statements if statement.name not in prepared]
    calls = "; ".join(statement.call for statement in statements)
    if not unprepared:
        return _execute(connection, f"{before}{calls}{after}", parameters)
    definitions = "".join(f"{statement.definition}; " for statement in unprepared)
    try:
        rows = _execute(connection, f"{before}{definitions}{calls}{after}", parameters)
    except DBAPIError:
        if not connection.invalidated:
            connection.invalidate()
        raise
    prepared.update(statement.name for statement in unprepared)
    return rows


def _execute(connection: Connection, text: str, parameters: dict | None) -> list[tuple]:
    """One round trip on the driver's cursor; its rows, if any, as named tuples."""
    dbapi_connection = connection.connection.dbapi_connection
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(text, parameters)
            if cursor.description is None:
                return []
            make_row = _row_maker(tuple(column.name for column in cursor.description))
            return [make_row(row) for row in cursor.fetchall()]
    except psycopg2.Error as error:
        dialect = connection.dialect
        lost = dialect.is_disconnect(error, dbapi_connection, None)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            text, parameters, error, psycopg2.Error, connection_invalidated=lost, dialect=dialect
        ) from error


@functools.cache
def _row_maker(names: tuple[str, ...]):
    return collections.namedtuple("Row", names)._make


class Transaction:
    """One transaction on an autocommit connection; nothing is sent until its first statement.

    The caller ends it with `commit`, `rollback` or `execute_and_commit`; a
    transaction never begun ends without a round trip. Once `commit_sent`, a
    connection lost before the reply leaves the outcome unknown: the commit
    may have landed.
    """

    def __init__(self, connection: Connection):
        if not connection.connection.dbapi_connection.autocommit:
            raise RuntimeError("transactions need an engine in autocommit mode: exchange_engine")
        self._connection = connection
        self.begun = False
        self.commit_sent = False

    def execute(self, statement: Statement, **parameters) -> list[tuple]:
        return _send(self._connection, (statement,), parameters, self._begin())

    def execute_after(self, first: Statement, statement: Statement, **parameters) -> list[tuple]:
        """Run `first`, then `statement`, in one message; the rows of `statement` come back.

        Under READ COMMITTED each statement reads a snapshot taken when it
        starts, so `statement` sees what was committed by the time `first`
        finished: after the locks `first` waited for were granted. A round
        trip fewer while those locks are held. (The driver keeps only a
        message's last result: `first`'s rows are not seen.)
        """
        return _send(self._connection, (first, statement), parameters, self._begin())

    def execute_and_commit(self, statement: Statement, **parameters) -> None:
        """Run a statement that returns no rows, and COMMIT, in the same message.

        A round trip fewer, and the locks go as soon as the writes are done.
        (The driver keeps only a message's last result: any rows would be lost.)
        """
        before = self._begin()
        self.commit_sent = True
        _send(self._connection, (statement,), parameters, before, after="; COMMIT")
        self.begun = False

    def commit(self) -> None:
        if self.begun:
            self.commit_sent = True
            self._end("COMMIT")

    def rollback(self) -> None:
        if self.begun:
            self._end("ROLLBACK")

    def _begin(self) -> str:
        """What must precede the next statement: BEGIN, for the first."""
        if self.begun:
            return ""
        self.begun = True
        return "BEGIN; "

    def _end(self, command: str) -> None:
        self.begun = False
        _execute(self._connection, command, None)


@contextlib.contextmanager
def recording(engine: Engine) -> Iterator[list[str]]:
    """Every statement the driver sends on `engine`'s connections while inside, in order.

    Counted at psycopg2's cursor, below this module, on connections in
    autocommit mode, where the driver sends nothing of its own: each entry is
    one round trip. The tests pin the exchange's round trips with it, and the
    profiler reports them.
    """
    sent: list[str] = []

    class Recording(psycopg2.extensions.cursor):
        def execute(self, query, parameters=None):
            sent.append(query)
            return super().execute(query, parameters)

    def record(dbapi_connection, connection_record, proxy):
        if not dbapi_connection.autocommit:
            raise RuntimeError("the driver would send a BEGIN of its own, unrecorded")
        dbapi_connection.cursor_factory = Recording

    def stop_recording(dbapi_connection, connection_record):
        dbapi_connection.cursor_factory = psycopg2.extensions.cursor

    event.listen(engine, "checkout", record)
    event.listen(engine, "checkin", stop_recording)
    try:
        yield sent
    finally:
        event.remove(engine, "checkout", record)
        event.remove(engine, "checkin", stop_recording)
