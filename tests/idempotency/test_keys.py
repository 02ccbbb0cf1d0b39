"""Where a key comes from and what it may be (SPEC §9), over HTTP and the legacy TCP protocol."""

import pytest
import requests

from app.idempotency.keys import MalformedKey, request_key
from tests.idempotency.test_requests import BUY, keyed, order_count
from tests.shim.wire import children, converse, framed
from tests.web.test_http import children as http_children
from tests.web.test_http import open_accounts

OPEN = (
    b'<create><account id="1" balance="1000000"/><account id="2" balance="1000000"/>'
    b'<symbol sym="X"><account id="2">10000</account></symbol></create>'
)


def prefixed(key: bytes, document: bytes = BUY) -> bytes:
    return b'<?exch-idempotency key="' + key + b'"?>' + document


def test_the_prefix_is_taken_off_and_the_document_after_it_kept_as_sent():
    assert request_key(None, prefixed(b"a_Z-9", b" <create/>")) == ("a_Z-9", b" <create/>")
    assert request_key("h", b"<create/>") == ("h", b"<create/>")
    assert request_key(None, b"<create/>") == (None, b"<create/>")


@pytest.mark.parametrize(
    "header, body",
    [
        ("", BUY),
        ("k" * 65, BUY),
        ("k k", BUY),
        ("k,k", BUY),
        (None, prefixed(b"")),
        (None, prefixed(b"k.k")),
        (None, b'<?exch-idempotency id="k"?>' + BUY),
        (None, b'<?exch-idempotency key="k" key2="k"?>' + BUY),
        ("k", prefixed(b"k")),
    ],
    ids=[
        "empty",
        "65-characters",
        "space",
        "given-twice-in-the-header",
        "empty-in-prefix",
        "dot",
        "no-key-attribute",
        "extra-attribute",
        "header-and-prefix",
    ],
)
def test_a_malformed_key_is_refused(header, body):
    with pytest.raises(MalformedKey):
        request_key(header, body)


def test_a_malformed_key_is_a_400_and_nothing_runs(client, engine):
    open_accounts(client)
    response = keyed(client, BUY, key="not a key")
    assert response.status_code == 400
    [(tag, _, text)] = http_children(response)
    assert tag == "error" and text.startswith("malformed idempotency key 'not a key'")
    assert order_count(engine) == 0


def test_over_tcp_a_repeat_gets_the_first_reply_and_another_document_the_error(shim, engine):
    converse(shim.address, framed(OPEN))
    first = converse(shim.address, framed(prefixed(b"tcp-1")))
    repeat = converse(shim.address, framed(prefixed(b"tcp-1")))
    other = converse(shim.address, framed(prefixed(b"tcp-1", BUY.replace(b'"5"', b'"6"'))))
    assert [tag for tag, _, _ in children(first)] == ["opened"]
    assert repeat == first
    assert children(other) == [("error", {}, "idempotency key reused with a different request")]
    assert order_count(engine) == 1


def test_an_http_repeat_of_a_request_sent_over_tcp_is_the_same_request(shim, server, engine):
    converse(shim.address, framed(OPEN))
    first = converse(shim.address, framed(prefixed(b"both")))
    repeat = requests.post(f"{server}/", data=BUY, headers={"Idempotency-Key": "both"}, timeout=10)
    assert repeat.content == first and repeat.headers["Idempotent-Replayed"] == "true"
    assert order_count(engine) == 1
