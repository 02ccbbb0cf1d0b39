"""The gate (SPEC §8): a proof by header or prefix, checked in time and signature before the
database is asked, each failure with its cause; nothing checked when authentication is off."""

from decimal import Decimal

import pytest

from app.auth.gate import Gate
from app.auth.proof import Credentials, sign
from app.auth.refusals import AuthenticationFailed, RateLimited
from app.auth.secret import key_secret
from app.auth.store import KeyStore, RateLimit
from app.storage.session import recording
from tests.auth.keys import MASTER_BYTES, issue

NOW = 1_800_000_000.0
SKEW = 30
BODY = b'<transactions id="1"><account/></transactions>'


@pytest.fixture
def gate(store):
    return Gate(store, MASTER_BYTES, SKEW, clock=lambda: NOW)


@pytest.fixture
def trader(store) -> Credentials:
    return issue(store, "1", "trade", "read")


def header(credentials: Credentials, body=BODY, target="/", method="POST", at=NOW) -> str:
    return sign(credentials.key, credentials.secret, method, target, body, lambda: at).header()


def prefixed(credentials: Credentials, body=BODY, at=NOW) -> bytes:
    return sign(credentials.key, credentials.secret, "POST", "/", body, lambda: at).prefix() + body


def admitted(gate: Gate, *request):
    """The request's pass, once admitted (its nonce recorded on the way out, when nothing of
    the request carried it)."""
    with gate.admit(*request) as entered:
        return entered


def cause(gate: Gate, *request) -> str:
    with pytest.raises(AuthenticationFailed) as failure:
        admitted(gate, *request)
    assert str(failure.value) == "authentication failed"
    return failure.value.cause


def test_a_header_proves_its_key_and_the_body_is_left_as_sent(gate, trader):
    entered = admitted(gate, "POST", "/", header(trader), BODY)
    assert (entered.key.id, entered.key.account_id) == (trader.key, "1")
    assert entered.key.permissions == {"trade", "read"}
    assert entered.document == BODY


def test_a_prefix_proves_its_key_as_a_post_to_the_root_and_is_taken_off(gate, trader):
    entered = admitted(gate, "POST", "/", None, prefixed(trader))
    assert entered.key.id == trader.key and entered.document == BODY


def test_without_a_proof_the_request_fails(gate):
    assert cause(gate, "POST", "/", None, BODY) == "missing"


def test_a_header_and_a_prefix_together_are_one_proof_too_many(gate, trader):
    assert cause(gate, "POST", "/", header(trader), prefixed(trader)) == "malformed"


@pytest.mark.parametrize(
    "proof",
    [
        "EXCH1-HMAC-SHA256 key=k",
        "Basic dXNlcjpwYXNz",
        f"EXCH1-HMAC-SHA256 key=k, ts=1, nonce=abcdefgh, sig={'g' * 64}",
    ],
    ids=["incomplete", "other-scheme", "not-hex"],
)
def test_a_malformed_header_fails(gate, proof):
    assert cause(gate, "POST", "/", proof, BODY) == "malformed"


def test_a_malformed_prefix_fails(gate):
    assert cause(gate, "POST", "/", None, b'<?exch-auth key="k"?>' + BODY) == "malformed"


@pytest.mark.parametrize("offset", [SKEW + 1, -(SKEW + 1)], ids=["ahead", "behind"])
def test_a_time_beyond_the_skew_fails(gate, trader, offset):
    assert cause(gate, "POST", "/", header(trader, at=NOW + offset), BODY) == "stale"


@pytest.mark.parametrize("offset", [SKEW - 1, -(SKEW - 1)], ids=["ahead", "behind"])
def test_a_time_within_the_skew_passes(gate, trader, offset):
    assert admitted(gate, "POST", "/", header(trader, at=NOW + offset), BODY).key.id == trader.key


def test_one_flipped_byte_of_the_body_fails(gate, trader):
    flipped = BODY.replace(b"account", b"accounu")
    assert cause(gate, "POST", "/", header(trader), flipped) == "bad_signature"


def test_the_method_and_target_are_signed_too(gate, trader):
    proof = header(trader, body=b"", target="/accounts/1", method="GET")
    assert cause(gate, "GET", "/accounts/2", proof, b"") == "bad_signature"
    assert cause(gate, "POST", "/accounts/1", proof, b"") == "bad_signature"


def test_a_wrong_secret_fails_without_asking_the_database(gate, trader, exchange_engine):
    forged = Credentials(trader.key, "not the secret")
    unknown = Credentials("no-such-key", "not the secret")
    with recording(exchange_engine) as sent:
        assert cause(gate, "POST", "/", header(forged), BODY) == "bad_signature"
        assert cause(gate, "POST", "/", header(unknown), BODY) == "bad_signature"
    assert sent == []  # a key that exists costs what one that does not costs


def test_a_key_signed_right_but_not_issued_fails(gate):
    unissued = Credentials("never-issued", key_secret(MASTER_BYTES, "never-issued"))
    assert cause(gate, "POST", "/", header(unissued), BODY) == "unknown_key"


def test_a_revoked_key_fails_whether_it_was_known_before_or_not(gate, store, trader):
    admitted(gate, "POST", "/", header(trader), BODY)  # the gate now knows the key
    store.revoke(trader.key)
    assert cause(gate, "POST", "/", header(trader), BODY) == "revoked"
    fresh_gate = Gate(store, MASTER_BYTES, SKEW, clock=lambda: NOW)
    assert cause(fresh_gate, "POST", "/", header(trader), BODY) == "revoked"


def test_a_replayed_proof_fails(gate, trader):
    proof = header(trader)
    admitted(gate, "POST", "/", proof, BODY)
    assert cause(gate, "POST", "/", proof, BODY) == "replayed"


def test_past_its_burst_a_key_is_rate_limited(exchange_engine, engine):
    store = KeyStore(exchange_engine, RateLimit(Decimal("0.5"), Decimal(2)))
    gate = Gate(store, MASTER_BYTES, SKEW, clock=lambda: NOW)
    trader = issue(store, "1", "trade")
    for _ in range(2):
        admitted(gate, "POST", "/", header(trader), BODY)
    with pytest.raises(RateLimited) as limited:
        admitted(gate, "POST", "/", header(trader), BODY)
    assert limited.value.retry_after == 2 and limited.value.key.id == trader.key


def test_with_authentication_off_nothing_is_checked_and_a_prefix_is_taken_off(trader):
    off = Gate()

    def passed(authorization, body) -> tuple:
        entered = admitted(off, "POST", "/", authorization, body)
        return entered.key, entered.document

    assert passed(None, BODY) == (None, BODY)
    assert passed("garbage", trader.prefixed(BODY)) == (None, BODY)
    malformed = b"<?exch-auth key=k?>" + BODY
    assert passed(None, malformed) == (None, malformed)


def test_what_a_key_may_do_is_read_once_per_process(gate, trader, exchange_engine):
    with recording(exchange_engine) as sent:
        for _ in range(3):
            admitted(gate, "POST", "/", header(trader), BODY)
    assert sum(statement.count("EXECUTE key(") for statement in sent) == 1
    assert sum(statement.count("EXECUTE admit(") for statement in sent) == 3
