"""Falcon resources: read the body, make one domain call, write the reply."""

import falcon
from sqlalchemy import Engine, text

from app.exchange.service import answer
from app.exchange.transactions import Exchange
from app.protocol import DocumentTooLarge, parse_request, render_results

XML = "application/xml"


class RequestsResource:
    """`POST /`: a `<create>` or `<transactions>` document in, `<results>` out."""

    def __init__(self, exchange: Exchange, max_body_bytes: int):
        self._exchange = exchange
        self._max_body_bytes = max_body_bytes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = parse_request(self._read_body(req), self._max_body_bytes)
        resp.content_type = XML
        resp.data = render_results(answer(self._exchange, request))

    def _read_body(self, req: falcon.Request) -> bytes:
        """Read at most one byte past the limit, whether the length is declared or chunked."""
        limit = self._max_body_bytes
        if req.content_length is not None:
            if req.content_length > limit:
                raise DocumentTooLarge(limit)
            return req.bounded_stream.read()
        return req.stream.read(limit + 1)


class HealthResource:
    """`GET /health`: 200 when the database answers, 503 when it does not."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        resp.content_type = XML
        resp.data = b'<?xml version="1.0" encoding="UTF-8"?>\n<health database="ok"/>\n'
