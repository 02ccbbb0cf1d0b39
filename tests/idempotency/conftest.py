from tests.web.conftest import client  # noqa: F401  the Falcon app on the test database
