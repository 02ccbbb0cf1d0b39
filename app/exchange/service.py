"""Answer a whole request: its items in document order, each in its own transaction.

A request sent with an idempotency key (SPEC §9) runs under a claim: each child
with an effect records it in its own transaction, and a child an earlier
attempt recorded is answered from its record instead of running again. The
first of them that commits claims the key in the same transaction.
"""

import logging
from collections.abc import Callable

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
from app.exchange.results import Canceled, Created, Failed, Opened, Result, Status
from app.exchange.transactions import Exchange
from app.idempotency.claims import Child, Claim, ClaimLost
from app.outcomes import Unavailable
from app.storage.engine import first_line
from app.storage.session import ahead_of_the_next_message
from app.storage.waits import timed_out

log = logging.getLogger(__name__)

# The commands whose effect a child's record proves, with what it answered.
EFFECTS = (CreateAccount, MintShares, PlaceOrder, CancelOrder)

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


def answer(
    exchange: Exchange, request: Request, claim: Claim | None = None
) -> list[tuple[Echo, Result]]:
    """One reply per item, in item order; a failure never undoes an earlier success.

    Only the check of the acting account, before any item runs, raises a
    database error: once an item has run, every failure is an item's reply.
    Under a claim, the lease is renewed between items when due; a claim found
    taken over raises ClaimLost, and the attempt that took it answers.
    """
    if request.acting_account is not None and not exchange.account_exists(request.acting_account):
        failure = Failed(Reason.NO_SUCH_ACCOUNT.value)
        return [(item.echo, failure) for item in request.items]

    replies = []
    uncreated: dict[str, Failed] = {}  # symbols whose creation failed: their grants are not run
    for index, item in enumerate(request.items):
        if claim is not None and claim.renewal_due():
            _renew(exchange, claim)
        command = item.command
        if item.problem is not None:
            replies.append((item.echo, Failed(item.problem)))
        elif isinstance(command, CreateSymbol):
            created = _execute(perform, exchange, command)
            if isinstance(created, Failed):
                uncreated[command.symbol] = _not_run(created)
            else:
                uncreated.pop(command.symbol, None)
        elif isinstance(command, MintShares) and command.symbol in uncreated:
            replies.append((item.echo, uncreated[command.symbol]))
            if claim is not None:
                claim.ran(index, recorded=False)
        elif claim is not None and index in claim.recorded:
            order_id = claim.recorded[index]
            replies.append((item.echo, _execute(recorded, exchange, command, order_id)))
        elif claim is not None and isinstance(command, EFFECTS):
            replies.append((item.echo, _claimed(exchange, command, claim, index)))
        else:
            replies.append((item.echo, _execute(perform, exchange, command)))
    return replies


def completing_child(request: Request) -> int | None:
    """The last child, when every child has an effect (a `<symbol>` aside, whose share
    grants answer for it): each leaves a record, and the records are the reply."""
    items = request.items
    commands = [item.command for item in items]
    if not items or not all(isinstance(command, (*EFFECTS, CreateSymbol)) for command in commands):
        return None
    return len(items) - 1 if isinstance(commands[-1], EFFECTS) else None


def _claimed(exchange: Exchange, command: Command, claim: Claim, index: int) -> Result:
    """Run a child with an effect under the claim; until the claim is taken, the claim's
    insert rides with it, answered at once when this child is the request's last."""
    child = claim.child(index)
    if claim.taken:
        result = _execute(perform, exchange, command, child)
    else:
        claiming = exchange.claiming(claim, answered=claim.completes(index))
        with ahead_of_the_next_message(claiming):
            result = _execute(perform, exchange, command, child)
        if claiming.done:
            claim.taken = True
            claim.leased()
    claim.ran(index, recorded=not isinstance(result, Failed))
    return result


def rebuilt(
    exchange: Exchange, request: Request, records: dict[int, int | None]
) -> list[tuple[Echo, Result]]:
    """The reply of a request every child of which left a record, from the records."""
    return [
        (item.echo, recorded(exchange, item.command, records[index]))
        for index, item in enumerate(request.items)
        if not isinstance(item.command, CreateSymbol)
    ]


def _renew(exchange: Exchange, claim: Claim) -> None:
    """Renew the claim's lease; a database failure is left to the next item to report."""
    try:
        renewed = exchange.renew_lease(claim.scope, claim.key, claim.attempt, claim.lease_seconds)
    except DBAPIError:
        return
    if not renewed:
        raise ClaimLost()
    claim.leased()


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


def perform(exchange: Exchange, command: Command, child: Child | None = None) -> Result:
    """Run one command, recording it as `child` when given; a refusal raises `Rejected`,
    a database failure `DBAPIError`."""
    match command:
        case CreateSymbol():
            exchange.create_symbol(command)
            return Created()
        case CreateAccount():
            exchange.create_account(command, child)
            return Created()
        case MintShares():
            exchange.mint_shares(command, child)
            return Created()
        case PlaceOrder():
            return exchange.place_order(command, child)
        case QueryOrder():
            return Status(exchange.query_order(command))
        case CancelOrder():
            return Canceled(exchange.cancel_order(command, child))
        case ShowAccount():
            return exchange.account_statement(command)
        case ListOrders():
            return exchange.open_orders(command)
        case ShowBook():
            return exchange.book(command)
        case ShowTrades():
            return exchange.trades(command)
    raise TypeError(f"no handler for {command!r}")


def recorded(exchange: Exchange, command: Command, order_id: int | None) -> Result:
    """What a child an earlier attempt committed answered: the same result. An order
    placed has its id; an order canceled no longer changes, so its status now is the
    status its cancel returned."""
    match command:
        case PlaceOrder():
            return Opened(order_id)
        case CancelOrder():
            return Canceled(exchange.query_order(QueryOrder(command.account_id, order_id)))
    return Created()


def _execute(run: Callable[..., Result], exchange: Exchange, command: Command, *more) -> Result:
    try:
        return run(exchange, command, *more)
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
