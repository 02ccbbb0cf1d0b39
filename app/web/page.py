"""`GET /market` and `GET /market/{sym}`: the market in a browser, served by the service itself.

Plain HTML, CSS and a little JavaScript from app/web/market/, read once at
start: no build step, and nothing fetched from elsewhere, which the
Content-Security-Policy header also tells the browser. The index lists the
symbols with their last price (`GET /symbols`); a symbol's page shows its
book as a price ladder and its tape, live through its stream (`EventSource`
on `GET /symbols/SYM/stream`), and reconnects when the stream breaks.
"""

from pathlib import Path

import falcon

from app.exchange.errors import Reason, Rejected
from app.exchange.transactions import Exchange
from app.protocol.numbers import symbol

PAGES = Path(__file__).with_name("market")
POLICY = (
    "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


class Asset:
    """One file of the page, as it is in the package."""

    def __init__(self, path: Path):
        self._content = path.read_bytes()
        self._type = TYPES[path.suffix]

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = self._type
        resp.set_header("Content-Security-Policy", POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.data = self._content


class MarketPage:
    def __init__(self, exchange: Exchange):
        self._exchange = exchange
        self._page = Asset(PAGES / "market.html")  # both views; its script shows the one asked
        self.assets = {name: Asset(PAGES / name) for name in ("market.css", "market.js")}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._page.on_get(req, resp)

    def on_get_symbol(self, req: falcon.Request, resp: falcon.Response, sym: str) -> None:
        if not self._exchange.symbol_exists(symbol(sym, "symbol")):
            raise Rejected(Reason.NO_SUCH_SYMBOL)
        self._page.on_get(req, resp)
