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
from app.exchange.errors import CommitUnconfirmed, Reason, Rejected
from app.exchange.results import Canceled, Created, Failed, Result, Status
from app.exchange.transactions import Exchange
from app.outcomes import Unavailable
from app.storage.engine import first_line
from app.storage.waits import timed_out

log = logging.getLogger(__name__)


DATABASE_FAILURES = {
    failure.text(): failure
    for failure in (
        Unavailable.DATABASE,
        Unavailable.DATABASE_AFTER_COMMIT,
        Unavailable.DEADLINE,
        Unavailable.DEADLINE_AFTER_COMMIT,
    )
}
NOT_RUN = {
    Unavailable.DATABASE_AFTER_COMMIT: Unavailable.DATABASE,
    Unavailable.DEADLINE_AFTER_COMMIT: Unavailable.DEADLINE,
}


def answer(exchange: Exchange, request: Request) -> list[tuple[Echo, Result]]:
    """One reply per item, in item order; a failure never undoes an earlier success.

    Only the check of the acting account, before any item runs, raises a
    database error: once an item has run, every failure is an item's reply.
    """
    if request.acting_account is not None and not exchange.account_exists(request.acting_account):
        failure = Failed(Reason.NO_SUCH_ACCOUNT.value)
        return [(item.echo, failure) for item in request.items]

    replies = []
    uncreated: dict[str, Failed] = {}  # symbols whose creation failed: their grants are not run
    for item in request.items:
        command = item.command
        if item.problem is not None:
            replies.append((item.echo, Failed(item.problem)))
        elif isinstance(command, CreateSymbol):
            created = _execute(exchange, command)
            if isinstance(created, Failed):
                uncreated[command.symbol] = _not_run(created)
            else:
                uncreated.pop(command.symbol, None)
        elif isinstance(command, MintShares) and command.symbol in uncreated:
            replies.append((item.echo, uncreated[command.symbol]))
        else:
            replies.append((item.echo, _execute(exchange, command)))
    return replies


def _not_run(failure: Failed) -> Failed:
    """The reply of an item not run because a step it needed failed: not applied, whatever
    that step's own outcome."""
    kind = DATABASE_FAILURES.get(failure.reason)
    if kind not in NOT_RUN:
        return failure
    return Failed(NOT_RUN[kind].text(), cause=failure.cause)


def database_failed(result: Result) -> bool:
    """Whether the item failed for want of the database or of time (not applied, or
    perhaps applied: the text says which)."""
    return isinstance(result, Failed) and result.reason in DATABASE_FAILURES


def database_failure(error: DBAPIError, after_commit: bool = False) -> Failed:
    """The reply to an item, or a whole request, that the database failed: a timeout or an
    unreachable server, and whether it may have been applied."""
    if timed_out(error):
        failure = Unavailable.DEADLINE_AFTER_COMMIT if after_commit else Unavailable.DEADLINE
    else:
        failure = Unavailable.DATABASE_AFTER_COMMIT if after_commit else Unavailable.DATABASE
    return Failed(failure.text(), cause=first_line(error))


def perform(exchange: Exchange, command: Command) -> Result:
    """Run one command; a refusal raises `Rejected`, a database failure `DBAPIError`."""
    match command:
        case CreateSymbol():
            exchange.create_symbol(command)
            return Created()
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
    # Not logged here: an outage fails every request, and the web tier logs it
    # once when it begins, then a summary (app/web/outage.py).
    except CommitUnconfirmed as unconfirmed:
        log.debug("commit unconfirmed while executing %r", command, exc_info=True)
        return database_failure(unconfirmed.error, after_commit=True)
    except DBAPIError as error:
        log.debug("database error while executing %r", command, exc_info=True)
        return database_failure(error)
