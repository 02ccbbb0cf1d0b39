"""A worker's one source of market changes, fanned out to every stream it holds.

The database sees one statement per poll (`Exchange.poll_market`): for every
symbol a stream of this worker follows, its book, its latest trade and the
trades since the last poll; for every stream coming back with `Last-Event-ID`,
the trades it missed. Its cost grows with the symbols followed, never with
the streams. A stream that opens on a symbol already followed is served from
memory at once; one on a new symbol, at a deeper book or resuming waits for
the next poll, which then comes at once.

Each poll's trade events are rendered once per symbol and each changed book
once per depth, and every stream of the symbol is handed the same bytes.
Polls start at least MIN_POLL_GAP_S apart, so that no stream gets more than
10 books a second (SPEC §10), and the poller stops while no stream is open.

The feed runs on `threading`, which gevent's worker makes cooperative; the
tests run it on real threads.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError

from app.exchange.commands import PollMarket, WatchedSymbol
from app.exchange.results import Book, MarketChanges, NumberedTrade
from app.exchange.statements import MARKET_PAGE
from app.exchange.transactions import Exchange
from app.market.subscription import Subscription
from app.protocol.events import book_event, trade_event
from app.protocol.render import render_json
from app.storage.engine import first_line

log = logging.getLogger(__name__)

MIN_POLL_GAP_S = 0.1


class TooManyStreams(Exception):
    """The worker holds as many streams as it may: answered 503."""

    def __init__(self, limit: int):
        super().__init__(f"too many streams: this worker holds {limit}, its most")


@dataclass(frozen=True)
class StreamSettings:
    poll_s: float = 0.5  # between two polls
    heartbeat_s: float = 15.0  # the longest a stream stays silent
    buffer_bytes: int = 1 << 20  # what may wait for a stream's client before it is dropped
    max_streams: int = 800  # streams a worker holds at once


class Meter:
    """What the feed reports as it goes; the web tier's subclass counts it in the metrics."""

    def polled(self, seconds: float) -> None:
        pass

    def dropped(self) -> None:
        pass


@dataclass(eq=False)
class _Followed:
    """A symbol that streams follow, as the last poll saw it."""

    latest: int = 0  # the last trade handed to the live streams
    book: Book | None = None  # None until a poll has seen it
    depth: int = 0  # the depth that poll read
    sent: dict[int, bytes] = field(default_factory=dict)  # the last book's data, per depth
    live: set[Subscription] = field(default_factory=set)
    waiting: list[Subscription] = field(default_factory=list)  # for the next poll to start them


