"""What a key may do (SPEC §8): `<create>` needs admin; a key acts for its own account only,
orders and cancels need `trade`, queries and reads need `read`.

A key bound to another account is answered as if the account did not exist,
so that no key can learn which accounts exist.
"""

from app.auth.keys import ADMIN, READ, TRADE, Key
from app.auth.refusals import Forbidden, NotPermitted
from app.exchange.commands import CancelOrder, Item, PlaceOrder, Request
from app.exchange.errors import Reason, Rejected

TRADING = (PlaceOrder, CancelOrder)  # everything else a `<transactions>` child does is a read


def authorize(key: Key | None, request: Request) -> Request:
    """The request as `key` may run it; the request itself when authentication is off.

    Children the key may not run get `not permitted` in their place; a child
    already refused by the parser keeps its own error.
    """
    if key is None:
        return request
    if request.kind == "create":
        if ADMIN not in key.permissions:
            raise Forbidden
        return request
    if request.acting_account is None:  # no valid account id: every child says so already
        return request
    if request.acting_account != key.account_id:
        refused = Reason.NO_SUCH_ACCOUNT.value
        return Request(
            tuple(Item(item.echo, problem=refused) for item in request.items), None, request.kind
        )
    return Request(
        tuple(_permitted(key, item) for item in request.items), request.acting_account, request.kind
    )


def authorize_account(key: Key | None, account_id: str) -> None:
    """For `GET /accounts/ID...`: another account's key, or none, is told there is no such
    account; the account's own key needs `read`."""
    if key is None:
        return
    if key.account_id != account_id:
        raise Rejected(Reason.NO_SUCH_ACCOUNT)
    if READ not in key.permissions:
        raise NotPermitted


def _permitted(key: Key, item: Item) -> Item:
    if item.command is None:
        return item
    needed = TRADE if isinstance(item.command, TRADING) else READ
    if needed in key.permissions:
        return item
    return Item(item.echo, problem=Reason.NOT_PERMITTED.value)
