"""SPEC §8 over HTTP: proofs of a key, one reply for every failure, permissions, the rate limit."""

import time
from decimal import Decimal

import pytest
from falcon import testing
from prometheus_client import REGISTRY

from app.auth.proof import Credentials, sign
from app.auth.secret import key_secret
from app.auth.store import KeyStore
from app.config import Config
from app.web.app import create_app
from tests.auth.keys import MASTER_BYTES, issue
from tests.conftest import SMALL_BODY_LIMIT
from tests.integrity.books import snapshot
from tests.web.test_http import children

FAILED = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n"
    b"<results><error>authentication failed</error></results>\n"
)
CHALLENGE = 'EXCH1-HMAC-SHA256 realm="exchange"'
SETUP = (
    b'<create><account id="1" balance="1000"/><account id="2" balance="1000"/>'
    b'<symbol sym="X"><account id="1">100</account><account id="2">100</account></symbol></create>'
)
ORDER = b'<transactions id="1"><order sym="X" amount="2" limit="10"/></transactions>'


def service(database_url: str, **settings) -> testing.TestClient:
    config = Config(
        database_url=database_url,
        max_body_bytes=SMALL_BODY_LIMIT,
        auth=True,
        auth_secret=MASTER_BYTES,
        **settings,
    )
    return testing.TestClient(create_app(config))


@pytest.fixture
def client(engine, database_url):
    return service(database_url)


@pytest.fixture
def store(exchange_engine):
    return KeyStore(exchange_engine)


@pytest.fixture
def admin(store) -> Credentials:
    return issue(store, None, "admin")


@pytest.fixture
def trader(store, client, admin) -> Credentials:
    """Account 1's key, trade and read, on a market with accounts 1 and 2 and symbol X."""
    assert post(client, SETUP, admin).status_code == 200
    return issue(store, "1", "trade", "read")


def ledger(engine) -> dict:
    """Every table's rows but the nonces and rate buckets a request admitted uses up."""
    rows = snapshot(engine)
    return {name: rows[name] for name in rows if name not in ("auth_nonces", "auth_buckets")}


def post(client, body: bytes, credentials: Credentials | None = None, **headers):
    if credentials:
        headers["Authorization"] = credentials.header("POST", "/", body)
    return client.simulate_post("/", body=body, headers=headers)


def get(client, path: str, credentials: Credentials | None = None, **headers):
    if credentials:
        headers["Authorization"] = credentials.header("GET", path)
    return client.simulate_get(path, headers=headers)


def stale(credentials: Credentials, body: bytes) -> str:
    return sign(
        credentials.key, credentials.secret, "POST", "/", body, lambda: time.time() - 31
    ).header()


FAILURES = {
    "missing": lambda trader, store: {},
    "malformed": lambda trader, store: {"headers": {"Authorization": "EXCH1-HMAC-SHA256 key=x"}},
    "malformed-prefix": lambda trader, store: {"body": b'<?exch-auth key="x"?>' + ORDER},
    "unknown-key": lambda trader, store: {
        "credentials": Credentials("nobody", key_secret(MASTER_BYTES, "nobody"))
    },
    "wrong-secret": lambda trader, store: {"credentials": Credentials(trader.key, "wrong")},
    "stale": lambda trader, store: {"headers": {"Authorization": stale(trader, ORDER)}},
    "revoked": lambda trader, store: {"credentials": trader, "revoke": True},
}


@pytest.mark.parametrize("failure", FAILURES)
def test_every_failed_proof_gets_the_same_401_and_changes_nothing(
    client, engine, store, trader, failure
):
    case = FAILURES[failure](trader, store)
    if case.get("revoke"):
        store.revoke(trader.key)
    before = snapshot(engine)
    response = post(
        client, case.get("body", ORDER), case.get("credentials"), **case.get("headers", {})
    )
    assert (response.status_code, response.content) == (401, FAILED)
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    assert snapshot(engine) == before


def test_a_replayed_request_runs_once_and_then_gets_the_same_401(client, engine, trader):
    proof = trader.header("POST", "/", ORDER)
    assert children(post(client, ORDER, Authorization=proof))[0][0] == "opened"
    before = snapshot(engine)
    replayed = post(client, ORDER, Authorization=proof)
    assert (replayed.status_code, replayed.content) == (401, FAILED)
    assert snapshot(engine) == before


def test_a_flipped_byte_of_the_body_is_refused(client, engine, trader):
    proof = trader.header("POST", "/", ORDER)
    before = snapshot(engine)
    response = post(client, ORDER.replace(b'amount="2"', b'amount="3"'), Authorization=proof)
    assert (response.status_code, response.content) == (401, FAILED)
    assert snapshot(engine) == before


