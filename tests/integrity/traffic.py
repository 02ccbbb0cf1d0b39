"""Clients hammering a real server: several processes, each running several trading threads.

Each thread is a client of one account (an account may have several), over
HTTP or through the shim. It places crossing orders on a few hot symbols,
cancels orders it placed moments ago while other clients cross them, cancels
older ones, and queries its orders. It keeps every order id it got back and
reports every reply that breaks the contract; during a fault, the replies a
`Tolerance` names are counted instead. It also keeps what it was told of each
order it sent, which a limit price of its own tells apart in the database:
after a fault, no order may exist that its client was told was not applied.
"""

import contextlib
import itertools
import random
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from multiprocessing import get_context

import requests
from lxml import etree
from sqlalchemy import Engine, select

from app.exchange.errors import Reason
from app.exchange.service import DATABASE_FAILURES
from app.outcomes import Outcome, outcome_of
from app.storage.schema import orders
from tests.integrity.books import Ledger, PlacedOrder
from tests.shim.wire import converse, framed

# The market under load: a few hot symbols; accounts of tight enough means that
# orders are refused for want of cash or shares now and then.
SYMBOLS = ("HOT", "WARM")
ACCOUNTS = [str(n) for n in range(1, 5)]
OPENING = Ledger.of(Decimal(3_000), {symbol: Decimal(40) for symbol in SYMBOLS}, ())

TIMEOUT = 60.0
QUERIES_PER_REQUEST = 100  # keeps a document under the small body limit of the test server
# Refusals a client of tight means meets; their texts go on with the amounts.
REFUSALS = tuple(
    reason.value.split("{")[0] for reason in (Reason.INSUFFICIENT_FUNDS, Reason.INSUFFICIENT_SHARES)
)
# Texts that must never reach a client: the retries and the locking order hide them.
LEAKS = re.compile(rb"deadlock|serializ|could not|psycopg|sqlalchemy", re.IGNORECASE)
PAUSE_AFTER_TOLERATED = 0.05  # a client does not spin while the service is down


# What a client was told of an order it sent.
ACKNOWLEDGED = "acknowledged"
REFUSED = "refused"  # an exchange rule: insufficient funds, ...
NOT_APPLIED = Outcome.NOT_APPLIED.value
UNKNOWN = Outcome.UNKNOWN.value
CUT = "connection cut"  # no reply: the client cannot tell either
MAY_EXIST = {ACKNOWLEDGED, UNKNOWN, CUT}
PRICE_TAG = Decimal("1E-8")  # each order's limit is made unique in its last decimal place
_price_tags = itertools.count(1)


@dataclass(frozen=True)
class Tolerance:
    """Replies a fault may cause, besides a cancel losing its race to a fill."""

    statuses: frozenset[int] = frozenset()  # replies of `<error>`s only, with this status
    errors: frozenset[str] = frozenset()  # per-child `<error>` texts
    disconnects: bool = False  # the connection dropped before a reply
    unavailable: bool = False  # any failure of app/outcomes.py's table, in a child or whole


STRICT = Tolerance()
# What a client may see while PostgreSQL is down: a 503 with an `<error>` per child (or
# one for the whole document), or, when the database went away during the request,
# a per-child error after the children answered before.
DATABASE_DOWN = Tolerance(statuses=frozenset({503}), errors=frozenset(DATABASE_FAILURES))


@dataclass
class ClientReport:
    account: str
    placed: list[PlacedOrder] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    requests: int = 0
    answered: int = 0  # requests whose every child got its normal reply
    tolerated: int = 0
    canceled: int = 0
    refused: int = 0  # orders refused for want of cash or shares
    told: dict[tuple, str] = field(default_factory=dict)  # order key -> what the client was told
    slowest: float = 0.0  # seconds, the longest any request took to be answered


def order_key(account: str, symbol: str, amount: Decimal, limit: Decimal) -> tuple:
    return account, symbol, amount, limit


def post(session: requests.Session, url: str, body: str) -> tuple[int, bytes]:
    response = session.post(
        url, data=body.encode(), headers={"Content-Type": "application/xml"}, timeout=TIMEOUT
    )
    return response.status_code, response.content


