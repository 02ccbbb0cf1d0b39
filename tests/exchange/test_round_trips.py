"""What each command costs in round trips to PostgreSQL, pinned so that a change adding one fails.

The exchange's connections are in autocommit mode, so the driver sends
nothing of its own: every round trip is one `cursor.execute` (the `sent`
fixture), BEGIN riding with a transaction's first statement.
"""

import pytest

from app.exchange import statements
from app.exchange.errors import Rejected
from app.idempotency.requests import Requests
from app.protocol import parse_request
from tests.exchange.conftest import CASH


def test_an_order_matching_within_the_first_page_takes_two_round_trips(traders, sent):
    traders.sell("2", "X", 10, 100)
    traders.sell("2", "X", 10, 101)
    sent.clear()
    traders.buy("1", "X", 15, 101)
    assert len(sent) == 2
    assert sent[0].startswith("BEGIN;")
    assert sent[-1].endswith("; COMMIT; EXECUTE order_id_drawn")  # the id, read after COMMIT


def test_the_book_is_read_by_a_statement_after_the_one_that_locks_the_symbol(traders, sent):
    traders.buy("1", "X", 10, 100)
    lock, book = sent[0].split("; ")[-2:]
    assert lock.startswith("EXECUTE lock_symbol(") and book.startswith("EXECUTE book_and_accounts_")


def test_an_order_that_rests_takes_two_round_trips(traders, sent):
    traders.buy("1", "X", 10, 100)
    assert len(sent) == 2


def test_a_refused_order_takes_two_round_trips_and_rolls_back(traders, sent):
    with pytest.raises(Rejected, match="insufficient funds"):
        traders.buy("1", "X", 1, CASH + 1)
    assert len(sent) == 2 and sent[-1] == "ROLLBACK"


def test_a_cancel_takes_two_round_trips(traders, sent):
    order = traders.buy("1", "X", 10, 100)
    sent.clear()
    traders.cancel("1", order)
    assert len(sent) == 2
    assert sent[0].startswith("BEGIN;") and sent[-1] == "COMMIT"


def test_a_cancel_finding_nothing_open_takes_two_round_trips_and_rolls_back(traders, sent):
    order = traders.buy("1", "X", 10, 100)
    traders.cancel("1", order)
    sent.clear()
    with pytest.raises(Rejected, match="no open shares"):
        traders.cancel("1", order)
    assert len(sent) == 2 and sent[-1] == "ROLLBACK"


def test_a_query_takes_one_round_trip_and_no_transaction(traders, sent):
    order = traders.buy("1", "X", 10, 100)
    sent.clear()
    traders.query("1", order)
    assert len(sent) == 1 and not sent[0].startswith("BEGIN")


def test_an_acting_account_is_looked_up_once_per_process(traders, sent):
    assert traders.exchange.account_exists("1")
    assert traders.exchange.account_exists("1")
    assert len(sent) == 1


def test_an_order_outrunning_the_first_page_runs_again_with_a_longer_one(traders, sent):
    resting = statements.BOOK_PAGE + 1
    for _ in range(resting):
        traders.sell("2", "X", 1, 100)
    sent.clear()
    order = traders.buy("1", "X", resting, 100)
    assert len(sent) == 2 + 2  # the first page, rolled back; then the whole order
    assert traders.query("1", order).open_shares == 0
    assert len(traders.query("1", order).fills) == resting


def test_each_read_takes_one_round_trip_and_no_transaction(traders, sent):
    traders.buy("1", "X", 10, 100)
    sent.clear()
    traders.statement("1")
    traders.open_orders("1")
    traders.book("X")
    traders.trades("X")
    assert len(sent) == 4
    assert not any(statement.startswith("BEGIN") for statement in sent)


def keyed(traders, children: str, key: str = "k-1") -> bytes:
    """Account 1's request of `children`, answered under an idempotency key (SPEC §9) as
    `POST /` answers it, the account already remembered (as after a first request)."""
    document = f'<transactions id="1">{children}</transactions>'.encode()
    return Requests(traders.exchange).answer(parse_request(document), key, document).body


def test_a_keyed_order_takes_two_round_trips_as_one_without_a_key(traders, sent):
    traders.exchange.account_exists("1")
    sent.clear()
    keyed(traders, '<order sym="X" amount="10" limit="100"/>')
    assert len(sent) == 2
    claim, lock = sent[0].index("EXECUTE claim_key("), sent[0].index("EXECUTE lock_symbol(")
    assert claim < lock
    assert "EXECUTE record_child(" in sent[-1]
    assert sent[-1].endswith("; COMMIT; EXECUTE order_id_drawn")


def test_a_keyed_query_takes_one_round_trip_more_to_keep_its_reply(traders, sent):
    order = traders.buy("1", "X", 10, 100)
    traders.exchange.account_exists("1")
    sent.clear()
    keyed(traders, f'<query id="{order}"/>')
    assert len(sent) == 2
    assert "EXECUTE order_view(" in sent[0] and "EXECUTE claim_key(" in sent[1]


def test_a_keyed_order_refused_takes_one_round_trip_more_to_keep_its_refusal(traders, sent):
    traders.exchange.account_exists("1")
    sent.clear()
    reply = keyed(traders, f'<order sym="X" amount="1" limit="{CASH + 1}"/>')
    assert b"insufficient funds" in reply
    assert len(sent) == 3 and sent[1] == "ROLLBACK" and "EXECUTE claim_key(" in sent[2]
