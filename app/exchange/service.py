"""Answer a whole request: its items in document order, each in its own transaction."""

import logging

from sqlalchemy.exc import DBAPIError

from app.exchange.commands import (
    CancelOrder,
    Command,
    CreateAccount,
    CreateSymbol,
    Echo,
    ListOrders,
    MintShares,
    PlaceOrder,
    QueryOrder,
    Request,
    ShowAccount,
    ShowBook,
    ShowTrades,
)
from app.exchange.errors import Reason, Rejected
from app.exchange.results import Canceled, Created, Failed, Result, Status
from app.exchange.transactions import Exchange
from app.storage.engine import first_line

log = logging.getLogger(__name__)


def answer(exchange: Exchange, request: Request) -> list[tuple[Echo, Result]]:
    """One reply per item, in item order; a failure never undoes an earlier success."""
    if request.acting_account is not None and not exchange.account_exists(request.acting_account):
        failure = Failed(Reason.NO_SUCH_ACCOUNT.value)
        return [(item.echo, failure) for item in request.items]

    replies = []
    for item in request.items:
        if item.problem is not None:
            replies.append((item.echo, Failed(item.problem)))
        elif isinstance(item.command, CreateSymbol):
            exchange.create_symbol(item.command)
        else:
            replies.append((item.echo, _execute(exchange, item.command)))
    return replies


def database_failed(result: Result) -> bool:
    """Whether the item failed for want of the database (it may have been applied)."""
    return isinstance(result, Failed) and result.reason == Reason.DATABASE_UNAVAILABLE.value


def perform(exchange: Exchange, command: Command) -> Result:
    """Run one command; a refusal raises `Rejected`, a database failure `DBAPIError`."""
    match command:
        case CreateAccount():
            exchange.create_account(command)
            return Created()
        case MintShares():
            exchange.mint_shares(command)
            return Created()
        case PlaceOrder():
            return exchange.place_order(command)
        case QueryOrder():
            return Status(exchange.query_order(command))
        case CancelOrder():
            return Canceled(exchange.cancel_order(command))
        case ShowAccount():
            return exchange.account_statement(command)
        case ListOrders():
            return exchange.open_orders(command)
        case ShowBook():
            return exchange.book(command)
        case ShowTrades():
            return exchange.trades(command)
    raise TypeError(f"no handler for {command!r}")


def _execute(exchange: Exchange, command: Command) -> Result:
    try:
        return perform(exchange, command)
    except Rejected as rejection:
        return Failed(str(rejection))
    except DBAPIError as error:
        # Not logged here: an outage fails every request, and the web tier
        # logs it once when it begins, then a summary (app/web/outage.py).
        log.debug("database error while executing %r", command, exc_info=True)
        return Failed(Reason.DATABASE_UNAVAILABLE.value, cause=first_line(error))