def told(result: etree._Element) -> str:
    """What one child's reply tells the client of its order."""
    if result.tag != "error":
        return ACKNOWLEDGED
    outcome = outcome_of(result.text)
    return REFUSED if outcome is None else outcome.value


def transactions(account: str, *children: str) -> str:
    return f'<transactions id="{account}">{"".join(children)}</transactions>'


def query_statuses(url: str, account: str, order_ids: list[int]) -> dict[int, etree._Element]:
    """Each order's `<status>` reply (or `<error>` for an id the account does not hold)."""
    statuses = {}
    with requests.Session() as session:
        for start in range(0, len(order_ids), QUERIES_PER_REQUEST):
            batch = order_ids[start : start + QUERIES_PER_REQUEST]
            status, reply = post(
                session, url, transactions(account, *(f'<query id="{i}"/>' for i in batch))
            )
            assert status == 200, reply
            statuses.update(zip(batch, etree.fromstring(reply), strict=True))
    return statuses


class Trader:
    """A client of one account; over HTTP to `url`, or over TCP to the `shim` when given."""

    def __init__(
        self,
        url: str,
        account: str,
        symbols: tuple[str, ...],
        seed: int,
        tolerance: Tolerance = STRICT,
        shim: tuple[str, int] | None = None,
    ):
        self.url = url
        self.shim = shim
        self.symbols = symbols
        self.rng = random.Random(seed)
        self.tolerance = tolerance
        self.report = ClientReport(account)
        self.told: list[str] = []  # what the last reply said of each child

    def trade(self, rounds: int) -> ClientReport:
        with requests.Session() as self.session:
            for _ in range(rounds):
                self.act()
        return self.report

    def trade_until(self, stop: threading.Event) -> ClientReport:
        with requests.Session() as self.session:
            while not stop.is_set():
                self.act()
        return self.report

    def act(self) -> None:
        roll = self.rng.random()
        if roll < 0.6 or not self.report.placed:
            fresh = self.place_orders()
            if fresh and self.rng.random() < 0.5:
                self.cancel(self.rng.choice(fresh))  # while others may be crossing it
        elif roll < 0.8:
            self.cancel(self.rng.choice(self.report.placed))
        else:
            self.query(self.rng.sample(self.report.placed, min(3, len(self.report.placed))))

    def place_orders(self) -> list[PlacedOrder]:
        wanted = [self.random_order() for _ in range(self.rng.randint(1, 3))]
        children = [f'<order sym="{s}" amount="{a}" limit="{li}"/>' for s, a, li in wanted]
        replies = self.send(children, *REFUSALS)
        for (symbol, amount, limit), what in zip(wanted, self.told, strict=True):
            key = order_key(self.report.account, symbol, Decimal(amount), Decimal(limit))
            self.report.told[key] = what
        fresh = [
            PlacedOrder(int(reply.get("id")), symbol, Decimal(amount), Decimal(limit))
            for reply, (symbol, amount, limit) in zip(replies, wanted, strict=False)
            if reply.tag == "opened"
        ]
        self.report.placed += fresh
        self.report.refused += sum(
            1 for reply in replies if reply.tag == "error" and reply.text.startswith(REFUSALS)
        )
        return fresh

    def random_order(self) -> tuple[str, str, str]:
        """Prices around 100 on both sides, so that most orders cross something; the last
        decimal place of each limit is this order's own."""
        shares = Decimal(self.rng.randint(1, 40)) / 2
        amount = shares if self.rng.random() < 0.5 else -shares
        limit = Decimal(self.rng.randint(396, 404)) / 4 + next(_price_tags) * PRICE_TAG
        return self.rng.choice(self.symbols), str(amount), str(limit)

    def cancel(self, order: PlacedOrder) -> None:
        replies = self.send([f'<cancel id="{order.order_id}"/>'], Reason.NOTHING_OPEN.value)
        self.report.canceled += sum(1 for reply in replies if reply.tag == "canceled")

    def query(self, chosen: list[PlacedOrder]) -> None:
        replies = self.send([f'<query id="{order.order_id}"/>' for order in chosen])
        for order, reply in zip(chosen, replies, strict=False):
            if reply.tag == "status" and shares_in(reply) != abs(order.amount):
                self.fail(f"order {order.order_id} seen half-updated", etree.tostring(reply))

    def send(self, children: list[str], *allowed_errors: str) -> list[etree._Element]:
        """Post one document; judge its reply; return the reply's children, and keep in
        `self.told` what it says of each.

        `allowed_errors` are the starts of the error texts normal for these children.
        """
        body = transactions(self.report.account, *children)
        self.report.requests += 1
        self.told = [CUT] * len(children)
        started = time.monotonic()
        try:
            status, reply = self.exchange(body)
        except (requests.Timeout, TimeoutError) as error:  # the service hung
            self.fail(body, repr(error).encode())
            return []
        except (requests.RequestException, OSError) as error:  # the connection broke first
            self.judge(body, self.tolerance.disconnects, repr(error).encode())
            return []
        finally:
            self.report.slowest = max(self.report.slowest, time.monotonic() - started)
        if not reply:  # the shim's connection closed without a reply
            self.judge(body, self.tolerance.disconnects, b"no reply")
            return []
        if LEAKS.search(reply):
            self.fail(body, b"%s %s" % (str(status).encode(), reply))
            return []
        results = list(etree.fromstring(reply))
        if len(results) != len(children):  # one `<error>` for the whole document
            self.told = [told(results[0]) if len(results) == 1 else REFUSED] * len(children)
            self.judge(body, self._tolerated_document(status, results), reply, status)
            return []
        self.told = [told(result) for result in results]
        if status not in (200, None):  # over TCP the status is not seen
            self.judge(body, status in self.tolerance.statuses and _is_error(reply), reply, status)
            return []
        faults = [r for r in results if r.tag == "error" and not r.text.startswith(allowed_errors)]
        if not faults:
            self.report.answered += 1
        for fault in faults:
            self.judge(body, self._tolerated_error(fault.text), etree.tostring(fault))
        return results

    def exchange(self, body: str) -> tuple[int | None, bytes]:
        """The reply's status (None over TCP) and document."""
        if self.shim is None:
            return post(self.session, self.url, body)
        return None, converse(self.shim, framed(body.encode()), timeout=TIMEOUT)

    def _tolerated_error(self, text: str) -> bool:
        return text in self.tolerance.errors or (
            self.tolerance.unavailable and outcome_of(text) is not None
        )

    def _tolerated_document(self, status: int | None, results: list[etree._Element]) -> bool:
        if len(results) != 1 or results[0].tag != "error":
            return False
        if status is None:  # the shim's own, or the service's, over TCP
            return self._tolerated_error(results[0].text)
        return status in self.tolerance.statuses

    def judge(self, request: str, tolerated: bool, reply: bytes, status: int | None = 200) -> None:
        if not tolerated:
            self.fail(request, b"%s %s" % (str(status).encode(), reply))
            return
        self.report.tolerated += 1
        time.sleep(PAUSE_AFTER_TOLERATED)

    def fail(self, request: str, reply: bytes) -> None:
        self.report.failures.append(f"{request} -> {reply.decode(errors='replace')[:300]}")


