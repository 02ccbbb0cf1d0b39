"""SPEC §10's events as a stream carries them: Server-Sent Events whose data is §7's JSON."""

import json
from decimal import Decimal

from app.exchange.results import Book, NumberedTrade, PriceLevel, Trade
from app.protocol.events import HEARTBEAT, book_event, trade_event

BOOK = Book("X", (PriceLevel(Decimal("127"), Decimal("200"), 1),), ())
TRADE = NumberedTrade(41, Trade(Decimal("200"), Decimal("125.50"), 1795320649))


def fields(event: bytes) -> list[tuple[str, str]]:
    """An event's lines as (field, value), checking it is one event ended by a blank line."""
    assert event.endswith(b"\n\n") and b"\n\n" not in event[:-2]
    return [tuple(line.split(": ", 1)) for line in event[:-2].decode().split("\n")]


def test_a_trade_event_has_the_executions_id_and_the_trade_as_json():
    assert fields(trade_event(TRADE)) == [
        ("event", "trade"),
        ("id", "41"),
        ("data", '{"shares": "200", "price": "125.5", "time": 1795320649}'),
    ]


def test_a_book_event_carries_the_json_of_the_book():
    event, data = fields(book_event(BOOK))
    assert event == ("event", "book")
    assert json.loads(data[1]) == {
        "sym": "X",
        "bids": [{"price": "127", "shares": "200", "orders": 1}],
        "asks": [],
    }


def test_the_book_that_starts_a_stream_carries_the_id_of_the_last_trade_it_reflects():
    assert fields(book_event(BOOK, 41))[:2] == [("event", "book"), ("id", "41")]


def test_a_heartbeat_is_a_comment_line():
    assert HEARTBEAT.startswith(b":") and HEARTBEAT.endswith(b"\n\n")
