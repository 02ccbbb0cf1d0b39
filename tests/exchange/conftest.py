import pytest

from app.exchange.transactions import Exchange
from tests.exchange.market import Market


@pytest.fixture
def market(engine):
    return Market(Exchange(engine), engine)