def _is_error(reply: bytes) -> bool:
    """A reply of errors only: `<results>` holding `<error>`s with a reason, one for the
    whole document or one per child."""
    try:
        root = etree.fromstring(reply)
    except etree.XMLSyntaxError:
        return False
    return (
        root.tag == "results"
        and len(root) > 0
        and all(child.tag == "error" and child.text for child in root)
    )


def shares_in(status: etree._Element) -> Decimal:
    """Open + canceled + executed shares of one `<status>`: always the order's amount."""
    return sum((Decimal(child.get("shares")) for child in status), Decimal(0))


def _trade_in_threads(
    url: str, accounts: list[str], symbols: tuple[str, ...], seed: int, rounds: int
) -> list[ClientReport]:
    traders = [Trader(url, a, symbols, seed * 1000 + n) for n, a in enumerate(accounts)]
    with ThreadPoolExecutor(len(traders)) as pool:
        return list(pool.map(lambda trader: trader.trade(rounds), traders))


def hammer(
    url: str,
    accounts: list[str],
    symbols: tuple[str, ...],
    processes: int,
    threads: int,
    rounds: int,
) -> list[ClientReport]:
    """`processes` processes of `threads` threads each; all their reports.

    Threads take the accounts in turn, so with fewer accounts than threads an
    account is driven by threads of different processes at once.
    """
    seats = [accounts[n % len(accounts)] for n in range(processes * threads)]
    groups = [seats[n * threads : (n + 1) * threads] for n in range(processes)]
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(_trade_in_threads, url, group, symbols, seed, rounds)
            for seed, group in enumerate(groups)
        ]
        return [report for future in futures for report in future.result()]


