"""One stream's buffer: trades in order, the latest book wins, bounded, heartbeats when quiet."""

import time

from app.market.subscription import Subscription
from app.protocol.events import HEARTBEAT


def subscription(limit: int = 1000, heartbeat_s: float = 60.0) -> Subscription:
    return Subscription("X", 10, None, limit, heartbeat_s)


def test_what_is_queued_is_written_in_one_piece_trades_first_then_the_book():
    stream = subscription()
    stream.push(b"trade 1\n\n", b"book A\n\n")
    stream.push(b"trade 2\n\n")
    assert next(stream.events()) == b"trade 1\n\ntrade 2\n\nbook A\n\n"


def test_the_latest_book_replaces_one_not_yet_written():
    stream = subscription()
    stream.push(b"", b"book A\n\n")
    stream.push(b"", b"book B\n\n")
    assert next(stream.events()) == b"book B\n\n"


def test_a_stream_owed_more_than_its_limit_is_dropped_and_its_connection_closed():
    hung_up = []
    stream = subscription(limit=20)
    stream.hang_up = lambda: hung_up.append(True)
    assert stream.push(b"x" * 15)
    assert not stream.push(b"y" * 15)
    assert stream.ended == "behind" and hung_up == [True]
    assert list(stream.events()) == []


def test_books_do_not_pile_up_so_a_large_one_drops_no_stream():
    stream = subscription(limit=20)
    assert stream.push(b"", b"b" * 100)
    assert stream.push(b"", b"c" * 100)
    assert stream.ended is None


def test_a_quiet_stream_gets_a_heartbeat_after_the_heartbeat_time():
    stream = subscription(heartbeat_s=0.1)
    started = time.monotonic()
    assert next(stream.events()) == HEARTBEAT
    assert 0.1 <= time.monotonic() - started < 1.0


def test_an_ended_stream_stops_at_once():
    stream = subscription()
    stream.push(b"trade 1\n\n")
    stream.end("shutdown")
    assert list(stream.events()) == []
