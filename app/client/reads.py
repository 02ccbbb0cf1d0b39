"""The client's read subcommands: a statement, open orders, a book, a tape, as tables.

    python -m app.client account 123456
    python -m app.client orders 123456 --sym SPY
    python -m app.client book SPY --depth 5
    python -m app.client trades SPY --limit 20

They read the HTTP service's read-only resources (SPEC §7), which need no
request document and, for market data, no account. `book --watch` and
`trades --follow` follow the symbol's stream instead (app/client/live.py).
"""

import argparse
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from lxml import etree

from app.auth.proof import Credentials
from app.client.transport import request_target

SUBCOMMANDS = frozenset({"account", "orders", "book", "trades"})
CLEAR_SCREEN = "\x1b[H\x1b[2J"


class ReadFailed(Exception):
    """The service answered with an error, or not at all."""


def add_subcommands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """The read subcommands; each also takes the `common` options, after its name."""
    commands = parser.add_subparsers(dest="read")
    commands.required = True

    def add_parser(name: str, **kwargs) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], **kwargs)

    account = add_parser("account", help="an account's balance and positions")
    account.add_argument("account_id")
    orders = add_parser("orders", help="an account's open orders, oldest first")
    orders.add_argument("account_id")
    orders.add_argument("--sym", help="only this symbol's")
    book = add_parser("book", help="a symbol's open orders by price level")
    book.add_argument("symbol")
    book.add_argument("--depth", type=int, default=10, help="price levels a side (1-1000)")
    book.add_argument(
        "--watch", action="store_true", help="follow the symbol's stream: redraw as it changes"
    )
    trades = add_parser("trades", help="a symbol's latest executions, newest first")
    trades.add_argument("symbol")
    trades.add_argument("--limit", type=int, default=50, help="how many (1-1000)")
    trades.add_argument(
        "--follow",
        action="store_true",
        help="follow the symbol's stream: print each trade as it happens, oldest first",
    )


def run(
    args: argparse.Namespace, base_url: str, timeout: float, credentials: Credentials | None = None
) -> int:
    """Print the table the subcommand asks for."""

    def get(path: str, **query) -> etree._Element:
        present = {name: value for name, value in query.items() if value is not None}
        return fetch(base_url, path, present, timeout, credentials)

    try:
        print(_page(args, get)())
    except (ReadFailed, OSError) as error:
        return failed(args, error)
    return 0


def failed(args: argparse.Namespace, error: Exception) -> int:
    print(f"python -m app.client {args.read}: {error}", file=sys.stderr)
    return 1


def _page(args: argparse.Namespace, get) -> Callable[[], str]:
    quoted = urllib.parse.quote
    if args.read == "account":
        return lambda: account_table(get(f"/accounts/{quoted(args.account_id)}"))
    if args.read == "orders":
        return lambda: orders_table(all_open_orders(get, args.account_id, args.sym))
    if args.read == "book":
        return lambda: book_ladder(get(f"/symbols/{quoted(args.symbol)}/book", depth=args.depth))
    return lambda: trades_table(get(f"/symbols/{quoted(args.symbol)}/trades", limit=args.limit))


def fetch(
    base_url: str, path: str, query: dict, timeout: float, credentials: Credentials | None = None
) -> etree._Element:
    url = base_url.rstrip("/") + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
    headers = {"Accept": "application/xml"}
    if credentials:  # an account's reads need it; market data ignores it
        headers["Authorization"] = credentials.header("GET", request_target(url))
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _parse(response.read())
    except urllib.error.HTTPError as error:
        raise refusal(error) from None


def refusal(error: urllib.error.HTTPError) -> ReadFailed:
    """Why the service refused, from its error document (or else the HTTP reason)."""
    try:
        reply = _parse(error.read())
        why = reply.findtext("error") or reply.text or error.reason
    except ReadFailed:
        why = error.reason
    return ReadFailed(f"{why} (HTTP {error.code})")


def _parse(body: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        return etree.fromstring(body, parser)
    except etree.XMLSyntaxError as error:
        raise ReadFailed(f"reply is not XML: {error}") from None


def all_open_orders(get, account_id: str, symbol: str | None) -> list[etree._Element]:
    """Every page of the account's open orders, following `after` while `more` says so."""
    found, after = [], None
    while True:
        page = get(f"/accounts/{urllib.parse.quote(account_id)}/orders", sym=symbol, after=after)
        found += list(page)
        if page.get("more") != "true" or not len(page):
            return found
        after = page[-1].get("id")


def account_table(account: etree._Element) -> str:
    balance, reserved = account.get("balance"), account.get("reserved")
    head = f"account {account.get('id')}: balance {balance}, reserved {reserved}"
    rows = [(p.get("sym"), p.get("shares"), p.get("reserved")) for p in account]
    if not rows:
        return f"{head}\nno positions"
    return f"{head}\n" + table(("symbol", "shares", "reserved"), rows)


def orders_table(orders: list[etree._Element]) -> str:
    if not orders:
        return "no open orders"
    attributes = ("id", "sym", "amount", "limit", "open")
    rows = [(*(order.get(name) for name in attributes), _when(order)) for order in orders]
    return table(("id", "symbol", "amount", "limit", "open", "placed (UTC)"), rows)


def book_ladder(book: etree._Element) -> str:
    """Asks above bids, the best of each next to the spread, as a trader reads a ladder."""

    def levels(side: str) -> list[tuple]:
        return [
            (side, *(level.get(name) for name in ("price", "shares", "orders")))
            for level in book.iter(side)
        ]

    rows = levels("ask")[::-1] + levels("bid")
    if not rows:
        return f"{book.get('sym')}: no open orders"
    return f"{book.get('sym')}\n" + table(("side", "price", "shares", "orders"), rows)


def trades_table(trades: etree._Element) -> str:
    rows = [(_when(trade), trade.get("shares"), trade.get("price")) for trade in trades]
    if not rows:
        return f"{trades.get('sym')}: no trades yet"
    return f"{trades.get('sym')}, newest first\n" + table(("time (UTC)", "shares", "price"), rows)


def _when(element: etree._Element) -> str:
    """An element's `time` (seconds since the epoch) as a person reads it, in UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(element.get("time"))))


def table(columns: tuple[str, ...], rows: list[tuple]) -> str:
    """Columns as wide as their widest cell; numbers (and their headings) to the right."""
    cells = [tuple(columns)] + [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    numeric = [all(_numeric(row[i]) for row in cells[1:] if row[i]) for i in range(len(columns))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join(line(row) for row in cells)


def _numeric(cell: str) -> bool:
    return cell.lstrip("-").replace(".", "", 1).isdigit()
