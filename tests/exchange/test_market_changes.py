"""SPEC §10's reads: a poll of the watched symbols for the live streams, and the symbols list."""

from sqlalchemy import text

from app.exchange import statements
from app.exchange.commands import PollMarket, WatchedSymbol
from app.exchange.results import Quote
from tests.exchange.market import levels


def poll(market, *watched: tuple[str, int, int | None], resumed=()):
    command = PollMarket(tuple(WatchedSymbol(*symbol) for symbol in watched), tuple(resumed))
    return market.exchange.poll_market(command)


def trade(traders, price: int, shares: int = 1) -> None:
    traders.sell("2", "X", shares, price)
    traders.buy("1", "X", shares, price)


def prices(trades) -> list:
    return [numbered.trade.price for numbered in trades]


def test_a_poll_gives_the_book_and_the_trades_after_the_last_one_seen_oldest_first(traders):
    for price in (10, 11, 12):
        trade(traders, price)
    traders.buy("1", "X", 5, 9)
    first = poll(traders, ("X", 10, None)).symbols["X"]
    for price in (13, 14):
        trade(traders, price)
    changes = poll(traders, ("X", 10, first.latest_trade_id)).symbols["X"]
    assert prices(changes.trades) == [13, 14]
    assert changes.latest_trade_id == changes.trades[-1].id > first.latest_trade_id
    assert levels(changes.book.bids) == [(9, 5, 1)] and changes.book.asks == ()


def test_a_symbol_watched_from_now_on_gets_its_latest_trade_id_and_no_trades(traders):
    trade(traders, 10)
    changes = poll(traders, ("X", 10, None)).symbols["X"]
    assert changes.trades == () and changes.latest_trade_id > 0


def test_a_symbol_that_never_traded_has_latest_trade_id_zero(traders):
    assert poll(traders, ("X", 10, None)).symbols["X"].latest_trade_id == 0


def test_an_unknown_symbol_is_left_out(traders):
    assert set(poll(traders, ("X", 10, None), ("NOPE", 10, None)).symbols) == {"X"}


def test_each_watched_symbol_gets_its_book_at_its_depth(traders):
    traders.grant("2", "Y", 100)
    for price in (5, 6, 7):
        traders.buy("1", "X", 1, price)
        traders.sell("2", "Y", 1, price + 10)
    changes = poll(traders, ("X", 2, None), ("Y", 1, None)).symbols
    assert levels(changes["X"].book.bids) == [(7, 1, 1), (6, 1, 1)]
    assert levels(changes["Y"].book.asks) == [(15, 1, 1)]


def test_a_resuming_stream_gets_the_trades_after_its_last_one(traders):
    for price in (10, 11, 12):
        trade(traders, price)
    first = poll(traders, ("X", 10, None), resumed=[("X", 0)]).resumed[("X", 0)]
    changes = poll(traders, ("X", 10, None), resumed=[("X", first[0].id)])
    assert prices(changes.resumed[("X", first[0].id)]) == [11, 12]


def test_a_stream_resuming_from_long_ago_gets_the_symbols_last_thousand_trades(traders, engine):
    trade(traders, 10)
    execute_many(engine, statements.RESUMABLE + 5)
    missed = poll(traders, ("X", 10, None), resumed=[("X", 0)]).resumed[("X", 0)]
    assert len(missed) == statements.RESUMABLE
    assert [numbered.id for numbered in missed] == sorted(numbered.id for numbered in missed)
    latest = poll(traders, ("X", 10, None)).symbols["X"].latest_trade_id
    assert missed[-1].id == latest


def test_a_poll_gives_a_page_of_trades_at_most_and_the_rest_follow(traders, engine):
    trade(traders, 10)
    seen = poll(traders, ("X", 10, None)).symbols["X"].latest_trade_id
    execute_many(engine, statements.MARKET_PAGE + 5)
    page = poll(traders, ("X", 10, seen)).symbols["X"].trades
    rest = poll(traders, ("X", 10, page[-1].id)).symbols["X"].trades
    assert (len(page), len(rest)) == (statements.MARKET_PAGE, 5)
    assert page[0].id > seen and rest[0].id > page[-1].id


def test_a_poll_is_one_statement_whatever_it_watches(traders, sent):
    traders.grant("2", "Y", 100)
    sent.clear()
    poll(traders, ("X", 10, 0), ("Y", 5, None), resumed=[("X", 0), ("Y", 3)])
    assert len(sent) == 1


def test_the_symbols_list_gives_each_symbols_last_trade_in_byte_order(traders):
    traders.grant("2", "B", 100)
    traders.grant("2", "a", 100)
    trade(traders, 10)
    trade(traders, 12)
    quotes = traders.exchange.quotes().quotes
    assert [quote.symbol for quote in quotes] == ["B", "X", "a"]
    assert quotes[0] == Quote("B", None, None)
    assert quotes[1].price == 12 and quotes[1].time > 0


def test_symbol_exists_knows_the_symbols_there_are(traders):
    assert traders.exchange.symbol_exists("X")
    assert not traders.exchange.symbol_exists("NOPE")


def execute_many(engine, count: int) -> None:
    """`count` more executions of X between its first two orders, written straight into the
    table: more trades than a test could make, to page through."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO executions (symbol, buy_order_id, sell_order_id, shares, price)"
                " SELECT 'X', 2, 1, 1, 10 + n FROM generate_series(1, :count) n"
            ),
            {"count": count},
        )
