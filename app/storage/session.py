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
import contextvars
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass

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

    def __init__(self, name: str, statement: Executable, waits_for_a_lock: bool = False):
        """`waits_for_a_lock`: a message that begins with it is timed as a wait for a lock
        (`timing`), apart from the other round trips."""
        self.waits_for_a_lock = waits_for_a_lock
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


def execute_alone(connection: Connection, statement: Statement, **parameters) -> list[tuple]:
    """One statement on its own, with no BEGIN or COMMIT sent: autocommit makes it a
    transaction of its own, one snapshot, committed with it if it writes."""
    return _send(connection, (statement,), parameters)


def _send(
    connection: Connection,
    statements: tuple[Statement, ...],
    parameters: dict,
    before: str = "",
    after: str = "",
    transaction: "Transaction | None" = None,
    then: tuple[Statement, ...] = (),
) -> list[tuple]:
    """Run `statements` in one message, each prepared in it the first time this
    connection runs it; the rows of the last come back.

    `before` and `after` travel in the same message, and so, first, do the
    statements of every pending `Ahead`, in the order they were given, and
    last the statements `then`, after `after`. If a
    message preparing a statement fails, whether its PREPARE took effect is
    unknown, so the connection is discarded: the next one starts afresh.
    """
    prepared = connection.info.setdefault(_PREPARED, set())
    locking = bool(statements) and statements[0].waits_for_a_lock  # not what rides ahead
    aheads = [ahead for ahead in _AHEAD.get() if ahead.ready]
    if aheads:
        statements = (*(s for ahead in aheads for s in ahead.statements), *statements)
        parameters = _with_parameters_of(aheads, parameters)
    unprepared = [s for s in (*statements, *then) if s.name not in prepared]
    definitions = "".join(f"{statement.definition}; " for statement in unprepared)
    calls = "; ".join(statement.call for statement in statements)
    if aheads and transaction is None:
        calls = f"SET LOCAL synchronous_commit TO off; {calls}"  # see Ahead
    last = "".join(f"; {statement.call}" for statement in then)
    try:
        rows = _execute(
            connection, f"{before}{definitions}{calls}{after}{last}", parameters, locking=locking
        )
    except DBAPIError as error:
        if unprepared and not connection.invalidated:
            connection.invalidate()
        for ahead in aheads:
            ahead.failed(error)
        raise
    prepared.update(statement.name for statement in unprepared)
    for ahead in aheads:
        ahead.sent(transaction)
    return rows


def _with_parameters_of(aheads: list["Ahead"], parameters: dict) -> dict:
    """The message's parameters: its statements' and those of the statements ahead, no
    name given twice (one message, one namespace)."""
    merged = dict(parameters)
    for ahead in aheads:
        shared = merged.keys() & ahead.parameters.keys()
        if shared:
            raise ValueError(f"parameters named twice: {shared}")
        merged.update(ahead.parameters)
    return merged


class Ahead:
    """Statements to run once, before the rest of what this context sends, carried by its
    next message rather than in a round trip of their own (`ahead_of_the_next_message`).

    They are done once a unit of work that carried them has committed: the
    transaction they rode in, or the lone statement they went with, which then
    commits without waiting for the disk (WAL reaches the disk in order, so
    anything committed after makes them durable too, and a read's fate is not
    worth a flush). A transaction that rolls back takes them with it, and the
    next one carries them again; one whose commit's fate is unknown, too (a
    second run refuses rather than doubles). `refusal` turns an error of
    theirs into the exception to raise instead, or returns None.
    """

    def __init__(self, statements: tuple[Statement, ...], parameters: dict, refusal):
        self.statements = statements
        self.parameters = parameters
        self.refusal = refusal
        self.done = False
        self.riding: Transaction | None = None  # in a transaction not ended yet

    @property
    def ready(self) -> bool:
        """Not done, and not riding already."""
        return not self.done and self.riding is None

    def sent(self, transaction: "Transaction | None") -> None:
        if transaction is None:
            self.done = True
        else:
            self.riding = transaction
            transaction.carrying.append(self)

    def failed(self, error: DBAPIError) -> None:
        """Raise their refusal when the failure was theirs: nothing after them ran."""
        refused = self.refusal(error)
        if refused is not None:
            self.done = True
            raise refused from error

    def ended(self, committed: bool) -> None:
        self.riding = None
        self.done = committed


_AHEAD: contextvars.ContextVar[tuple[Ahead, ...]] = contextvars.ContextVar("ahead", default=())


@contextlib.contextmanager
def ahead_of_the_next_message(ahead: Ahead) -> Iterator[Ahead]:
    """While inside, messages sent in this context (thread or greenlet) carry `ahead`'s
    statements until a unit of work carrying them has committed; after those of any
    `Ahead` given around this one, each with a life of its own."""
    token = _AHEAD.set((*_AHEAD.get(), ahead))
    try:
        yield ahead
    finally:
        _AHEAD.reset(token)


