"""`GET /symbols/{sym}/stream`: a symbol's market as Server-Sent Events (SPEC §10).

The request is checked like a book's (`sym`, `depth`) and answered 404 for an
unknown symbol before any event; then it becomes a subscription to the
worker's market feed (app/market/feed.py), written as its events come. The
worker runs the stream outside its request slots and closes the connection
when the stream ends (app/web/worker.py). Streams are public market data.
"""

from collections.abc import Callable, Iterator

import falcon

from app.exchange.errors import Reason, Rejected
from app.exchange.transactions import Exchange
from app.market.feed import MarketFeed
from app.market.subscription import Subscription
from app.protocol import InvalidValue, parse_read
from app.protocol.numbers import order_id
from app.web import metrics

EVENT_STREAM = "text/event-stream"


class StreamResource:
    def __init__(self, exchange: Exchange, feed: MarketFeed):
        self._exchange = exchange
        self._feed = feed

    def on_get(self, req: falcon.Request, resp: falcon.Response, sym: str) -> None:
        req.context.kind = "stream"
        if not req.client_accepts(EVENT_STREAM):
            raise falcon.HTTPNotAcceptable(description=f"this resource is {EVENT_STREAM}")
        depth = req.get_param("depth", allow_multiple=False)
        book = parse_read("book", {"sym": sym, "depth": depth})
        if not self._exchange.symbol_exists(book.symbol):
            raise Rejected(Reason.NO_SUCH_SYMBOL)
        subscription = self._feed.subscribe(book.symbol, book.depth, _last_event_id(req))
        resp.content_type = EVENT_STREAM
        resp.cache_control = ["no-cache"]
        resp.stream = EventStream(subscription, self._feed)


def _last_event_id(req: falcon.Request) -> int | None:
    """The id of the last trade the client got; one that is no trade's id is ignored, and the
    stream starts afresh, as for a client that sent none."""
    sent = req.get_header("Last-Event-ID")
    try:
        return None if sent is None else order_id(sent, "Last-Event-ID")
    except InvalidValue:
        return None


class EventStream:
    """A stream's WSGI body: its subscription's events, written as they come.

    `close` (the server's, once the stream is over) leaves the feed; `end`
    ends it at once (the worker stops, the client left); `hold` gives it a
    way to close its connection at once should it be dropped.
    """

    def __init__(self, subscription: Subscription, feed: MarketFeed):
        self._subscription = subscription
        self._feed = feed
        self._open = True
        metrics.STREAMS.inc()

    def __iter__(self) -> Iterator[bytes]:
        return self._subscription.events()

    def hold(self, hang_up: Callable[[], None]) -> None:
        self._subscription.hang_up = hang_up

    def end(self, reason: str) -> None:
        self._subscription.end(reason)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._feed.unsubscribe(self._subscription)
            metrics.STREAMS.dec()
