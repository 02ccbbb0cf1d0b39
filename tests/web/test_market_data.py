"""SPEC §10 against a real gunicorn: the symbol's stream as Server-Sent Events, and its limits.

Most tests share one server of one worker with a short heartbeat, a small
buffer per stream, few streams and one read slot, so that each limit is
quick to reach; each test trades a symbol of its own.
"""

import contextlib
import itertools
import json
import select
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from lxml import etree

from tests.market.events import books, parse, prices, read_for, read_until, trades
from tests.shim.wire import connect, read_to_end
from tests.web.servers import address_of, error_reply, running_gunicorn
from tests.web.test_http import open_accounts, post
from tests.web.test_metrics import increase, scrape

HEARTBEAT_S = 0.5
MAX_STREAMS = 6
PER_CLIENT = MAX_STREAMS + 2
BUFFER_BYTES = 16384
SYMBOLS = (f"M{n}" for n in itertools.count())
EVENTS = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def stream_server(database_url, schema_engine, tmp_path_factory):
    log = tmp_path_factory.mktemp("streams") / "gunicorn.log"
    with running_gunicorn(
        database_url,
        log,
        EXCHANGE_WORKERS="1",
        EXCHANGE_READ_CONCURRENCY="1",
        EXCHANGE_STREAM_HEARTBEAT=str(HEARTBEAT_S),
        EXCHANGE_MAX_STREAMS=str(MAX_STREAMS),
        EXCHANGE_MAX_CONNECTIONS_PER_CLIENT=str(PER_CLIENT),
        EXCHANGE_STREAM_BUFFER_BYTES=str(BUFFER_BYTES),
    ) as server:
        yield server.url


class Market:
    """A symbol of its own on the server, two accounts trading it over `POST /`."""

    def __init__(self, url: str):
        self.url = url
        self.symbol = next(SYMBOLS)
        self.post(
            '<create><account id="1" balance="1000000000"/><account id="2" balance="0"/>'
            f'<symbol sym="{self.symbol}"><account id="2">1000000</account></symbol></create>'
        )

    def post(self, document: str) -> float:
        """Send the document; when its reply came."""
        reply = requests.post(self.url, data=document.encode(), timeout=30)
        assert reply.status_code == 200 and b"<error" not in reply.content, reply.content
        return time.monotonic()

    def orders(self, account: str, *orders: tuple[int, str]) -> float:
        placed = "".join(
            f'<order sym="{self.symbol}" amount="{amount}" limit="{limit}"/>'
            for amount, limit in orders
        )
        return self.post(f'<transactions id="{account}">{placed}</transactions>')

    def trade(self, price: str, times: int = 1) -> float:
        """`times` trades of one share at `price`: sells resting, then one buy taking them."""
        self.orders("2", *[(-1, price)] * times)
        return self.orders("1", (times, price))

    def book(self, depth: int = 10) -> dict:
        return requests.get(
            f"{self.url}/symbols/{self.symbol}/book",
            params={"depth": depth},
            headers={"Accept": "application/json"},
            timeout=30,
        ).json()

    @contextlib.contextmanager
    def stream(self, depth: int | None = None, last_event_id: str | None = None):
        """The stream, open; its chunks as they come (a read waits 5 s at most)."""
        headers = dict(EVENTS, **({"Last-Event-ID": last_event_id} if last_event_id else {}))
        params = {"depth": depth} if depth else {}
        url = f"{self.url}/symbols/{self.symbol}/stream"
        with requests.get(url, params=params, headers=headers, stream=True, timeout=5) as reply:
            assert reply.status_code == 200, reply.content
            yield reply.iter_content(chunk_size=None)


@pytest.fixture
def market(stream_server, engine):
    return Market(stream_server)


def first_events(chunks) -> list:
    return read_until(chunks, lambda events: events)


