"""Fixtures shared by all tests: a PostgreSQL database of their own, engines, real servers."""

import os
import uuid

import pytest
from hypothesis import settings
from sqlalchemy import Engine, make_url, text

from app.exchange.transactions import Exchange
from app.local import cluster
from app.storage import engine as engines
from app.storage.engine import database_engine
from app.storage.schema import create_schema, metadata, order_ids
from app.storage.session import recording
from tests.exchange.market import Market
from tests.shim.processes import running_shim
from tests.web.servers import running_gunicorn

# The default profile keeps `make test` quick; HYPOTHESIS_PROFILE=thorough searches
# far more examples and longer stateful histories, for runs by hand.
settings.register_profile("default", deadline=None, stateful_step_count=50)
settings.register_profile("thorough", deadline=None, max_examples=1000, stateful_step_count=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Small enough that tests can cross it cheaply; the server runs with it too.
SMALL_BODY_LIMIT = 4096
SHIM_LIMIT_FLAG = ("--max-body-bytes", str(SMALL_BODY_LIMIT))


@pytest.fixture(scope="session")
def database_url():
    """URL of a fresh, empty database that lives as long as the test session.

    With TEST_DATABASE_URL, a uniquely named database on that server; else a
    throwaway cluster in a temporary directory on a free port, so the tests
    never touch the developer's .pgdata.
    """
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        with cluster.temporary_cluster() as throwaway:
            yield throwaway.url()
        return
    url = (
        make_url(server)
        .set(drivername="postgresql+psycopg2", database=f"exchange_test_{uuid.uuid4().hex[:12]}")
        .render_as_string(hide_password=False)
    )
    cluster.create_database(url)
    try:
        yield url
    finally:
        cluster.drop_database(url)


@pytest.fixture(scope="session")
def schema_engine(database_url):
    """One engine for the session, on a database whose schema exists."""
    engine = database_engine(database_url, pool_size=8)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def exchange_engine(database_url, schema_engine):
    """The engine the exchange runs on, in autocommit mode as the service's is."""
    engine = engines.exchange_engine(database_url, pool_size=8)
    yield engine
    engine.dispose()


@pytest.fixture
def sent(exchange_engine):
    """Every statement the driver sends for the exchange's engine from now on: one a round trip."""
    with recording(exchange_engine) as statements:
        yield statements


def empty_tables(engine: Engine) -> None:
    """Delete every row and restart every id, order ids included, so ids are predictable."""
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        connection.execute(text(f"ALTER SEQUENCE {order_ids.name} RESTART"))


@pytest.fixture
def engine(schema_engine):
    """The session's engine, on tables emptied for this test."""
    empty_tables(schema_engine)
    return schema_engine


@pytest.fixture
def market(engine, exchange_engine):
    return Market(Exchange(exchange_engine), engine)


@pytest.fixture
def own_cluster():
    """PostgreSQL of this test alone, so that stopping it disturbs no other test."""
    with cluster.temporary_cluster() as throwaway:
        yield throwaway


@pytest.fixture(scope="session")
def server(database_url, schema_engine, tmp_path_factory):
    """A real gunicorn serving the exchange, started as `make run` starts it."""
    with running_gunicorn(
        database_url,
        tmp_path_factory.mktemp("server") / "gunicorn.log",
        EXCHANGE_MAX_BODY_BYTES=str(SMALL_BODY_LIMIT),
    ) as gunicorn:
        yield gunicorn.url


@pytest.fixture(scope="session")
def one_worker_server(database_url, schema_engine, tmp_path_factory):
    """A real gunicorn of one worker: stopping it drops every stream, and gunicorn starts
    another in its place."""
    with running_gunicorn(
        database_url, tmp_path_factory.mktemp("one-worker") / "gunicorn.log", EXCHANGE_WORKERS="1"
    ) as gunicorn:
        yield gunicorn


@pytest.fixture(scope="session")
def shim(server):
    """A shim in front of the session's server, in the default framing: bare reply, then close."""
    with running_shim(server, *SHIM_LIMIT_FLAG) as running:
        yield running


@pytest.fixture(scope="session")
def framed_shim(server):
    """Replies prefixed with their length line, connections kept open between requests."""
    with running_shim(
        server, *SHIM_LIMIT_FLAG, "--reply-length", "--keep-open", idle_timeout=1.0
    ) as running:
        yield running


@pytest.fixture(scope="session")
def bare_kept_open_shim(server):
    """Connections kept open between requests, replies bare: both families of clients served."""
    with running_shim(server, *SHIM_LIMIT_FLAG, "--keep-open", idle_timeout=1.0) as running:
        yield running