def test_the_prefix_in_an_http_body_proves_the_key_as_the_header_does(client, trader):
    response = client.simulate_post("/", body=trader.prefixed(ORDER))
    assert response.status_code == 200
    assert children(response)[0][0] == "opened"


def test_create_needs_an_admin_key(client, engine, trader):
    before = ledger(engine)
    create = b'<create><account id="3" balance="1000000"/></create>'
    response = post(client, create, trader)
    assert response.status_code == 403
    assert children(response) == [("error", {}, "forbidden")]
    assert ledger(engine) == before


def test_another_accounts_key_gets_exactly_the_reply_for_an_account_that_does_not_exist(
    client, store, trader
):
    nobody_key = issue(store, "999", "trade", "read")
    theirs = (
        b'<transactions id="2"><order sym="X" amount="-1" limit="1"/><query id="1"/></transactions>'
    )
    missing = theirs.replace(b'id="2"', b'id="999"')
    assert post(client, theirs, trader).content == post(client, missing, nobody_key).content
    assert [text for _, _, text in children(post(client, theirs, trader))] == [
        "no such account"
    ] * 2


def test_a_read_only_key_placing_an_order_reserves_nothing_and_its_reads_run(client, store, trader):
    reader = issue(store, "1", "read")
    body = b'<transactions id="1"><order sym="X" amount="2" limit="10"/><account/></transactions>'
    [refused, statement] = children(post(client, body, reader))
    assert refused == ("error", {"sym": "X", "amount": "2", "limit": "10"}, "not permitted")
    assert (statement[0], statement[1]["balance"], statement[1]["reserved"]) == (
        "account",
        "1000",
        "0",
    )


def test_a_trade_only_key_may_not_query(client, store, trader):
    placer = issue(store, "1", "trade")
    [opened] = children(post(client, ORDER, placer))
    order_id = opened[1]["id"]
    body = f'<transactions id="1"><query id="{order_id}"/></transactions>'.encode()
    assert children(post(client, body, placer)) == [("error", {"id": order_id}, "not permitted")]


def test_an_accounts_reads_need_its_own_read_key(client, store, trader):
    assert get(client, "/accounts/1", trader).status_code == 200
    assert get(client, "/accounts/1/orders", trader).status_code == 200
    assert (get(client, "/accounts/1").status_code, get(client, "/accounts/1").content) == (
        401,
        FAILED,
    )
    nobody_key = issue(store, "999", "read")
    theirs, missing = get(client, "/accounts/2", trader), get(client, "/accounts/999", nobody_key)
    assert (theirs.status_code, theirs.content) == (404, missing.content)
    placer = issue(store, "1", "trade")
    refused = get(client, "/accounts/1", placer)
    assert refused.status_code == 403
    assert children(refused) == [("error", {}, "not permitted")]


@pytest.mark.parametrize(
    "path", ["/symbols/X/book", "/symbols/X/trades", "/livez", "/readyz", "/metrics"]
)
def test_market_data_health_and_metrics_need_no_proof(client, trader, path):
    assert get(client, path).status_code == 200


def test_past_its_burst_a_key_gets_429_with_retry_after_and_nothing_runs(
    engine, exchange_engine, database_url
):
    client = service(database_url, rate_limit=Decimal("0.1"), rate_burst=Decimal(2))
    store = KeyStore(exchange_engine)
    admin = issue(store, None, "admin")
    post(client, SETUP, admin)
    trader = issue(store, "1", "trade", "read")
    for _ in range(2):
        assert post(client, ORDER, trader).status_code == 200
    before = ledger(engine)
    limited = post(client, ORDER, trader)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 9  # one token every 10 s
    assert children(limited) == [("error", {}, "rate limited")]
    assert ledger(engine) == before


def test_failures_are_counted_by_cause_and_warned_about_with_the_client_but_not_told(
    client, trader, caplog
):
    def failures(cause: str) -> float:
        return REGISTRY.get_sample_value("exchange_auth_failures_total", {"cause": cause}) or 0

    before = failures("bad_signature")
    response = post(
        client, ORDER, Credentials(trader.key, "wrong"), **{"X-Forwarded-For": "10.9.8.7"}
    )
    assert b"bad_signature" not in response.content
    assert failures("bad_signature") == before + 1
    assert any(
        "10.9.8.7" in record.getMessage() and "bad_signature" in record.getMessage()
        for record in caplog.records
    )
