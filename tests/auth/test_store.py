"""Keys and nonces in PostgreSQL: a nonce is accepted once, whoever races; revocation is at once;
the rate per key is exact however many callers share it; admission rides with the first message."""

import datetime
import threading
from decimal import Decimal

import pytest

from app.auth.refusals import AuthenticationFailed, RateLimited
from app.auth.store import KeyStore, RateLimit
from app.storage.session import ahead_of_the_next_message


def later(seconds: float = 30) -> datetime.datetime:
    """A nonce's expiry as a proof signed now would have it (taken when used, not at import)."""
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)


def admit(store: KeyStore, key_id: str, nonce: str, until: datetime.datetime | None = None) -> None:
    store.admit_alone(store.admission(store.key(key_id), nonce, until or later()))


def refusal(store: KeyStore, key_id: str, nonce: str) -> str:
    with pytest.raises(AuthenticationFailed) as refused:
        admit(store, key_id, nonce)
    return refused.value.cause


def race(callers: int, call) -> list[str]:
    """`call(number)` from many threads at once; what each got: "ok" or its refusal's class."""
    start, outcomes = threading.Barrier(callers), []

    def run(number: int):
        start.wait()
        try:
            call(number)
            outcomes.append("ok")
        except (AuthenticationFailed, RateLimited) as refused:
            outcomes.append(type(refused).__name__)

    threads = [threading.Thread(target=run, args=(number,)) for number in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_an_issued_key_is_listed_with_its_account_and_permissions_and_no_secret(store):
    trader = store.issue("123", ("trade", "read"))
    admin = store.issue(None, ("admin",))
    listed = {key.id: key for key in store.keys()}
    assert (listed[trader].account_id, listed[trader].permissions) == ("123", ("trade", "read"))
    assert (listed[admin].account_id, listed[admin].permissions) == (None, ("admin",))
    assert listed[trader].revoked_at is None


def test_a_key_tells_whose_it_is_and_what_it_may_do(store):
    key = store.key(store.issue("123", ("trade", "read")))
    assert (key.account_id, key.permissions) == ("123", {"trade", "read"})
    with pytest.raises(AuthenticationFailed, match="authentication failed"):
        store.key("no-such-key")


def test_a_nonce_is_accepted_once(store):
    key = store.issue("123", ("read",))
    admit(store, key, "nonce-001")
    assert refusal(store, key, "nonce-001") == "replayed"
    admit(store, key, "nonce-002")


def test_a_nonce_raced_by_many_callers_is_accepted_for_exactly_one(store):
    key = store.issue("123", ("read",))
    assert race(8, lambda number: admit(store, key, "raced-nonce")) == [
        "AuthenticationFailed"
    ] * 7 + ["ok"]


def test_a_revoked_key_is_refused_from_the_next_admission_on(store):
    key = store.issue("123", ("read",))
    known = store.key(key)  # as a worker remembers it
    admit(store, key, "nonce-001")
    assert store.revoke(key) is True
    with pytest.raises(AuthenticationFailed) as refused:
        store.admit_alone(store.admission(known, "nonce-002", later()))
    assert refused.value.cause == "revoked"
    assert store.revoke(key) is False
    assert store.revoke("no-such-key") is None
    with pytest.raises(AuthenticationFailed) as looked_up:
        store.key(key)
    assert looked_up.value.cause == "revoked"


def test_expired_nonces_are_purged_and_live_ones_kept(store):
    key = store.issue("123", ("read",))
    admit(store, key, "old-nonce", until=later(-300))
    admit(store, key, "live-nonce")
    store.purge_nonces()
    admit(store, key, "old-nonce")
    assert refusal(store, key, "live-nonce") == "replayed"


def test_a_keys_burst_is_exact_under_concurrent_callers(exchange_engine, engine):
    limited = KeyStore(exchange_engine, RateLimit(per_second=Decimal("0.01"), burst=Decimal(5)))
    key = limited.issue("123", ("read",))
    outcomes = race(12, lambda number: admit(limited, key, f"nonce-{number:04d}"))
    assert outcomes == ["RateLimited"] * 7 + ["ok"] * 5
    with pytest.raises(RateLimited) as limited_again:
        admit(limited, key, "nonce-late")
    assert limited_again.value.retry_after == 100  # a token every 100 s


def test_admission_rides_with_the_requests_first_message_and_refuses_before_it_runs(
    store, market, sent
):
    key = store.key(store.issue("1", ("trade",)))
    market.account("1", 1000)
    market.grant("1", "X", 10)
    sent.clear()
    with ahead_of_the_next_message(store.admission(key, "nonce-001", later())):
        market.sell("1", "X", 1, 5)
    assert len(sent) == 2  # as without authentication
    assert "EXECUTE admit(" in sent[0] and "EXECUTE lock_symbol(" in sent[0]
    with ahead_of_the_next_message(store.admission(key, "nonce-001", later())):
        with pytest.raises(AuthenticationFailed):
            market.sell("1", "X", 1, 5)
    assert len(market.open_orders("1").orders) == 1
