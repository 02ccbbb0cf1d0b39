"""A key is claimed by the first child that commits an effect, in that child's transaction; a
request of effects only is answered by its children's records, the rest by their reply kept."""

import threading
import time

from sqlalchemy import select, text

from app.storage.schema import symbols
from tests.idempotency.test_requests import BUY, keyed, order_count
from tests.web.test_http import children, open_accounts, post

WAITING_FOR_LOCKS = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


def wait_for_waiters(engine, count: int, within_s: float = 10.0) -> None:
    """Until `count` transactions wait for a lock; each look in a transaction of its own,
    since a transaction sees the statistics of its first look."""
    deadline = time.monotonic() + within_s
    with engine.connect() as connection:
        while connection.scalar(WAITING_FOR_LOCKS) < count:
            connection.rollback()
            assert time.monotonic() < deadline, f"fewer than {count} transactions ever waited"
            time.sleep(0.01)


def in_thread(call) -> tuple[threading.Thread, list]:
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(call()))
    thread.start()
    return thread, outcome


def test_a_repeat_sent_while_the_first_runs_its_only_child_waits_for_it_and_gets_its_reply(
    client, engine
):
    """The repeat's claim waits for the first's, still uncommitted; once the first commits,
    the repeat finds the key answered, where a claim of its own would have said 409."""
    open_accounts(client)
    with engine.connect() as holder:
        holder.execute(select(symbols).where(symbols.c.symbol == "X").with_for_update())
        first_thread, first = in_thread(lambda: keyed(client, BUY))
        wait_for_waiters(engine, 1)
        repeat_thread, repeat = in_thread(lambda: keyed(client, BUY))
        wait_for_waiters(engine, 2)
        holder.rollback()
    first_thread.join()
    repeat_thread.join()
    assert first[0].status_code == repeat[0].status_code == 200
    assert repeat[0].content == first[0].content
    assert repeat[0].headers["idempotent-replayed"] == "true"
    assert order_count(engine) == 1


def test_a_repeat_of_a_cancel_is_its_first_reply_byte_for_byte(client, engine):
    open_accounts(client)
    post(client, b'<transactions id="2"><order sym="X" amount="-2" limit="10"/></transactions>')
    post(client, b'<transactions id="1"><order sym="X" amount="5" limit="10"/></transactions>')
    cancel = b'<transactions id="1"><cancel id="2"/></transactions>'
    first = keyed(client, cancel)
    repeat = keyed(client, cancel)
    assert [tag for tag, _, _ in children(first)] == ["canceled"]
    assert repeat.content == first.content and repeat.headers["idempotent-replayed"] == "true"


def test_a_repeat_of_a_create_is_its_first_reply_byte_for_byte(client, engine):
    create = (
        b'<create><account id="7" balance="5"/><symbol sym="Y"><account id="7">3</account>'
        b"</symbol></create>"
    )
    first = keyed(client, create)
    repeat = keyed(client, create)
    assert [tag for tag, _, _ in children(first)] == ["created", "created"]
    assert repeat.content == first.content and repeat.headers["idempotent-replayed"] == "true"


def test_a_refusal_is_replayed_even_once_the_request_would_succeed(client, engine):
    open_accounts(client)
    sell = b'<transactions id="1"><order sym="X" amount="-1" limit="10"/></transactions>'
    first = keyed(client, sell)
    post(client, b'<create><symbol sym="X"><account id="1">5</account></symbol></create>')
    repeat = keyed(client, sell)
    assert [tag for tag, _, _ in children(first)] == ["error"]
    assert repeat.content == first.content and repeat.headers["idempotent-replayed"] == "true"
    assert order_count(engine) == 0


def test_a_request_whose_last_child_is_refused_keeps_its_whole_reply(client, engine):
    open_accounts(client)
    buy_then_refused = BUY.replace(
        b"</transactions>", b'<order sym="X" amount="1" limit="99999999"/></transactions>'
    )
    first = keyed(client, buy_then_refused)
    repeat = keyed(client, buy_then_refused)
    assert [tag for tag, _, _ in children(first)] == ["opened", "error"]
    assert repeat.content == first.content and repeat.headers["idempotent-replayed"] == "true"
    assert order_count(engine) == 1