def post_create(url: str, accounts: list[str], opening: Ledger) -> None:
    """Open every account with the same cash and shares, in one `<create>`."""
    grants = "".join(f'<account id="{a}">{{shares}}</account>' for a in accounts)
    body = "".join(f'<account id="{a}" balance="{opening.cash}"/>' for a in accounts) + "".join(
        f'<symbol sym="{symbol}">{grants.format(shares=shares)}</symbol>'
        for symbol, shares in opening.shares.items()
    )
    with requests.Session() as session:
        status, reply = post(session, url, f"<create>{body}</create>")
    assert status == 200 and b"<error" not in reply, reply


class BackgroundLoad:
    """Traders in threads of this process, trading until the block ends; then their reports."""

    def __init__(self, traders: list[Trader]):
        self.traders = traders
        self.reports: list[ClientReport] = []

    def total(self, counter: str) -> int:
        return sum(getattr(trader.report, counter) for trader in self.traders)

    def wait_for_more(self, counter: str, more: int, timeout: float = TIMEOUT) -> None:
        """Wait until `more` further requests were answered (or tolerated); fail after `timeout`."""
        target = self.total(counter) + more
        deadline = time.monotonic() + timeout
        while self.total(counter) < target:
            assert time.monotonic() < deadline, f"fewer than {more} more {counter} in {timeout} s"
            time.sleep(0.05)

    def acknowledged_order_ids(self) -> set[int]:
        return {order.order_id for report in self.reports for order in report.placed}

    def failures(self) -> list[str]:
        return [failure for report in self.reports for failure in report.failures]

    def slowest(self) -> float:
        return max(trader.report.slowest for trader in self.traders)


def untruthful_replies(engine: Engine, *loads: BackgroundLoad) -> list[str]:
    """Orders whose existence contradicts what their clients, all in `loads`, were told: one
    stored that its client was told was not applied (or refused), one acknowledged but lost."""
    told = {
        key: what for load in loads for report in load.reports for key, what in report.told.items()
    }
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                orders.c.id,
                orders.c.account_id,
                orders.c.symbol,
                orders.c.side,
                orders.c.shares,
                orders.c.limit_price,
            )
        ).all()
    stored = {
        order_key(
            row.account_id,
            row.symbol,
            row.shares if row.side == "buy" else -row.shares,
            row.limit_price,
        ): row.id
        for row in rows
    }
    contradictions = [
        f"order {order_id} {key} exists, but its client was told: {told.get(key, 'nothing')}"
        for key, order_id in stored.items()
        if told.get(key) not in MAY_EXIST
    ]
    acknowledged = {order_id for load in loads for order_id in load.acknowledged_order_ids()}
    lost = acknowledged - set(stored.values())
    return contradictions + [f"order {order_id} acknowledged but lost" for order_id in sorted(lost)]


@contextlib.contextmanager
def background_load(
    url: str,
    accounts: list[str],
    symbols: tuple[str, ...],
    tolerance: Tolerance,
    shim: tuple[str, int] | None = None,
    over_http: bool = True,
):
    """Trading over HTTP, one client per account; with `shim`, as many again through it
    (only those, unless `over_http`)."""
    traders = (
        [Trader(url, a, symbols, seed, tolerance) for seed, a in enumerate(accounts)]
        if over_http
        else []
    )
    if shim is not None:
        traders += [
            Trader(url, a, symbols, len(accounts) + seed, tolerance, shim)
            for seed, a in enumerate(accounts)
        ]
    load = BackgroundLoad(traders)
    stop = threading.Event()
    with ThreadPoolExecutor(len(traders)) as pool:
        running = [pool.submit(trader.trade_until, stop) for trader in traders]
        try:
            yield load
        finally:
            stop.set()
            load.reports = [future.result() for future in running]
