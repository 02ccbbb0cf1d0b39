"""The benchmark's workload: the mix it promises, its setup, and its reading of replies."""

import collections
import re
from decimal import Decimal

from sqlalchemy import func, select

from app.exchange.errors import Reason
from app.storage.schema import accounts, orders
from bench.workload import (
    MID_CENTS,
    Shape,
    Trader,
    _resting_documents,
    http_poster,
    problem,
    set_up,
)

LIMIT = re.compile(r'amount="(-?\d+)" limit="([\d.]+)"')


def _opened(order_id: int) -> bytes:
    return f'<results><opened sym="X" amount="1" limit="1" id="{order_id}"/></results>'.encode()


def test_children_follow_the_mix_and_cancel_each_own_order_at_most_once():
    shape = Shape(accounts=8, symbols=3)
    trader = Trader(shape, number=1, clients=4)
    opened = collections.defaultdict(set)
    canceled = set()
    kinds = collections.Counter()
    for order_id in range(20_000):
        account, body, kind = trader.next_request()
        kinds[kind] += 1
        referenced = re.search(rb'<(?:query|cancel) id="(\d+)"', body)
        if referenced:
            assert int(referenced.group(1)) in opened[account]
        if kind == "cancel":
            assert int(referenced.group(1)) not in canceled, "canceled twice"
            canceled.add(int(referenced.group(1)))
        if kind == "order":
            trader.record(account, _opened(order_id))
            opened[account].add(order_id)
    assert {account for account in opened} == {shape.account(1), shape.account(5)}
    shares = {kind: count / sum(kinds.values()) for kind, count in kinds.items()}
    assert abs(shares["order"] - 0.60) < 0.02
    assert abs(shares["query"] - 0.25) < 0.02
    assert abs(shares["cancel"] - 0.15) < 0.02


def test_orders_cross_the_mid_price_so_that_most_can_execute():
    trader = Trader(Shape(), number=0, clients=1)
    buys_above = sells_below = orders_seen = 0
    for _ in range(2_000):
        account, body, kind = trader.next_request()
        for amount, limit in LIMIT.findall(body.decode()):
            cents = Decimal(limit) * 100
            orders_seen += 1
            buys_above += int(amount) > 0 and cents >= MID_CENTS
            sells_below += int(amount) < 0 and cents <= MID_CENTS
    assert (buys_above + sells_below) / orders_seen > 0.6


def test_a_hot_shape_trades_one_symbol_and_a_batch_holds_its_children():
    trader = Trader(Shape(hot=True, children=5), number=0, clients=1)
    _, body, name = trader.next_request()
    assert set(re.findall(rb'sym="([^"]+)"', body)) == {Shape().symbol(0).encode()}
    assert body.count(b"<order") == 5
    assert name == "5 children"


def test_resting_orders_stay_clear_of_the_traded_prices():
    shape = Shape(accounts=4, symbols=2, resting=3_000)
    resting = [
        (int(amount), Decimal(limit))
        for document in _resting_documents(shape, [shape.account(n) for n in range(4)])
        for amount, limit in LIMIT.findall(document.decode())
    ]
    trader = Trader(shape, 0, 1)
    traded = [
        (int(amount), Decimal(limit))
        for _ in range(2_000)
        for amount, limit in LIMIT.findall(trader.next_request()[1].decode())
    ]
    assert len(resting) == 3_000
    highest_buy = max(limit for amount, limit in traded if amount > 0)
    lowest_sell = min(limit for amount, limit in traded if amount < 0)
    assert all(limit > highest_buy for amount, limit in resting if amount < 0)
    assert all(limit < lowest_sell for amount, limit in resting if amount > 0)


def test_only_unexpected_errors_are_problems():
    nothing_open = f'<results><error id="7">{Reason.NOTHING_OPEN.value}</error></results>'
    declared = "<?xml version='1.0' encoding='UTF-8'?>\n" + nothing_open
    assert problem(nothing_open.encode()) is None
    assert problem(declared.encode()) is None
    assert problem(b'<results><error id="7">no such order for this account</error></results>')
    assert problem(b"<html>502 Bad Gateway</html>") == "not a <results> reply"


def test_setup_creates_the_universe_once(server, engine):
    shape = Shape(accounts=3, symbols=2, resting=6)
    post = http_poster(server + "/")
    messages = []
    assert set_up(post, shape, parallel=2, say=messages.append)
    assert not set_up(post, shape, parallel=2, say=messages.append)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(accounts)) == 3
        assert connection.scalar(select(func.count()).select_from(orders)) == 6
    assert "already set up" in messages[-1]
