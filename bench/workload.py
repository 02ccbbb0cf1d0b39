"""The benchmark workload: who trades what, and the documents the clients send.

Shared by `locustfile.py` (the load) and `bench/run.py` (setup, preloading), so
both drive one and the same workload. Nothing here imports locust: the
harness must not be monkey-patched by gevent.

A *universe* is a set of accounts and symbols, each account holding shares of
every symbol. Its ids derive from the shape (symbols, preloaded orders), so
workloads of different shapes never share a book, and a rerun finds its
universe already set up instead of colliding with it.
"""

import http.client
import json
import os
import random
import re
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from app.auth.proof import Credentials
from app.exchange.errors import Reason

BALANCE = "100000000000"  # the most digits a balance may have
SHARES = "1000000000"
MID_CENTS = 10_000  # every symbol trades around 100.00
# Buys reach up to 3.00 above the mid price and sells as far below, so most
# orders cross the book at least in part; the rest rest near the mid price.
AGGRESSIVE_CENTS = 300
PASSIVE_CENTS = 100
MAX_AMOUNT = 100
# Preloaded orders rest far from where the load trades, so they deepen the
# book without ever matching.
RESTING_FROM_CENTS, RESTING_TO_CENTS = 2_000, 5_000
# Few enough a document that sixteen at once finish well within the service's
# deadline (EXCHANGE_DEADLINE, 5 s), which a request's children share.
RESTING_PER_DOCUMENT = 100
READ = "read: "  # the prefix of the reads' names in locust's statistics
PROGRESS_EVERY = 100  # documents of resting orders between two lines of progress
REMEMBERED_ORDERS = 100  # earlier orders a client keeps per account, to query and cancel

# The share of each kind of child, in the order they are drawn.
MIX = (("order", 0.60), ("query", 0.25), ("cancel", 0.15))

OPENED = re.compile(r'<opened [^>]*\bid="(\d+)"')
CREATED_ACCOUNT = re.compile(r'<created id="(\d+)"/>')
RESULTS = re.compile(r"(<\?xml[^>]*\?>\s*)?<results\b")
ERROR = re.compile(r"<error[^>]*>([^<]*)</error>")
# The one refusal the workload provokes by design: canceling an earlier order
# that has meanwhile executed in full.
EXPECTED_ERRORS = frozenset({Reason.NOTHING_OPEN.value})


@dataclass(frozen=True)
class Shape:
    accounts: int = 200
    symbols: int = 10
    hot: bool = False  # every order on the first symbol
    children: int = 1  # children per request
    resting: int = 0  # orders preloaded on the book before the load starts

    @classmethod
    def from_env(cls, environ=os.environ) -> "Shape":
        return cls(
            accounts=int(environ.get("LOAD_ACCOUNTS") or cls.accounts),
            symbols=int(environ.get("LOAD_SYMBOLS") or cls.symbols),
            hot=(environ.get("LOAD_HOT_SYMBOL") or "0").lower() in {"1", "true", "yes", "on"},
            children=int(environ.get("LOAD_CHILDREN") or cls.children),
            resting=int(environ.get("LOAD_RESTING") or cls.resting),
        )

    def env(self) -> dict[str, str]:
        """The environment variables that make `from_env` return this shape."""
        return {
            "LOAD_ACCOUNTS": str(self.accounts),
            "LOAD_SYMBOLS": str(self.symbols),
            "LOAD_HOT_SYMBOL": "1" if self.hot else "0",
            "LOAD_CHILDREN": str(self.children),
            "LOAD_RESTING": str(self.resting),
        }

    def account(self, index: int) -> str:
        return f"7{self.symbols:04d}{self.resting:08d}{index:05d}"

    def symbol(self, index: int) -> str:
        return f"B{self.symbols}R{self.resting}N{index}"

    def traded_symbols(self) -> list[str]:
        return [self.symbol(0)] if self.hot else [self.symbol(n) for n in range(self.symbols)]


