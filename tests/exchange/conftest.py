import pytest

CASH = 1_000_000
SHARES = 10_000


@pytest.fixture
def traders(market):
    """Accounts 1 and 2 with CASH each; account 2 also holds SHARES of X."""
    market.account("1", CASH)
    market.account("2", CASH)
    market.grant("2", "X", SHARES)
    return market
