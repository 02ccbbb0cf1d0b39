"""A symbol's market as Server-Sent Events (SPEC §10): the bytes of a stream.

    event: book
    id: 41
    data: {"sym": "SPY", "bids": [...], "asks": [...]}

    event: trade
    id: 42
    data: {"shares": "4", "price": "10.25", "time": 1795320649}

    : heartbeat

Each event ends with a blank line; its data is one line of JSON, the same
fields as §7's JSON. A trade's id is its execution's, which grows with every
trade of the symbol. The book that starts a stream carries the id of the last
trade it reflects, so that a client that saw no trade yet can still resume
from it; later books carry none, and the last id a client saw stays a trade's.
"""

import json

from app.exchange.results import Book, NumberedTrade
from app.protocol.render import render_json, trade_fields

HEARTBEAT = b": heartbeat\n\n"


def book_event(book: Book, last_trade_id: int | None = None) -> bytes:
    """The book as an event; with the id of the last trade it reflects when it starts a stream."""
    return _event(b"book", render_json(book), last_trade_id)


def trade_event(numbered: NumberedTrade) -> bytes:
    return _event(b"trade", json.dumps(trade_fields(numbered.trade)).encode(), numbered.id)


def _event(name: bytes, data: bytes, event_id: int | None) -> bytes:
    identity = b"" if event_id is None else b"id: %d\n" % event_id
    return b"event: %s\n%sdata: %s\n\n" % (name, identity, data)
