"""Following a symbol's stream (SPEC §10): `book SYM --watch` and `trades SYM --follow`.

    python -m app.client book SPY --watch        # the book, redrawn as it changes
    python -m app.client trades SPY --follow     # the last trades, then each as it happens

Both read the Server-Sent Events of `GET /symbols/SYM/stream`. When the
stream breaks (the service restarts, the network drops) they connect again
after RECONNECT_S with the id of the last event they got, so that the trades
missed meanwhile come first; an answer that will not change (an unknown
symbol, a malformed depth) ends them instead.
"""

import argparse
import http.client
import json
import queue
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

from lxml import etree
from sseclient import Event, SSEClient

from app.client.reads import CLEAR_SCREEN, ReadFailed, book_ladder, failed, refusal

RECONNECT_S = 1.0
REDRAW_EVERY_S = 1.0
REPLAYED = "0"  # as Last-Event-ID: every trade the stream still has (its last 1,000)


def run(args: argparse.Namespace, base_url: str, timeout: float) -> int:
    """`book --watch` or `trades --follow`, until Ctrl-C (0) or a refusal (1)."""
    try:
        if args.read == "book":
            return watch_book(base_url, args.symbol, args.depth, timeout)
        return follow_trades(base_url, args.symbol, args.limit, timeout)
    except ReadFailed as error:
        return failed(args, error)


def events(
    base_url: str,
    symbol: str,
    timeout: float,
    depth: int | None = None,
    last_event_id: str | None = None,
    broken: Callable[[str], None] = lambda why: None,
) -> Iterator[Event]:
    """The stream's events, for ever: after a break, `broken(why)`, then again from the last
    id seen. Raises `ReadFailed` for an answer that will not change (4xx)."""
    path = f"/symbols/{urllib.parse.quote(symbol)}/stream"
    url = base_url.rstrip("/") + path + (f"?depth={depth}" if depth is not None else "")
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=timeout) as response:
                for event in SSEClient(response).events():
                    last_event_id = event.id or last_event_id
                    yield event
            broken("the service ended the stream")
        except urllib.error.HTTPError as error:
            if error.code < 500:
                raise refusal(error) from None
            broken(str(refusal(error)))
        except (OSError, http.client.HTTPException) as error:
            broken(str(error) or type(error).__name__)
        time.sleep(RECONNECT_S)


def watch_book(base_url: str, symbol: str, depth: int, timeout: float) -> int:
    """Redraw the book as it changes, and every second anyway with the time and whether the
    stream is live, until Ctrl-C."""
    updates: queue.Queue = queue.Queue()

    def follow() -> None:
        try:
            for event in events(base_url, symbol, timeout, depth, broken=updates.put):
                if event.event == "book":
                    updates.put(json.loads(event.data))
        except ReadFailed as failure:
            updates.put(failure)

    threading.Thread(target=follow, daemon=True).start()
    book, state = None, "connecting"
    try:
        while True:
            try:
                update = updates.get(timeout=REDRAW_EVERY_S)
            except queue.Empty:
                update = None
            if isinstance(update, ReadFailed):
                raise update
            if isinstance(update, dict):
                book, state = update, "live"
            elif isinstance(update, str):
                state = f"reconnecting: {update}"
            if book is not None:
                page = book_ladder(_book_element(book))
                stamp = f"{time.strftime('%H:%M:%S')}  {state}  (Ctrl-C to stop)"
                print(f"{CLEAR_SCREEN}{stamp}\n{page}", flush=True)
    except KeyboardInterrupt:
        return 0


def follow_trades(base_url: str, symbol: str, limit: int, timeout: float) -> int:
    """Print the symbol's last `limit` trades, then each new one as it happens, oldest first,
    until Ctrl-C.

    The stream is asked to replay what it still has (Last-Event-ID 0): the last
    trades and the live ones then come from one source, with no gap between.
    """
    replayed: list[dict] | None = []  # until the stream's first book; then printed as they come

    def broken(why: str) -> None:
        print(f"stream broken: {why}; reconnecting", file=sys.stderr, flush=True)

    try:
        for event in events(base_url, symbol, timeout, last_event_id=REPLAYED, broken=broken):
            if event.event == "trade":
                trade = json.loads(event.data)
                if replayed is None:
                    _print_trade(trade)
                else:
                    replayed.append(trade)
            elif event.event == "book" and replayed is not None:
                print(f"{symbol}, oldest first\n{_trade_line('time (UTC)', 'shares', 'price')}")
                for trade in replayed[-limit:]:
                    _print_trade(trade)
                replayed = None
    except KeyboardInterrupt:
        return 0


def _print_trade(trade: dict) -> None:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(trade["time"]))
    print(_trade_line(when, trade["shares"], trade["price"]), flush=True)


def _trade_line(when: str, shares: str, price: str) -> str:
    return f"{when:<19}  {shares:>12}  {price:>12}"


def _book_element(book: dict) -> etree._Element:
    """The stream's JSON book as the `<book>` element `GET /symbols/SYM/book` answers."""
    element = etree.Element("book", sym=book["sym"])
    for side, levels in (("bid", book["bids"]), ("ask", book["asks"])):
        for level in levels:
            etree.SubElement(element, side, {name: str(value) for name, value in level.items()})
    return element
