"""SPEC §8 end to end: a real gunicorn with authentication on, and the shim in front of it."""

import threading

import pytest
import requests

from app.auth.proof import Credentials
from app.auth.secret import key_secret
from app.auth.store import KeyStore
from app.client.cli import main
from tests.auth.keys import MASTER, MASTER_BYTES, issue
from tests.conftest import SHIM_LIMIT_FLAG
from tests.integrity.books import snapshot
from tests.shim.processes import running_shim
from tests.shim.wire import children, connect, converse, framed, read_framed_reply, read_to_end
from tests.web.servers import running_gunicorn
from tests.web.test_authentication import FAILED, ORDER, SETUP, ledger

CONNECTIONS = 8  # new connections spread over the server's two workers (SO_REUSEPORT)


@pytest.fixture(scope="session")
def secured(database_url, schema_engine, tmp_path_factory):
    """gunicorn with authentication on, and a shim that keeps connections open in front."""
    with running_gunicorn(
        database_url,
        tmp_path_factory.mktemp("secured") / "gunicorn.log",
        EXCHANGE_AUTH="on",
        EXCHANGE_AUTH_SECRET=MASTER,
    ) as gunicorn:
        with running_shim(
            gunicorn.url + "/", *SHIM_LIMIT_FLAG, "--reply-length", "--keep-open"
        ) as shim:
            yield gunicorn.url, shim.address


@pytest.fixture
def market(secured, engine, exchange_engine):
    """Accounts 1 and 2 and symbol X, created with an admin key; account 1's trading key."""
    url, _ = secured
    store = KeyStore(exchange_engine)
    admin = issue(store, None, "admin")
    response = requests.post(
        url, data=SETUP, headers={"Authorization": admin.header("POST", "/", SETUP)}, timeout=10
    )
    assert response.status_code == 200
    return store, issue(store, "1", "trade", "read")


def tcp_reply_then_close(address, request: bytes) -> bytes:
    """A kept-open connection's reply to one request, and proof the shim closed it after."""
    with connect(address) as connection:
        connection.sendall(framed(request))
        with connection.makefile("rb") as stream:
            reply = read_framed_reply(stream)
        assert read_to_end(connection) == b""
    return reply


@pytest.mark.parametrize(
    "proof",
    ["none", "malformed", "unknown", "wrong-secret", "revoked", "replayed"],
)
def test_every_failure_over_tcp_gets_the_401_body_then_a_close_and_changes_nothing(
    secured, market, engine, proof
):
    _, shim = secured
    store, trader = market
    request = {
        "none": ORDER,
        "malformed": b'<?exch-auth key="k1" ts="x"?>' + ORDER,
        "unknown": Credentials("nobody", key_secret(MASTER_BYTES, "nobody")).prefixed(ORDER),
        "wrong-secret": Credentials(trader.key, "wrong").prefixed(ORDER),
        "revoked": trader.prefixed(ORDER),
        "replayed": trader.prefixed(ORDER),
    }[proof]
    if proof == "revoked":
        store.revoke(trader.key)
    if proof == "replayed":
        assert children(converse(shim, framed(request)).split(b"\n", 1)[1])[0][0] == "opened"
    before = snapshot(engine)
    assert tcp_reply_then_close(shim, request) == FAILED
    assert snapshot(engine) == before


def test_a_signed_request_over_tcp_runs_and_the_connection_stays_open(secured, market):
    _, shim = secured
    _, trader = market
    with connect(shim) as connection, connection.makefile("rb") as stream:
        for _ in range(2):
            connection.sendall(framed(trader.prefixed(ORDER)))
            assert children(read_framed_reply(stream))[0][0] == "opened"


def test_a_request_replayed_at_once_on_many_connections_runs_once(secured, market, engine):
    url, _ = secured
    _, trader = market
    headers = {"Authorization": trader.header("POST", "/", ORDER)}
    start = threading.Barrier(CONNECTIONS)
    statuses = []

    def send():
        with requests.Session() as session:
            start.wait()
            statuses.append(session.post(url, data=ORDER, headers=headers, timeout=10).status_code)

    senders = [threading.Thread(target=send) for _ in range(CONNECTIONS)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert sorted(statuses) == [200] + [401] * (CONNECTIONS - 1)
    assert len(ledger(engine)["orders"]) == 1


def test_revocation_takes_effect_on_the_next_request_in_every_worker(secured, market):
    url, _ = secured
    store, trader = market

    def statuses() -> list[int]:
        codes = []
        for _ in range(CONNECTIONS):  # a new connection each: both workers answer some
            with requests.Session() as session:
                headers = {"Authorization": trader.header("GET", "/accounts/1")}
                codes.append(
                    session.get(f"{url}/accounts/1", headers=headers, timeout=10).status_code
                )
        return codes

    assert statuses() == [200] * CONNECTIONS
    store.revoke(trader.key)
    assert statuses() == [401] * CONNECTIONS


def test_a_keyed_request_signed_anew_for_each_attempt_runs_once_and_replays_over_tcp(
    secured, market, engine
):
    """SPEC §8 and §9 together: the key's prefix inside what the proof signs; every attempt
    proves the key afresh, and the repeat gets the first reply byte for byte."""
    _, shim = secured
    _, trader = market
    keyed = b'<?exch-idempotency key="order-1"?>' + ORDER
    first = tcp_reply_then_open(shim, trader.prefixed(keyed))
    repeat = tcp_reply_then_open(shim, trader.prefixed(keyed))
    assert children(first)[0][0] == "opened"
    assert repeat == first
    assert len(ledger(engine)["orders"]) == 1


def test_a_keyed_request_replaying_its_proof_is_refused_before_its_key_is_looked_at(
    secured, market, engine
):
    url, _ = secured
    _, trader = market
    headers = {"Idempotency-Key": "order-2", "Authorization": trader.header("POST", "/", ORDER)}
    assert requests.post(url, data=ORDER, headers=headers, timeout=10).status_code == 200
    replayed = requests.post(url, data=ORDER, headers=headers, timeout=10)
    assert (replayed.status_code, replayed.content) == (401, FAILED)
    assert len(ledger(engine)["orders"]) == 1


def tcp_reply_then_open(address, request: bytes) -> bytes:
    """A kept-open connection's reply to one request; the connection stays open after it."""
    with connect(address) as connection, connection.makefile("rb") as stream:
        connection.sendall(framed(request))
        return read_framed_reply(stream)


def test_the_client_signs_each_request_over_http_and_tcp(secured, market, tmp_path, capsysbinary):
    url, shim = secured
    _, trader = market
    request = tmp_path / "order.xml"
    request.write_bytes(ORDER)
    signing = ["--key", trader.key, "--secret", trader.secret]
    assert main(["--http", url + "/", *signing, "--raw", str(request)]) == 0
    assert main(["--tcp", f"{shim[0]}:{shim[1]}", *signing, "--raw", str(request)]) == 0
    assert main(["account", "1", "--http", url, *signing]) == 0
    assert capsysbinary.readouterr().out.count(b"<opened ") == 2
