"""The client's read subcommands: tables from the service's documents, and paging."""

import re
import signal
import subprocess
import sys
import time

import pytest
import requests
from lxml import etree

from app.client.cli import main
from app.client.reads import (
    CLEAR_SCREEN,
    account_table,
    all_open_orders,
    book_ladder,
    orders_table,
    table,
)
from app.local.cluster import PROJECT

# SPEC §4's worked example after orders 1-6, as SPEC §7 gives its book.
BOOK = etree.fromstring(
    b'<book sym="SPY">'
    b'<bid price="127" shares="200" orders="1"/><bid price="125" shares="700" orders="2"/>'
    b'<ask price="128" shares="500" orders="1"/><ask price="130" shares="100" orders="1"/>'
    b'<ask price="140" shares="200" orders="1"/></book>'
)


def test_the_book_is_a_ladder_with_the_asks_above_the_bids_and_the_best_at_the_spread():
    assert book_ladder(BOOK).splitlines() == [
        "SPY",
        "side  price  shares  orders",
        "ask     140     200       1",
        "ask     130     100       1",
        "ask     128     500       1",
        "bid     127     200       1",
        "bid     125     700       2",
    ]


def test_an_empty_book_says_so():
    assert book_ladder(etree.fromstring(b'<book sym="SPY"/>')) == "SPY: no open orders"


def test_a_statement_lists_its_positions():
    account = etree.fromstring(
        b'<account id="7" balance="900.5" reserved="100">'
        b'<position sym="SPY" shares="10" reserved="0"/></account>'
    )
    assert account_table(account).splitlines() == [
        "account 7: balance 900.5, reserved 100",
        "symbol  shares  reserved",
        "SPY         10         0",
    ]


def test_open_orders_are_fetched_page_after_page():
    first = b'<order id="1" sym="A" amount="5" limit="1" open="5" time="0"/>'
    second = b'<order id="2" sym="A" amount="-5" limit="2" open="3" time="60"/>'
    pages = {None: b'<orders more="true">%s</orders>' % first, "1": b"<orders>%s</orders>" % second}
    asked = []

    def get(path, sym=None, after=None):
        asked.append((path, sym, after))
        return etree.fromstring(pages[after])

    orders = all_open_orders(get, "7", "A")
    assert asked == [("/accounts/7/orders", "A", None), ("/accounts/7/orders", "A", "1")]
    assert orders_table(orders).splitlines() == [
        "id  symbol  amount  limit  open  placed (UTC)",
        " 1  A            5      1     5  1970-01-01 00:00:00",
        " 2  A           -5      2     3  1970-01-01 00:01:00",
    ]


def test_numbers_are_aligned_right_and_text_left():
    assert (
        table(("name", "n"), [("a", "10"), ("bb", "-2.5")]) == "name     n\na       10\nbb    -2.5"
    )


MARKET = (
    b'<create><account id="1" balance="1000"/><account id="2" balance="0"/>'
    b'<symbol sym="SPY"><account id="2">100</account></symbol></create>',
    b'<transactions id="2"><order sym="SPY" amount="-10" limit="12"/>'
    b'<order sym="SPY" amount="-5" limit="13"/></transactions>',
    b'<transactions id="1"><order sym="SPY" amount="4" limit="12.5"/></transactions>',
)


@pytest.fixture
def market(server, engine):
    for document in MARKET:
        assert requests.post(server, data=document, timeout=30).status_code == 200
    return server


def test_book_against_the_service(market, capsys):
    assert main(["book", "SPY", "--http", market]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "SPY",
        "side  price  shares  orders",
        "ask      13       5       1",
        "ask      12       6       1",
    ]


def shown(capsys) -> list[str]:
    """What the client printed, its times (UTC, as placed) masked."""
    lines = capsys.readouterr().out.splitlines()
    return [re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TIME", line) for line in lines]


def test_trades_against_the_service(market, capsys):
    assert main(["trades", "SPY", "--http", market]) == 0
    assert shown(capsys) == [
        "SPY, newest first",
        "time (UTC)           shares  price",
        "TIME       4     12",
    ]


def test_statement_against_the_service(market, capsys):
    assert main(["account", "2", "--http", market]) == 0
    assert shown(capsys) == [
        "account 2: balance 48, reserved 0",
        "symbol  shares  reserved",
        "SPY         85        11",
    ]


def test_open_orders_against_the_service(market, capsys):
    assert main(["orders", "2", "--http", market]) == 0
    assert shown(capsys) == [
        "id  symbol  amount  limit  open  placed (UTC)",
        " 1  SPY        -10     12     6  TIME",
        " 2  SPY         -5     13     5  TIME",
    ]


def test_an_unknown_symbol_is_a_clear_error(market, capsys):
    assert main(["book", "NOPE", "--http", market]) == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_watch_redraws_the_book_every_second_until_ctrl_c(market):
    watching = subprocess.Popen(
        [sys.executable, "-m", "app.client", "book", "SPY", "--watch", "--http", market],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(2.5)
    watching.send_signal(signal.SIGINT)
    out, err = watching.communicate(timeout=10)
    assert watching.returncode == 0, err
    assert out.count(CLEAR_SCREEN.encode()) >= 2
    assert out.count(b"ask      12       6       1") == out.count(CLEAR_SCREEN.encode())
