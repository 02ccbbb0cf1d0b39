"""Load for the exchange: many clients trading at once, over HTTP or the legacy TCP protocol.

    make run                       # in one terminal
    make load                      # in another: 32 HTTP clients for 60 s, CSV under var/load/
    make load LOAD_USER=LegacyTcpUser                   # the same through the shim
    .venv/bin/locust -f locustfile.py --headless -u 32 -r 32 -t 60s \\
        --host http://127.0.0.1:8000 LegacyTcpUser      # what that runs, minus the CSV

Each user is one client in a closed loop (no think time). Every request is one
`<transactions>` document of one of the client's own accounts with
LOAD_CHILDREN children, each drawn as: 60 % an order (buy or sell at random,
1-100 shares, limits around 100.00 so that most orders execute at least in
part), 25 % a query of one of the account's earlier orders, 15 % a cancel of
one. Setup (on test start, skipped when done already) creates the accounts,
gives each shares of every symbol, and preloads the book. The workload itself
lives in bench/workload.py, shared with `make bench`.

Its settings are the LOAD_* rows of the configuration table in README.md.

A failure is a reply that is not a `<results>` document, or holds an error
other than "nothing left to cancel" (a cancel may find its order fully
executed meanwhile: that is the workload, not a fault).

Each request carries an idempotency key of its own (LOAD_KEYS=0: none) and is
sent again under it, with backoff (app/client/resend.py), while it gets no
reply or 409, 502, 503 or 504: each such attempt counts as a failure named
"resent: ...", and the request itself as one more request once taken.

With LOAD_AUTH_KEYS (a file of `python -m bench.keys`) every attempt is
signed, for a service with authentication on: the setup with the admin key,
each trader's requests with its account's key, over HTTP in a header and
over TCP in the prefix.

Beside the traders, LOAD_READERS market-data clients poll books and tapes
(`MarketDataUser`), and LOAD_STREAMS follow a traded symbol's stream
(`MarketStreamUser`, SPEC §10), noting when each trade reaches them; with
LOAD_STREAM_LOG they write those arrivals there at the end, for
bench/streams.py to time against the trades' executions.
"""

import contextlib
import csv
import itertools
import os
import random
import re
import socket
import time
from urllib.parse import urlsplit

import gevent
from locust import FastHttpUser, User, constant, events, task

from app.client.resend import (
    HEADER,
    RESENT_STATUSES,
    NotTaken,
    new_key,
    not_taken,
    resending,
    with_prefix,
)
from bench.workload import READ, Keys, Shape, Trader, http_poster, problem, set_up

SHAPE = Shape.from_env()
SEED = int(os.environ.get("LOAD_SEED") or 0)
TCP_HOST, TCP_PORT = (os.environ.get("LOAD_TCP") or "127.0.0.1:12345").rsplit(":", 1)
# A client gives up on a reply after this long, and locust counts a failure: a
# service that stops answering shows as failures, not as requests never finished.
TIMEOUT_S = 10.0
# Market-data clients polling the read-only resources (SPEC §7), besides the
# traders; with them, each trader also reads its statement every so often.
READERS = int(os.environ.get("LOAD_READERS") or 0)
READ_EVERY_S = 0.1  # a reader's pause between two polls, as a screen refreshing
STATEMENT_EVERY = 20  # a trader's requests per statement read, when there are readers
CLIENT_NUMBERS = itertools.count()
KEYED = (os.environ.get("LOAD_KEYS") or "1") != "0"
AUTH_KEYS = Keys.load(os.environ["LOAD_AUTH_KEYS"]) if os.environ.get("LOAD_AUTH_KEYS") else None
RESEND_FOR_S = 30.0  # how long a request is sent again before it counts as lost
RESENT = "resent: "
STREAMS = int(os.environ.get("LOAD_STREAMS") or 0)
STREAM_LOG = os.environ.get("LOAD_STREAM_LOG")
STREAM_SOURCES = 16  # loopback addresses the streams come from, as from many machines
STREAM_RAMP_S = 2.0  # the streams open over this long, not all in the same instant
TRADE_IDS = re.compile(rb"^event: trade\nid: (\d+)$", re.MULTILINE)
ARRIVALS: list[tuple[float, list[bytes]]] = []  # (when, trade ids), as chunks arrive


@events.test_start.add_listener
def _set_up(environment, **kwargs):
    if (os.environ.get("LOAD_SETUP") or "1") != "0":
        admin = AUTH_KEYS.admin if AUTH_KEYS else None
        set_up(http_poster(environment.host.rstrip("/") + "/", credentials=admin), SHAPE)
    warmup = float(os.environ.get("LOAD_WARMUP") or 0)
    if warmup > 0 and environment.runner is not None:
        gevent.spawn_later(warmup, environment.runner.stats.reset_all)


@events.reset_stats.add_listener
def _forget_arrivals(**kwargs):
    ARRIVALS.clear()


@events.test_stop.add_listener
def _write_arrivals(environment, **kwargs):
    if STREAM_LOG:
        with open(STREAM_LOG, "w", newline="") as log:
            rows = csv.writer(log)
            rows.writerow(["trade_id", "arrived"])
            rows.writerows((int(number), at) for at, numbers in ARRIVALS for number in numbers)


class Trading:
    """What both users share: a closed loop, and a trader of their own."""

    wait_time = constant(0)

    def on_start(self):
        clients = self.environment.parsed_options.num_users or 1
        self.trader = Trader(SHAPE, next(CLIENT_NUMBERS), clients, SEED)

    def send(self, account: str, attempt) -> None:
        """Run `attempt` (resent while not taken, with keys) and note the reply in the trader."""
        try:
            reply = resending(attempt, RESEND_FOR_S) if KEYED else attempt()
        except NotTaken:
            return
        self.trader.record(account, reply)


