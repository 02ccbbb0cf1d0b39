"""Keys are kept at least the configured time, then forgotten without waiting for anyone."""

import threading

from sqlalchemy import func, select, text, update

from app.exchange.transactions import Exchange
from app.idempotency.purge import purge_expired
from app.storage.schema import idempotent_children, idempotent_requests
from tests.idempotency.test_requests import BUY, keyed, order_count
from tests.web.test_http import open_accounts

DAY = 24 * 3600


def age(engine, key: str, hours: float) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(idempotent_requests)
            .where(idempotent_requests.c.key == key)
            .values(created_at=func.now() - text(f"interval '{hours} hours'"))
        )


def keys(engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(select(idempotent_requests.c.key)))


def test_keys_older_than_the_retention_are_forgotten_with_their_children(
    client, engine, exchange_engine
):
    open_accounts(client)
    keyed(client, BUY, key="old")
    keyed(client, BUY, key="young")
    age(engine, "old", 25)
    age(engine, "young", 23)
    assert purge_expired(Exchange(exchange_engine), DAY) == 1
    assert keys(engine) == {"young"}
    with engine.connect() as connection:
        children = connection.scalars(select(idempotent_children.c.key)).all()
    assert children == ["young"]
    reused = keyed(client, BUY.replace(b'amount="5"', b'amount="6"'), key="old")
    assert reused.status_code == 200 and order_count(engine) == 3


def test_a_purge_skips_a_request_another_transaction_holds_instead_of_waiting(
    client, engine, exchange_engine
):
    open_accounts(client)
    for key in ("held", "free"):
        keyed(client, BUY, key=key)
        age(engine, key, 25)
    exchange = Exchange(exchange_engine)
    with engine.connect() as holder:
        holder.execute(
            select(idempotent_requests.c.key)
            .where(idempotent_requests.c.key == "held")
            .with_for_update()
        )
        purged = []
        purge = threading.Thread(target=lambda: purged.append(purge_expired(exchange, DAY)))
        purge.start()
        purge.join(timeout=10)
        assert not purge.is_alive() and purged == [1]
        holder.rollback()
    assert keys(engine) == {"held"}
