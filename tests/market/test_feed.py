"""A worker's market feed: one poll per interval for all its streams, fanned out to each."""

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.market.feed import MarketFeed, Meter, StreamSettings, TooManyStreams
from tests.market.events import books, prices, read_until, trades

POLL_S = 0.1


class CountingMeter(Meter):
    def __init__(self):
        self.polls = 0
        self.drops = 0

    def polled(self, seconds: float) -> None:
        self.polls += 1

    def dropped(self) -> None:
        self.drops += 1


@pytest.fixture
def meter():
    return CountingMeter()


def new_feed(traders, meter, **settings) -> MarketFeed:
    chosen = {"poll_s": POLL_S, "heartbeat_s": 0.1, "max_streams": 50, **settings}
    return MarketFeed(traders.exchange, StreamSettings(**chosen), meter)


@pytest.fixture
def feed(traders, meter):
    return new_feed(traders, meter)


@contextlib.contextmanager
def streams(feed, count: int = 1, symbol: str = "X", depth: int = 10, last_seen=None):
    """`count` subscriptions, each with its events, left when the block ends."""
    subscribed = [feed.subscribe(symbol, depth, last_seen) for _ in range(count)]
    try:
        yield [(subscription, subscription.events()) for subscription in subscribed]
    finally:
        for subscription in subscribed:
            feed.unsubscribe(subscription)


def trade(traders, price: int) -> None:
    traders.sell("2", "X", 1, price)
    traders.buy("1", "X", 1, price)


def test_a_stream_begins_with_the_book_then_gets_each_trade_oldest_first(feed, traders):
    traders.buy("1", "X", 5, 9)
    with streams(feed) as [(_, chunks)]:
        first = read_until(chunks, lambda events: events)
        assert books(first) == [
            {"sym": "X", "bids": [{"price": "9", "shares": "5", "orders": 1}], "asks": []}
        ]
        trade(traders, 10)
        trade(traders, 11)
        later = read_until(chunks, lambda events: len(trades(events)) == 2)
    assert prices(later) == ["10", "11"]
    ids = [number for number, _ in trades(later)]
    assert ids == sorted(ids) and ids[0] > int(first[0].id)


def test_the_database_sees_one_poll_per_interval_however_many_streams_there_are(
    feed, traders, meter, sent
):
    def polls_while(count: int) -> int:
        with streams(feed, count) as subscribed:
            for _, chunks in subscribed:
                read_until(chunks, lambda events: events)
            before = meter.polls
            time.sleep(10 * POLL_S)
            return meter.polls - before

    one, many = polls_while(1), polls_while(40)
    assert 5 <= one <= 12 and 5 <= many <= 12
    polls_sent = [statement for statement in sent if "poll_market" in statement]
    assert meter.polls <= len(polls_sent) <= meter.polls + 1  # one may be on its way


def test_a_stream_on_a_symbol_already_followed_starts_without_a_poll(feed, traders, meter):
    with streams(feed) as [(_, chunks)]:
        read_until(chunks, lambda events: events)
        with streams(feed, depth=3) as [(_, later)]:
            polls = meter.polls
            assert books(read_until(later, lambda events: events))
            assert meter.polls - polls <= 1  # one at most, that happened to be due


def test_a_stream_that_reads_nothing_is_dropped_and_the_others_get_everything(traders, meter):
    feed = new_feed(traders, meter, buffer_bytes=2000)  # about 40 trade events
    with streams(feed, 2) as [(reader, chunks), (sleeper, _)], ThreadPoolExecutor(1) as pool:
        read_until(chunks, lambda events: events)
        reading = pool.submit(read_until, chunks, lambda events: len(trades(events)) == 50)
        for _ in range(50):  # paced: a poll brings the reader a few only
            trade(traders, 10)
            time.sleep(POLL_S / 5)
        got = reading.result()
    assert sleeper.ended == "behind" and meter.drops == 1
    assert reader.ended == "closed"
    assert len({number for number, _ in trades(got)}) == 50


def test_a_stream_coming_back_gets_the_trades_it_missed_then_the_book(feed, traders):
    trade(traders, 10)
    with streams(feed) as [(_, chunks)]:
        seen = read_until(chunks, lambda events: events)[0].id
    trade(traders, 11)
    trade(traders, 12)
    with streams(feed, last_seen=int(seen)) as [(_, chunks)]:
        back = read_until(chunks, lambda events: books(events))
    assert [e.event for e in back] == ["trade", "trade", "book"]
    assert prices(back) == ["11", "12"]
    assert back[-1].id == back[-2].id


def test_streams_past_the_limit_are_refused_until_one_leaves(traders, meter):
    feed = MarketFeed(traders.exchange, StreamSettings(max_streams=2), meter)
    with streams(feed, 2):
        with pytest.raises(TooManyStreams):
            feed.subscribe("X", 10)
    with streams(feed, 2):
        pass


def test_polls_stop_when_the_last_stream_leaves(feed, traders, meter):
    with streams(feed) as [(_, chunks)]:
        read_until(chunks, lambda events: events)
    time.sleep(2 * POLL_S)
    polls = meter.polls
    time.sleep(3 * POLL_S)
    assert meter.polls == polls
    assert not any(thread.name == "market-feed" for thread in threading.enumerate())
