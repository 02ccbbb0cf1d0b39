"""Every reason the exchange can refuse a well-formed command, in one table."""

from enum import Enum


class Reason(Enum):
    ACCOUNT_EXISTS = "account already exists"
    NO_SUCH_ACCOUNT = "no such account"
    NO_SUCH_SYMBOL = "no such symbol"
    NO_SUCH_ORDER = "no such order for this account"
    NOTHING_OPEN = "order has no open shares to cancel"
    INSUFFICIENT_FUNDS = "insufficient funds: order needs {needed}, balance is {available}"
    INSUFFICIENT_SHARES = "insufficient shares: order needs {needed}, position is {available}"
    TOO_MANY_OPEN_ORDERS = "too many open orders"
    NOT_PERMITTED = "not permitted"


class Rejected(Exception):
    """A command the exchange refuses; raising it rolls its transaction back."""

    def __init__(self, reason: Reason, **details):
        super().__init__(reason.value.format(**details))
        self.reason = reason


class CommitUnconfirmed(Exception):
    """The connection broke, or the deadline passed, after COMMIT was sent and before its
    answer came: the transaction may have been applied, so it is not run again."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error
