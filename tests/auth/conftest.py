import pytest

from app.auth.store import KeyStore


@pytest.fixture
def store(engine, exchange_engine):
    """The key store on the exchange's engine, on tables emptied for this test."""
    return KeyStore(exchange_engine)
