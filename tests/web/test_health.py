"""Liveness asks nothing of the database; readiness needs the database and its schema."""

import pytest
from falcon import testing
from lxml import etree
from sqlalchemy import make_url, text

from app.config import Config
from app.local import cluster
from app.storage.engine import database_engine
from app.storage.schema import create_schema
from app.web.app import create_app


def health(response) -> dict[str, str]:
    return dict(etree.fromstring(response.content).attrib)


@pytest.fixture
def unreachable_client():
    """An app whose database URL points at a port where nothing listens."""
    url = f"postgresql://postgres@127.0.0.1:{cluster.free_port()}/exchange"
    return testing.TestClient(create_app(Config(database_url=url)))


@pytest.fixture
def schemaless_client(database_url):
    """An app on a database that exists but whose tables were never created."""
    url = make_url(database_url).set(database="exchange_without_schema")
    url = url.render_as_string(hide_password=False)
    cluster.create_database(url)
    try:
        yield testing.TestClient(create_app(Config(database_url=url)))
    finally:
        cluster.drop_database(url)


@pytest.fixture
def own_database(database_url):
    """A database of this test's own, with the schema, that the test may disconnect at will."""
    url = make_url(database_url).set(database="exchange_readiness")
    url = url.render_as_string(hide_password=False)
    cluster.create_database(url)
    engine = database_engine(url, pool_size=1)
    create_schema(engine)
    engine.dispose()
    try:
        yield url
    finally:
        cluster.drop_database(url)


def test_liveness_answers_with_the_database_up(client):
    response = client.simulate_get("/livez")
    assert response.status_code == 200
    assert health(response) == {"live": "ok"}


def test_liveness_answers_with_the_database_down(unreachable_client):
    assert unreachable_client.simulate_get("/livez").status_code == 200


def test_readiness_needs_the_database(unreachable_client):
    response = unreachable_client.simulate_get("/readyz")
    assert response.status_code == 503
    assert health(response) == {"database": "unavailable"}


def test_readiness_needs_the_schema(schemaless_client):
    response = schemaless_client.simulate_get("/readyz")
    assert response.status_code == 503
    assert health(response) == {"database": "ok", "schema": "missing"}


@pytest.mark.parametrize("path", ["/readyz", "/health"])
def test_ready_with_database_and_schema(client, path):
    response = client.simulate_get(path)
    assert response.status_code == 200
    assert health(response) == {"database": "ok", "schema": "ok"}


def test_health_is_readiness(unreachable_client):
    assert unreachable_client.simulate_get("/health").status_code == 503


def test_readiness_survives_the_server_dropping_pooled_connections(own_database, database_url):
    client = testing.TestClient(create_app(Config(database_url=own_database, pool_size=1)))
    assert client.simulate_get("/readyz").status_code == 200
    maintenance = database_engine(database_url, pool_size=1)
    with maintenance.connect() as connection:
        dropped = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = 'exchange_readiness'"
            )
        ).scalar_one()
    maintenance.dispose()

    assert dropped == 1
    assert client.simulate_get("/readyz").status_code == 200