def test_a_stream_starts_with_the_book_as_its_json(market):
    market.orders("1", (5, "9.5"), (3, "9"))
    market.orders("2", (-2, "11"))
    url = f"{market.url}/symbols/{market.symbol}/stream"
    with requests.get(url, params={"depth": 1}, headers=EVENTS, stream=True, timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/event-stream")
        assert reply.headers["Cache-Control"] == "no-cache"
        [event] = first_events(reply.iter_content(chunk_size=None))
    assert event.event == "book"
    assert json.loads(event.data) == market.book(depth=1)


def test_trades_arrive_oldest_first_with_growing_ids_within_a_second_of_the_reply(market):
    with market.stream() as chunks:
        start = first_events(chunks)
        replied = [market.trade(price) for price in ("10", "10.5", "11")]
        received = read_until(chunks, lambda events: len(trades(events)) == 3)
        arrived = time.monotonic()
    assert prices(received) == ["10", "10.5", "11"]
    ids = [int(start[0].id)] + [number for number, _ in trades(received)]
    assert ids == sorted(set(ids))
    assert arrived - replied[-1] < 1.0
    assert all(set(trade) == {"shares", "price", "time"} for _, trade in trades(received))


def test_a_book_event_comes_when_the_levels_shown_change_and_only_then(market):
    market.orders("1", (1, "10"))
    with market.stream(depth=1) as chunks:
        first_events(chunks)
        market.orders("1", (1, "9"))  # below the level shown
        quiet = read_for(chunks, 3 * HEARTBEAT_S)
        market.orders("1", (1, "10"))
        changed = read_until(chunks, lambda events: books(events))
    assert quiet == []
    assert books(changed) == [market.book(depth=1)]


def test_a_burst_of_trades_brings_every_trade_and_at_most_ten_books_a_second(market):
    final = {"sym": market.symbol, "bids": [{"price": "9", "shares": "1", "orders": 1}], "asks": []}
    with market.stream() as chunks:
        first_events(chunks)
        began = time.monotonic()
        market.trade("10", times=40)
        market.orders("1", (1, "9"))
        received = read_until(
            chunks, lambda events: len(trades(events)) == 40 and books(events)[-1:] == [final]
        )
        took = time.monotonic() - began
    assert prices(received) == ["10"] * 40
    assert len(books(received)) <= 10 * took + 1


def test_a_quiet_stream_gets_a_comment_line_every_heartbeat(market):
    with market.stream() as chunks:
        first_events(chunks)
        began = time.monotonic()
        comments = [next(chunks) for _ in range(2)]
        took = time.monotonic() - began
    assert all(comment.startswith(b":") for comment in comments)
    assert parse(comments) == []
    assert took < 4 * HEARTBEAT_S


def test_a_client_back_with_last_event_id_gets_the_trades_it_missed_then_the_book(market):
    with market.stream() as chunks:
        first_events(chunks)
        market.trade("10")
        last = trades(read_until(chunks, lambda events: trades(events)))[-1][0]
    market.trade("11")
    market.trade("12")
    with market.stream(last_event_id=str(last)) as chunks:
        back = read_until(chunks, lambda events: books(events))
    assert [event.event for event in back] == ["trade", "trade", "book"]
    assert prices(back) == ["11", "12"]
    assert json.loads(back[-1].data) == market.book()


def test_a_last_event_id_that_is_no_trades_id_starts_the_stream_afresh(market):
    with market.stream(last_event_id="yesterday") as chunks:
        assert [event.event for event in first_events(chunks)] == ["book"]


def test_an_unknown_symbol_is_a_404_before_any_event(stream_server):
    reply = requests.get(f"{stream_server}/symbols/NOPE/stream", headers=EVENTS, timeout=5)
    assert reply.status_code == 404
    assert reply.content.endswith(b"<results><error>no such symbol</error></results>\n")


def test_a_client_that_accepts_no_event_stream_gets_406(market):
    url = f"{market.url}/symbols/{market.symbol}/stream"
    reply = requests.get(url, headers={"Accept": "application/json"}, timeout=5)
    assert reply.status_code == 406


def test_a_stream_that_stops_reading_is_dropped_without_touching_the_others(market):
    """Large books fill the buffers between the server and a client that reads nothing;
    then trades pile up for it past the server's limit."""
    before = scrape(market.url)
    with market.stream(depth=1) as chunks, not_reading(market, depth=1000) as sleeper:
        first_events(chunks)
        market.orders("1", *[(1, f"{price}.5") for price in range(1, 401)])
        for price in range(401, 421):
            market.orders("1", (1, f"{price}"))  # a new book for the sleeper each time
            time.sleep(0.05)
        for _ in range(4):  # each burst below the limit, all four past it
            market.trade("500", times=100)
            time.sleep(0.3)
        after_drop = read_until(chunks, lambda events: len(trades(events)) == 400)
        dropped = increase(before, scrape(market.url), "exchange_streams_dropped_total")
        sleeper.settimeout(5)
        left_for_it = read_to_end(sleeper)  # what the kernel held for it, then the end
    assert dropped == 1
    assert prices(after_drop) == ["500"] * 400
    assert b"event: trade" not in left_for_it[-BUFFER_BYTES:]


@contextlib.contextmanager
def not_reading(market, depth: int):
    """A stream whose client never reads, with a small receive buffer."""
    with socket.socket() as sleeper:
        sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sleeper.connect(address_of(market.url))
        sleeper.sendall(
            f"GET /symbols/{market.symbol}/stream?depth={depth} HTTP/1.1\r\n"
            "Host: x\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        yield sleeper


@contextlib.contextmanager
def open_streams(market, count: int):
    """`count` streams of the market, each past its first event, open until the block ends
    (a stream's chunks kept: requests closes the connection of chunks let go)."""
    with contextlib.ExitStack() as held:
        streams = [held.enter_context(market.stream()) for _ in range(count)]
        for chunks in streams:
            first_events(chunks)
        yield streams
    wait_until_no_stream_is_open(market.url)


def test_streams_past_the_workers_limit_are_refused_with_503(market):
    before = scrape(market.url)
    with open_streams(market, MAX_STREAMS):
        url = f"{market.url}/symbols/{market.symbol}/stream"
        with requests.get(url, headers=EVENTS, stream=True, timeout=5) as refused:
            assert refused.status_code == 503
            body = refused.content
        during = scrape(market.url)
    assert body.endswith(
        b"<results><error>too many streams: this worker holds 6, its most</error></results>\n"
    )
    assert increase(before, during, "exchange_streams_refused_total") == 1
    assert during[("exchange_streams", ())] == MAX_STREAMS
    with market.stream() as chunks:
        first_events(chunks)


def test_open_streams_hold_no_request_slot(market):
    """One worker, one read slot: reads are answered while streams are open."""
    with open_streams(market, MAX_STREAMS - 1):
        began = time.monotonic()
        with ThreadPoolExecutor(2) as pool:  # within the cap of connections per client
            reads = list(pool.map(lambda _: market.book(), range(8)))
        took = time.monotonic() - began
    assert all(read["sym"] == market.symbol for read in reads)
    assert took < 2.0


def test_streams_count_against_the_connection_cap_per_client(market):
    source = "127.0.0.9"
    with contextlib.ExitStack() as held:
        for _ in range(MAX_STREAMS):
            stream = held.enter_context(connect(address_of(market.url), 5, source))
            stream.sendall(
                f"GET /symbols/{market.symbol}/stream HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            assert stream.recv(65536).startswith(b"HTTP/1.1 200 OK")
        others = [held.enter_context(connect(address_of(market.url), 5, source)) for _ in range(3)]
        time.sleep(0.3)  # the worker accepts, then holds or refuses each
        readable, _, _ = select.select(others, [], [], 0)
        assert len(readable) == 1
        assert error_reply(read_to_end(readable[0])) == (
            503,
            "connection refused: too many from client",
        )


def wait_until_no_stream_is_open(url: str, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while scrape(url)[("exchange_streams", ())] > 0:
        assert time.monotonic() < deadline, "a stream outlived its client"
        time.sleep(0.05)


def test_a_client_leaving_frees_its_stream_at_once(server, engine):
    """On a server whose heartbeat (15 s) would take long to notice."""
    market = Market(server)
    with market.stream() as chunks:
        first_events(chunks)
        assert scrape(server)[("exchange_streams", ())] >= 1
    wait_until_no_stream_is_open(server)


def test_a_stopping_worker_ends_its_streams_at_once(database_url, engine, tmp_path):
    with running_gunicorn(database_url, tmp_path / "gunicorn.log", EXCHANGE_WORKERS="1") as server:
        market = Market(server.url)
        with market.stream() as chunks:
            first_events(chunks)
            began = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            rest = list(chunks)  # until the server ends the stream
            ended = time.monotonic() - began
        assert parse(rest) == []
        assert server.process.wait(10) == 0
    assert ended < 3


# -- GET /symbols, and the checks made before a stream opens (in-process) -------------


def test_symbols_lists_each_symbol_with_its_last_trade_as_xml(client):
    open_accounts(client)
    post(client, '<transactions id="2"><order sym="X" amount="-2" limit="10.50"/></transactions>')
    post(client, '<transactions id="1"><order sym="X" amount="2" limit="11"/></transactions>')
    post(client, '<create><symbol sym="NEW"><account id="2">5</account></symbol></create>')
    response = client.simulate_get("/symbols")
    assert response.headers["content-type"].startswith("application/xml")
    root = etree.fromstring(response.content)
    assert root.tag == "symbols"
    assert [dict(child.attrib) for child in root][0] == {"sym": "NEW"}
    assert dict(root[1].attrib).keys() == {"sym", "price", "time"}
    assert (root[1].get("sym"), root[1].get("price")) == ("X", "10.5")


def test_symbols_as_json_has_null_for_a_symbol_that_never_traded(client):
    open_accounts(client)
    response = client.simulate_get("/symbols", headers={"Accept": "application/json"})
    assert json.loads(response.content) == {"symbols": [{"sym": "X", "price": None, "time": None}]}


def test_a_malformed_depth_is_a_400_before_any_event(client):
    open_accounts(client)
    response = client.simulate_get("/symbols/X/stream", params={"depth": "0"}, headers=EVENTS)
    assert response.status_code == 400
    assert b"malformed depth '0'" in response.content
