from tests.exchange.conftest import traders  # noqa: F401 - accounts 1 and 2, symbol X