class ExchangeHttpUser(Trading, FastHttpUser):
    """A client of `POST /`, over one keep-alive connection."""

    network_timeout = connection_timeout = TIMEOUT_S

    def on_start(self):
        super().on_start()
        self.requests = itertools.count(1)

    @task
    def trade(self):
        account, body, name = self.trader.next_request()
        if READERS and next(self.requests) % STATEMENT_EVERY == 0:
            _read(self.client, f"/accounts/{account}", "statement", account)
            return
        headers = {"Content-Type": "application/xml"}
        if KEYED:
            headers[HEADER] = new_key()

        def attempt() -> bytes:
            if AUTH_KEYS:  # a proof is accepted once: each attempt signs anew
                headers["Authorization"] = AUTH_KEYS.accounts[account].header("POST", "/", body)
            with self.client.post(
                "/", data=body, headers=headers, name=name, catch_response=True
            ) as response:
                status, reply = response.status_code, response.content or b""
                if KEYED and (status in RESENT_STATUSES or status == 0):  # 0: no reply
                    response.request_meta["name"] = RESENT + name
                    response.failure(f"HTTP {status}: sent again")
                    raise NotTaken(f"HTTP {status}")
                trouble = problem(reply) if status == 200 else f"HTTP {status}"
                if trouble:
                    response.failure(trouble)
                return reply

        self.send(account, attempt)


class MarketDataUser(FastHttpUser):
    """A client watching the market: a symbol's book, and now and then its tape."""

    fixed_count = READERS
    wait_time = constant(READ_EVERY_S)
    network_timeout = connection_timeout = TIMEOUT_S

    def on_start(self):
        self.choose = random.Random(SEED * 1_000_003 + next(CLIENT_NUMBERS)).choice

    @task(3)
    def book(self):
        _read(self.client, f"/symbols/{self.choose(SHAPE.traded_symbols())}/book", "book")

    @task(1)
    def trades(self):
        _read(self.client, f"/symbols/{self.choose(SHAPE.traded_symbols())}/trades", "trades")


class MarketStreamUser(User):
    """A client following one traded symbol's stream (SPEC §10), its connection held open.

    Its one request, `read: stream`, is timed to the first event; a stream
    refused, or broken once open, counts as a failure of it, and is opened
    again. The trades are not parsed: their ids are noted with the time their
    chunk arrived.
    """

    fixed_count = STREAMS
    wait_time = constant(0)

    def on_start(self):
        number = next(CLIENT_NUMBERS)
        symbols = SHAPE.traded_symbols()
        self.path = f"/symbols/{symbols[number % len(symbols)]}/stream"
        host = urlsplit(self.host)
        self.address = (host.hostname, host.port or 80)
        loopback = host.hostname.startswith("127.")
        self.source = (f"127.0.1.{number % STREAM_SOURCES + 1}", 0) if loopback else None
        gevent.sleep(random.uniform(0, STREAM_RAMP_S))

    @task
    def follow(self):
        started = time.perf_counter()
        try:
            with self._connection() as connection:
                first = connection.recv(65536)
                if not first.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(first.split(b"\r\n", 1)[0].decode("latin-1"))
                self._opened(started, len(first))
                while chunk := connection.recv(65536):
                    numbers = TRADE_IDS.findall(chunk)
                    if numbers:
                        ARRIVALS.append((time.time(), numbers))
            raise ConnectionError("the service ended the stream")
        except (OSError, RuntimeError) as error:
            self._opened(started, 0, error)
            time.sleep(1.0)

    def _connection(self) -> contextlib.closing:
        connection = socket.create_connection(
            self.address, timeout=TIMEOUT_S * 6, source_address=self.source
        )
        connection.sendall(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.address[0]}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        return contextlib.closing(connection)

    def _opened(self, started: float, length: int, error: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="GET",
            name=READ + "stream",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=error,
            context={},
        )


def _read(client, path: str, name: str, account: str | None = None) -> None:
    """A GET of a read; an account's is signed with its key when there are keys."""
    headers = {}
    if AUTH_KEYS and account:
        headers["Authorization"] = AUTH_KEYS.accounts[account].header("GET", path)
    with client.get(path, name=READ + name, headers=headers, catch_response=True) as response:
        if response.status_code != 200:
            response.failure(f"HTTP {response.status_code}")


class LegacyTcpUser(Trading, User):
    """A client of the shim, in the protocol's default framing: one connection
    per request, the reply read up to the shim's close."""

    @task
    def trade(self):
        account, body, name = self.trader.next_request()
        keyed = with_prefix(new_key(), body) if KEYED else body

        def attempt() -> bytes:
            started = time.perf_counter()
            reply, exception, resent = b"", None, False
            try:
                sent = AUTH_KEYS.accounts[account].prefixed(keyed) if AUTH_KEYS else keyed
                reply = _exchange(sent)
                resent = KEYED and not_taken(reply)
                trouble = problem(reply)
                if trouble:
                    exception = RuntimeError(trouble)
            except OSError as error:
                exception, resent = error, KEYED
            self.environment.events.request.fire(
                request_type="TCP",
                name=RESENT + name if resent else name,
                response_time=(time.perf_counter() - started) * 1000,
                response_length=len(reply),
                exception=exception,
                context={},
            )
            if resent:
                raise NotTaken(str(exception))
            return reply

        self.send(account, attempt)


def _exchange(body: bytes) -> bytes:
    with socket.create_connection((TCP_HOST, int(TCP_PORT)), timeout=TIMEOUT_S) as connection:
        connection.sendall(b"%d\n%s" % (len(body), body))
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
