import pytest
from falcon import testing

from app.config import Config
from app.web.app import create_app
from tests.conftest import SMALL_BODY_LIMIT


@pytest.fixture
def client(engine, database_url):
    return testing.TestClient(
        create_app(Config(database_url=database_url, max_body_bytes=SMALL_BODY_LIMIT))
    )
