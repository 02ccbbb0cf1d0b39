"""One SQLAlchemy engine per process, always on the psycopg2 driver."""

import logging

import tenacity
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from app.storage.waits import server_timeouts


def database_engine(
    url: str, pool_size: int = 4, timeout_s: float | None = None, **options
) -> Engine:
    """Build an engine; call it after fork, so no pooled socket is shared by two processes.

    Plain `postgresql://` URLs are pinned to psycopg2, which SQLAlchemy 2.1 no
    longer picks by default. Connecting gives up after 10 s unless the URL
    says otherwise (`?connect_timeout=N`): an unreachable host must not hang a
    request, a health check or the start. Pooled connections are not pinged
    before use: the transaction module runs a transaction again when its
    connection turns out broken before COMMIT. With `timeout_s`, the server
    ends a statement, a lock wait or an idle transaction after that long.
    """
    return _engine(url, pool_size, timeout_s, **options)


def exchange_engine(url: str, pool_size: int = 4, timeout_s: float | None = None) -> Engine:
    """The transaction module's engine: autocommit, and generic plans for prepared statements.

    Autocommit: the module sends BEGIN and COMMIT itself (app/storage/session.py).
    Set once for the engine it costs nothing per checkout, unlike a
    per-connection isolation level, which SQLAlchemy resets with a round trip
    at every checkin.

    Generic plans: the module's statements are prepared once per connection.
    PostgreSQL would plan each anew for its first five runs, then keep
    replanning those whose generic plan it estimates dearer; their generic
    plans (index lookups by key, the book walked through its index) serve
    every call, and planning was a fifth of PostgreSQL's CPU per request.
    """
    engine = _engine(url, pool_size, timeout_s, isolation_level="AUTOCOMMIT")
    event.listen(engine, "connect", _use_generic_plans)
    return engine


def _use_generic_plans(dbapi_connection, connection_record) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")


def _engine(url: str, pool_size: int, timeout_s: float | None, **options) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
    if timeout_s is not None:  # after any options the URL gives, so that these win
        given = parsed.query.get("options", "")
        connect_args["options"] = f"{given} {server_timeouts(timeout_s)}".strip()
    return create_engine(
        parsed,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=0,
        **options,
    )


class DatabaseUnreachable(RuntimeError):
    """The database did not answer within the start-up bound; the message says where and why."""


def wait_for_database(engine: Engine, seconds: float, log: logging.Logger) -> None:
    """Retry connecting for up to `seconds`, logging each wait, so a server can start first.

    Containers and supervisors start processes in any order: the database may
    still be initialising when the service starts.
    """
    where = engine.url.render_as_string(hide_password=True)

    def report(state: tenacity.RetryCallState) -> None:
        log.warning(
            "waiting for the database at %s (%.0f of %g s): %s",
            where,
            state.seconds_since_start,
            seconds,
            first_line(state.outcome.exception()),
        )

    try:
        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(OperationalError),
            stop=tenacity.stop_after_delay(seconds),
            wait=tenacity.wait_fixed(1),
            before_sleep=report,
            reraise=True,
        ):
            with attempt, engine.connect() as connection:
                connection.execute(text("SELECT 1"))
    except OperationalError as error:
        raise DatabaseUnreachable(
            f"the database at {where} did not answer within {seconds:g} s: {first_line(error)}"
        ) from None


def first_line(error: BaseException) -> str:
    """psycopg2's messages run over several lines; the first says what went wrong."""
    orig = getattr(error, "orig", error)
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