class MarketFeed:
    def __init__(self, exchange: Exchange, settings: StreamSettings, meter: Meter | None = None):
        self._exchange = exchange
        self._settings = settings
        self._meter = meter or Meter()
        self._lock = threading.Lock()
        self._followed: dict[str, _Followed] = {}
        self._starting: dict[str, list[Subscription]] = {}  # waiting when the poll in flight began
        self._open: set[Subscription] = set()
        self._poller: threading.Thread | None = None
        self._poll_soon = threading.Event()
        self._failing = False

    def subscribe(self, symbol: str, depth: int, last_seen: int | None = None) -> Subscription:
        """A stream of `symbol`'s market, its book `depth` levels a side; after the trades
        that followed `last_seen`, when given. Raises `TooManyStreams` at the limit."""
        settings = self._settings
        with self._lock:
            if len(self._open) >= settings.max_streams:
                raise TooManyStreams(settings.max_streams)
            subscription = Subscription(
                symbol, depth, last_seen, settings.buffer_bytes, settings.heartbeat_s
            )
            self._open.add(subscription)
            followed = self._followed.setdefault(symbol, _Followed())
            if last_seen is None and followed.book is not None and depth <= followed.depth:
                self._start(followed, subscription, followed.book, ())
            else:
                followed.waiting.append(subscription)
                self._poll_soon.set()
            if self._poller is None:
                self._poller = threading.Thread(target=self._run, name="market-feed", daemon=True)
                self._poller.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """The stream is over (its client left, or it ended): forget it."""
        subscription.end("closed")
        symbol = subscription.symbol
        with self._lock:
            self._open.discard(subscription)
            followed = self._followed.get(symbol)
            if followed is None:
                return
            for place in (followed.live, followed.waiting, self._starting.get(symbol, [])):
                if subscription in place:
                    place.remove(subscription)
            if not (followed.live or followed.waiting or self._starting.get(symbol)):
                del self._followed[symbol]

    def _run(self) -> None:
        last_poll = -MIN_POLL_GAP_S
        while True:
            self._poll_soon.wait(max(0.0, last_poll + self._settings.poll_s - time.monotonic()))
            time.sleep(max(0.0, last_poll + MIN_POLL_GAP_S - time.monotonic()))
            self._poll_soon.clear()
            with self._lock:
                if not self._followed:
                    self._poller = None
                    return
            last_poll = time.monotonic()
            try:
                self._poll()
            except Exception:  # a fault of the feed's own must not end every stream's news
                log.exception("market feed: a poll failed")

    def _poll(self) -> None:
        with self._lock:
            for symbol, followed in self._followed.items():
                self._starting[symbol] = followed.waiting
                followed.waiting = []
            starting = [s for waiting in self._starting.values() for s in waiting]
            watched = tuple(
                WatchedSymbol(
                    symbol,
                    max(s.depth for s in (*followed.live, *self._starting[symbol])),
                    followed.latest if followed.book is not None else None,
                )
                for symbol, followed in self._followed.items()
                if followed.live or self._starting[symbol]
            )
            resumed = {(s.symbol, s.last_seen) for s in starting if s.last_seen is not None}
        began = time.monotonic()
        try:
            changes = self._exchange.poll_market(PollMarket(watched, tuple(sorted(resumed))))
        except DBAPIError as error:
            self._failed(error)
            changes = None
        self._meter.polled(time.monotonic() - began)
        with self._lock:
            for watch in watched:
                if changes is not None:
                    self._apply(watch, changes)
            for symbol, waiting in self._starting.items():  # not started: wait for the next
                followed = self._followed.get(symbol)
                if followed is not None:
                    followed.waiting[:0] = [s for s in waiting if not s.ended]
            self._starting.clear()
        if changes is not None and self._failing:
            self._failing = False
            log.warning("market feed: the database answers again; streams go on")

    def _apply(self, watch: WatchedSymbol, changes: MarketChanges) -> None:
        """Hand the poll's news about one symbol to its streams, and start those waiting."""
        followed = self._followed.get(watch.symbol)
        if followed is None:
            return
        starting = self._starting.pop(watch.symbol, [])
        seen = changes.symbols.get(watch.symbol)
        if seen is None:  # the symbol is gone (its tables were emptied)
            for subscription in (*followed.live, *starting):
                subscription.end("gone")
            return
        trades = seen.trades
        if len(trades) == MARKET_PAGE:  # more than a page since the last poll: the rest next
            self._poll_soon.set()
        followed.latest = trades[-1].id if len(trades) == MARKET_PAGE else seen.latest_trade_id
        followed.book, followed.depth = seen.book, watch.depth
        books = {}
        for depth in {s.depth for s in followed.live}:
            data = render_json(_top(seen.book, depth))
            if data != followed.sent.get(depth):
                followed.sent[depth] = data
                books[depth] = book_event(_top(seen.book, depth))
        rendered = b"".join(trade_event(trade) for trade in trades)
        for subscription in list(followed.live):
            owed = _owed(trades, rendered, subscription.after)
            if self._hand(followed, subscription, owed, books.get(subscription.depth, b"")):
                subscription.after = max(subscription.after, trades[-1].id if trades else 0)
        for subscription in starting:
            if not subscription.ended:
                missed = changes.resumed.get((watch.symbol, subscription.last_seen), ())
                self._start(followed, subscription, seen.book, missed, seen.latest_trade_id)

    def _start(
        self,
        followed: _Followed,
        subscription: Subscription,
        book: Book,
        missed: tuple[NumberedTrade, ...],
        latest: int | None = None,
    ) -> None:
        """The stream's first events: the trades it missed, then the book (SPEC §10)."""
        latest = followed.latest if latest is None else latest
        top = _top(book, subscription.depth)
        followed.sent[subscription.depth] = render_json(top)
        first = b"".join(trade_event(trade) for trade in missed) + book_event(top, latest)
        subscription.after = latest
        followed.live.add(subscription)
        self._hand(followed, subscription, first)

    def _hand(
        self, followed: _Followed, subscription: Subscription, events: bytes, book: bytes = b""
    ) -> bool:
        """Push to a live stream; one that falls behind leaves the live ones."""
        if subscription.push(events, book):
            return True
        followed.live.discard(subscription)
        if subscription.ended == "behind":
            self._meter.dropped()
        return False

    def _failed(self, error: DBAPIError) -> None:
        if not self._failing:
            self._failing = True
            log.error("market feed: database unavailable: %s; streams wait", first_line(error))


def _top(book: Book, depth: int) -> Book:
    return Book(book.symbol, book.bids[:depth], book.asks[:depth])


def _owed(trades: tuple[NumberedTrade, ...], rendered: bytes, after: int) -> bytes:
    """The poll's trade events a stream does not have yet: usually all of them, rendered once."""
    if not trades or after < trades[0].id:
        return rendered
    return b"".join(trade_event(trade) for trade in trades if trade.id > after)
