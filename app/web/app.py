"""The Falcon application factory: wires config, engine, exchange and routes."""

import logging

import falcon
from sqlalchemy.exc import DBAPIError

from app.auth.gate import Gate
from app.auth.store import KeyStore, RateLimit
from app.config import Config
from app.exchange.errors import Rejected
from app.exchange.results import Failed
from app.exchange.service import database_failure
from app.exchange.transactions import Exchange
from app.idempotency.claims import KeyReused, RequestInProgress
from app.idempotency.requests import Requests
from app.market.feed import MarketFeed, StreamSettings, TooManyStreams
from app.protocol import DocumentTooLarge, InvalidValue, MalformedDocument
from app.storage.engine import database_engine, exchange_engine, first_line
from app.web import authentication, metrics
from app.web.media import HANDLERS, XML, negotiated
from app.web.observe import RequestObserver
from app.web.outage import DatabaseOutage
from app.web.page import MarketPage
from app.web.resources import (
    READINESS_S,
    LivenessResource,
    QuotesResource,
    ReadinessResource,
    ReportResource,
    RequestsResource,
)
from app.web.stream import StreamResource

log = logging.getLogger(__name__)


def create_app(config: Config) -> falcon.App:
    """Build the app; called in each worker after fork, so each owns its engine and pool."""
    engine = exchange_engine(config.database_url, config.pool_size, config.deadline)
    exchange = Exchange(engine, config.max_attempts, config.slow_ms / 1000, config.max_open_orders)
    gate = _gate(config, engine)
    metrics.watch_pool(engine, config.pool_size)
    observer = RequestObserver(metrics.ExchangeCounters(exchange), config.slow_ms, DatabaseOutage())

    app = falcon.App(media_type=XML, middleware=[observer])
    app.resp_options.media_handlers.update(HANDLERS)
    requests = Requests(exchange, config.idempotency_lease_seconds)
    app.add_route("/", RequestsResource(requests, gate, config.max_body_bytes))
    app.add_route("/symbols/{sym}/book", ReportResource(exchange, "book", ("depth",)))
    app.add_route("/symbols/{sym}/trades", ReportResource(exchange, "trades", ("limit",)))
    app.add_route("/accounts/{id}", ReportResource(exchange, "account", gate=gate))
    app.add_route(
        "/accounts/{id}/orders", ReportResource(exchange, "orders", ("sym", "after"), gate)
    )
    app.add_route("/symbols", QuotesResource(exchange))
    app.add_route("/symbols/{sym}/stream", StreamResource(exchange, _market_feed(config)))
    page = MarketPage(exchange)
    app.add_route("/market", page)
    app.add_route("/market/{sym}", page, suffix="symbol")
    for name, asset in page.assets.items():  # named with a dot: never a symbol
        app.add_route(f"/market/{name}", asset)
    readiness = ReadinessResource(_readiness_exchange(config.database_url))
    app.add_route("/livez", LivenessResource())
    app.add_route("/readyz", readiness)
    app.add_route("/health", readiness)
    app.add_route("/metrics", metrics.MetricsResource())
    app.add_error_handler(MalformedDocument, _reply_error(falcon.HTTP_400))
    app.add_error_handler(DocumentTooLarge, _reply_error(falcon.HTTP_413))
    app.add_error_handler(RequestInProgress, _reply_error(falcon.HTTP_409))
    app.add_error_handler(KeyReused, _reply_error(falcon.HTTP_422))
    app.add_error_handler(InvalidValue, _reply_error(falcon.HTTP_400, negotiate=True))
    app.add_error_handler(Rejected, _reply_error(falcon.HTTP_404, negotiate=True))
    app.add_error_handler(TooManyStreams, _too_many_streams)
    app.add_error_handler(DBAPIError, _database_unavailable)
    authentication.register(app)
    app.set_error_serializer(_serialize_http_error)
    return app


def _gate(config: Config, engine) -> Gate:
    """Checks proofs of a key when authentication is on; lets everything through when off."""
    if not config.auth:
        return Gate()
    limit = None
    if config.rate_limit > 0:
        limit = RateLimit(config.rate_limit, config.rate_burst or max(config.rate_limit, 1))
    return Gate(KeyStore(engine, limit), config.auth_secret, config.auth_skew_s)


def _market_feed(config: Config) -> MarketFeed:
    """The worker's one source of market changes, on a database connection of its own, so
    that its polls never wait for a request slot's connection nor take one."""
    settings = StreamSettings(
        poll_s=config.stream_poll_s,
        heartbeat_s=config.stream_heartbeat_s,
        buffer_bytes=config.stream_buffer_bytes,
        max_streams=config.max_streams,
    )
    feed_exchange = Exchange(exchange_engine(config.database_url, 1), config.max_attempts)
    return MarketFeed(feed_exchange, settings, metrics.FeedMeter())


def _readiness_exchange(url: str) -> Exchange:
    """Readiness asks on a connection of its own, so that it never waits behind requests,
    and gives up on the pool as on the database within READINESS_S."""
    engine = database_engine(url, pool_size=1, timeout_s=READINESS_S, pool_timeout=READINESS_S)
    return Exchange(engine)


def _reply_error(status: str, negotiate: bool = False):
    """A handler answering an error with one `<error>` (or, negotiated, maybe JSON).

    Errors of a request document are always XML, its protocol's format; the
    errors of reads (a malformed parameter, an unknown symbol or account) are
    in the format the client asked for. Reads only refuse what is not there.
    """

    def handle(req, resp, error, params):
        req.context.error = str(error)
        resp.status = status
        resp.content_type = negotiated(req) if negotiate else XML
        resp.media = Failed(str(error))

    return handle


def _database_unavailable(req, resp, error, params):
    """Nothing of the request ran (see `answer`): not applied. Logged by the observer's
    DatabaseOutage: once when it begins, not per request."""
    failure = database_failure(error)
    req.context.error = failure.reason
    req.context.database_error = first_line(error)
    resp.status = falcon.HTTP_503
    resp.content_type = negotiated(req)
    resp.media = failure


def _too_many_streams(req, resp, error, params):
    """A worker's streams are capped, as its connections are: a refusal, not an outage."""
    metrics.STREAMS_REFUSED.inc()
    req.context.error = str(error)
    req.context.outcome = "refused"
    resp.status = falcon.HTTP_503
    resp.content_type = negotiated(req)
    resp.media = Failed(str(error))


def _serialize_http_error(req, resp, error: falcon.HTTPError) -> None:
    """Falcon's own errors (404, 405, ...) in the same shape as ours, in the format asked for."""
    message = error.title if not error.description else f"{error.title}: {error.description}"
    resp.content_type = negotiated(req)
    resp.media = Failed(message)
