"""SPEC §8's proof: the string a signature covers, and the header and prefix that carry it."""

import hashlib
import hmac

import pytest

from app.auth.proof import (
    Credentials,
    MalformedProof,
    Proof,
    parse_header,
    signature,
    string_to_sign,
)
from app.protocol.prefixes import take_prefix

BODY = b'<transactions id="1"><query id="7"/></transactions>'
SIG = "0" * 64


def test_the_string_to_sign_is_the_specs_six_lines():
    assert string_to_sign(1700000000, "nonce-123", "post", "/?a=1", BODY) == (
        b"EXCH1\n1700000000\nnonce-123\nPOST\n/?a=1\n" + hashlib.sha256(BODY).hexdigest().encode()
    )


def test_the_signature_is_the_lowercase_hex_hmac_keyed_with_the_secrets_utf8_bytes():
    expected = hmac.new(
        "s\u00e9cret".encode(), string_to_sign(1, "nonce-123", "GET", "/", b""), hashlib.sha256
    ).hexdigest()
    assert signature("s\u00e9cret", 1, "nonce-123", "GET", "/", b"") == expected


def test_a_header_is_read_whatever_the_case_of_the_scheme_and_the_spaces():
    proof = parse_header(f"exch1-hmac-sha256 key=k_1,ts=1700000000 , nonce=abcdefgh,sig={SIG}")
    assert proof == Proof("k_1", 1700000000, "abcdefgh", SIG)


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer key=k, ts=1, nonce=abcdefgh, sig={SIG}",
        "EXCH1-HMAC-SHA256 key=k, ts=1, nonce=abcdefgh",
        f"EXCH1-HMAC-SHA256 key=k, ts=1, nonce=abcdefgh, sig={SIG}, extra=1",
        f"EXCH1-HMAC-SHA256 key=k, key=k, ts=1, nonce=abcdefgh, sig={SIG}",
        f"EXCH1-HMAC-SHA256 key=k, ts=-1, nonce=abcdefgh, sig={SIG}",
        f"EXCH1-HMAC-SHA256 key=k, ts=1, nonce=short, sig={SIG}",
        f"EXCH1-HMAC-SHA256 key=k!, ts=1, nonce=abcdefgh, sig={SIG}",
        f"EXCH1-HMAC-SHA256 key=k, ts=1, nonce=abcdefgh, sig={SIG.upper()}1",
        "EXCH1-HMAC-SHA256 key=k, ts=1, nonce=abcdefgh, sig=00",
        "EXCH1-HMAC-SHA256",
    ],
    ids=[
        "scheme",
        "no-sig",
        "extra",
        "twice",
        "negative-ts",
        "short-nonce",
        "key-charset",
        "upper-hex",
        "short-sig",
        "empty",
    ],
)
def test_a_malformed_header_is_refused(header):
    with pytest.raises(MalformedProof):
        parse_header(header)


def test_a_signed_document_carries_the_prefix_whose_signature_covers_what_follows():
    credentials = Credentials("k_1", "secret")
    fields, rest = take_prefix(credentials.prefixed(BODY), "exch-auth")
    proof = Proof.from_fields(fields)
    assert rest == BODY
    assert proof.sig == signature("secret", proof.ts, proof.nonce, "POST", "/", BODY)


def test_two_proofs_of_one_request_have_different_nonces():
    credentials = Credentials("k_1", "secret")
    assert credentials.header("GET", "/") != credentials.header("GET", "/")