def price(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def transactions(account: str, children: Iterable[str]) -> bytes:
    return f'<transactions id="{account}">{"".join(children)}</transactions>'.encode()


def problem(reply: bytes) -> str | None:
    """Why a reply counts as a failure, or None: a `<results>` document whose only
    errors, if any, are the ones the workload provokes by design."""
    text = reply.decode("utf-8", "replace")
    if RESULTS.match(text) is None:
        return "not a <results> reply"
    unexpected = [why for why in ERROR.findall(text) if why not in EXPECTED_ERRORS]
    return f"error: {unexpected[0][:200]}" if unexpected else None


class Trader:
    """One client: places, queries and cancels orders of its own accounts.

    Its choices depend only on its number and the seed, so a rerun replays
    the same sequence of decisions.
    """

    def __init__(self, shape: Shape, number: int, clients: int, seed: int = 0):
        self._shape = shape
        self._random = random.Random(seed * 1_000_003 + number)
        owned = range(number % shape.accounts, shape.accounts, max(clients, 1))
        self._accounts = [shape.account(index) for index in owned]
        self._symbols = shape.traded_symbols()
        self._earlier = {account: deque(maxlen=REMEMBERED_ORDERS) for account in self._accounts}

    def next_request(self) -> tuple[str, bytes, str]:
        """The account, the `<transactions>` document, and a name for the statistics."""
        account = self._random.choice(self._accounts)
        earlier = self._earlier[account]
        kinds, children = [], []
        for _ in range(self._shape.children):
            kind = self._kind() if earlier else "order"
            kinds.append(kind)
            children.append(self._child(kind, earlier))
        name = kinds[0] if len(kinds) == 1 else f"{len(kinds)} children"
        return account, transactions(account, children), name

    def record(self, account: str, reply: bytes) -> None:
        """Remember the orders the reply opened, for later queries and cancels."""
        self._earlier[account].extend(OPENED.findall(reply.decode("utf-8", "replace")))

    def _kind(self) -> str:
        draw = self._random.random()
        for kind, share in MIX:
            if draw < share:
                return kind
            draw -= share
        return MIX[-1][0]

    def _child(self, kind: str, earlier: deque) -> str:
        if kind == "order":
            return self._order()
        if kind == "query":
            return f'<query id="{self._random.choice(earlier)}"/>'
        # A canceled order is forgotten: canceling it again would only fail.
        position = self._random.randrange(len(earlier))
        order_id = earlier[position]
        del earlier[position]
        return f'<cancel id="{order_id}"/>'

    def _order(self) -> str:
        symbol = self._random.choice(self._symbols)
        amount = self._random.randint(1, MAX_AMOUNT)
        if self._random.random() < 0.5:
            limit = MID_CENTS + self._random.randint(-PASSIVE_CENTS, AGGRESSIVE_CENTS)
        else:
            amount = -amount
            limit = MID_CENTS + self._random.randint(-AGGRESSIVE_CENTS, PASSIVE_CENTS)
        return f'<order sym="{symbol}" amount="{amount}" limit="{price(limit)}"/>'


# -- setup --------------------------------------------------------------------

Post = Callable[[bytes], bytes]


def http_poster(url: str, timeout: float = 300.0, credentials: Credentials | None = None) -> Post:
    """POST documents to `url`, over one keep-alive connection per thread; signed with
    `credentials` when given (an admin key's: setup creates accounts and shares)."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path or "/"
    local = threading.local()

    def post(body: bytes) -> bytes:
        if getattr(local, "connection", None) is None:
            local.connection = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=timeout
            )
        headers = {"Content-Type": "application/xml"}
        if credentials:
            headers["Authorization"] = credentials.header("POST", target, body)
        try:
            local.connection.request("POST", target, body, headers)
            return local.connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            local.connection.close()
            local.connection = None
            raise

    return post


@dataclass(frozen=True)
class Keys:
    """The keys the load signs with when the service runs with authentication on: an admin
    key for the setup, and one key (trade and read) per account of the workload."""

    admin: Credentials
    accounts: dict[str, Credentials]

    @classmethod
    def load(cls, path: str) -> "Keys":
        saved = json.loads(open(path).read())
        return cls(
            Credentials(*saved["admin"]),
            {account: Credentials(*pair) for account, pair in saved["accounts"].items()},
        )

    def save(self, path: str) -> None:
        def pair(credentials: Credentials) -> list[str]:
            return [credentials.key, credentials.secret]

        accounts = {account: pair(key) for account, key in self.accounts.items()}
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            json.dump({"admin": pair(self.admin), "accounts": accounts}, file)


def set_up(
    post: Post, shape: Shape, parallel: int = 16, say: Callable[[str], None] = print
) -> bool:
    """Create the shape's universe unless it exists: accounts, their shares of
    every symbol, and the preloaded resting orders.

    Shares and resting orders go only to accounts created now, so running it
    again changes nothing. Returns whether anything was created.
    """
    started = time.monotonic()
    accounts = "".join(
        f'<account id="{shape.account(index)}" balance="{BALANCE}"/>'
        for index in range(shape.accounts)
    )
    reply = post(f"<create>{accounts}</create>".encode()).decode()
    refused = {why for why in ERROR.findall(reply) if why != Reason.ACCOUNT_EXISTS.value}
    if refused:
        raise RuntimeError(f"creating the workload's accounts failed: {refused.pop()}")
    created = CREATED_ACCOUNT.findall(reply)
    if not created:
        say(f"universe of {shape.symbols} symbols, {shape.resting} resting orders: already set up")
        return False
    holders = "".join(f'<account id="{account}">{SHARES}</account>' for account in created)
    grants = [
        f'<create><symbol sym="{shape.symbol(n)}">{holders}</symbol></create>'.encode()
        for n in range(shape.symbols)
    ]
    with ThreadPoolExecutor(parallel) as pool:
        # Shares first: the resting sells need them.
        for documents in (grants, _resting_documents(shape, created)):
            batch_started = time.monotonic()
            for done, reply in enumerate(pool.map(post, documents), 1):
                trouble = problem(reply)
                if trouble:
                    raise RuntimeError(f"setting up the workload failed: {trouble}")
                if documents is not grants and done % PROGRESS_EVERY == 0:
                    placed = min(done * RESTING_PER_DOCUMENT, shape.resting)
                    rate = placed / (time.monotonic() - batch_started)
                    say(f"  {placed:,} of {shape.resting:,} resting orders placed, {rate:.0f}/s")
    say(
        f"universe of {shape.symbols} symbols, {shape.resting} resting orders: "
        f"{len(created)} accounts set up in {time.monotonic() - started:.1f} s"
    )
    return True


def _resting_documents(shape: Shape, accounts: list[str]) -> Iterable[bytes]:
    """Buys far below and sells far above the traded prices, spread over
    accounts and symbols, `RESTING_PER_DOCUMENT` orders a document."""
    chooser = random.Random(shape.resting)
    for start in range(0, shape.resting, RESTING_PER_DOCUMENT):
        count = min(RESTING_PER_DOCUMENT, shape.resting - start)
        account = accounts[(start // RESTING_PER_DOCUMENT) % len(accounts)]
        orders = []
        for number in range(start, start + count):
            away = chooser.randint(RESTING_FROM_CENTS, RESTING_TO_CENTS)
            amount = chooser.randint(1, MAX_AMOUNT)
            side, limit = (amount, MID_CENTS - away) if number % 2 else (-amount, MID_CENTS + away)
            symbol = shape.symbol(number % shape.symbols)
            orders.append(f'<order sym="{symbol}" amount="{side}" limit="{price(limit)}"/>')
        yield transactions(account, orders)