def send_ahead(connection: Connection, ahead: Ahead) -> None:
    """`ahead` in a message of its own, when nothing carried it to a commit."""
    with ahead_of_the_next_message(ahead):
        _send(connection, (), {})


@dataclass
class Spent:
    """Seconds a request spent waiting for the database: in round trips that began by
    waiting for a lock (`locking`), and in the others (`database`)."""

    locking: float = 0.0
    database: float = 0.0


_SPENT: contextvars.ContextVar[Spent | None] = contextvars.ContextVar("spent", default=None)


@contextlib.contextmanager
def timing() -> Iterator[Spent]:
    """The time the round trips sent in this context (thread or greenlet) take, while inside."""
    token = _SPENT.set(spent := Spent())
    try:
        yield spent
    finally:
        _SPENT.reset(token)


def _execute(
    connection: Connection, text: str, parameters: dict | None, locking: bool = False
) -> list[tuple]:
    """One round trip on the driver's cursor; its rows, if any, as named tuples."""
    started = time.perf_counter()
    try:
        return _round_trip(connection, text, parameters)
    finally:
        if (spent := _SPENT.get()) is not None:
            seconds = time.perf_counter() - started
            if locking:
                spent.locking += seconds
            else:
                spent.database += seconds


def _round_trip(connection: Connection, text: str, parameters: dict | None) -> list[tuple]:
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
    may have landed. `carrying` holds the `Ahead`s riding in it.
    """

    def __init__(self, connection: Connection):
        if not connection.connection.dbapi_connection.autocommit:
            raise RuntimeError("transactions need an engine in autocommit mode: exchange_engine")
        self._connection = connection
        self.begun = False
        self.commit_sent = False
        self.carrying: list[Ahead] = []

    def execute(self, statement: Statement, **parameters) -> list[tuple]:
        return self._send((statement,), parameters)

    def execute_after(self, first: Statement, statement: Statement, **parameters) -> list[tuple]:
        """Run `first`, then `statement`, in one message; the rows of `statement` come back.

        Under READ COMMITTED each statement reads a snapshot taken when it
        starts, so `statement` sees what was committed by the time `first`
        finished: after the locks `first` waited for were granted. A round
        trip fewer while those locks are held. (The driver keeps only a
        message's last result: `first`'s rows are not seen.)
        """
        return self._send((first, statement), parameters)

    def execute_and_commit(
        self, *statements: Statement, then: Statement | None = None, **parameters
    ) -> list[tuple]:
        """Run statements that return no rows, and COMMIT, in the same message; then
        `then`, whose rows come back, still in that message (outside the transaction).

        A round trip fewer, and the locks go as soon as the writes are done.
        (The driver keeps only a message's last result: the statements' rows would
        be lost.) If one fails, the rest of the message, COMMIT included, is skipped.
        """
        rows = self._send(statements, parameters, committing=True, then=(then,) if then else ())
        self.begun = False
        self._ended(committed=True)
        return rows

    def commit(self) -> None:
        if self.begun:
            self.commit_sent = True
            self._end("COMMIT")

    def rollback(self) -> None:
        """Roll back, or only forget the transaction when its connection is already lost."""
        if self.begun and not self._connection.invalidated:
            self._end("ROLLBACK")
        self.begun = False
        self._ended(committed=False)

    def _send(
        self, statements: tuple, parameters: dict, committing: bool = False, then: tuple = ()
    ) -> list[tuple]:
        before = "" if self.begun else "BEGIN; "
        self.begun = True
        self.commit_sent = self.commit_sent or committing
        try:
            return _send(
                self._connection,
                statements,
                parameters,
                before,
                after="; COMMIT" if committing else "",
                transaction=self,
                then=then,
            )
        except DBAPIError:
            if committing:  # the commit's fate may be unknown: whatever rode in it goes again
                self._ended(committed=False)
            raise

    def _end(self, command: str) -> None:
        self.begun = False
        try:
            _execute(self._connection, command, None)
        except DBAPIError:
            self._ended(committed=False)
            raise
        self._ended(committed=command == "COMMIT")

    def _ended(self, committed: bool) -> None:
        for ahead in self.carrying:
            ahead.ended(committed)
        self.carrying.clear()


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
        if dbapi_connection is not None:  # None once invalidated: it is closed anyway
            dbapi_connection.cursor_factory = psycopg2.extensions.cursor

    event.listen(engine, "checkout", record)
    event.listen(engine, "checkin", stop_recording)
    try:
        yield sent
    finally:
        event.remove(engine, "checkout", record)
        event.remove(engine, "checkin", stop_recording)
