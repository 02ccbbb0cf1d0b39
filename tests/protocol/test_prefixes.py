"""Prefixes before the document (SPEC §8, §9): read by shape, the rest left as sent."""

import pytest

from app.protocol.prefixes import MAX_PREFIX_BYTES, take_prefix

AUTH = b'<?exch-auth key="k1" ts="1700000000" nonce="n0nce-01" sig="ab12"?>'


def test_a_prefix_gives_its_attributes_and_the_bytes_after_it_untouched():
    assert take_prefix(AUTH + b" <create/>\n", "exch-auth") == (
        {"key": "k1", "ts": "1700000000", "nonce": "n0nce-01", "sig": "ab12"},
        b" <create/>\n",
    )


@pytest.mark.parametrize(
    "body",
    [b"<create/>", b" " + AUTH + b"<create/>", b"<?exch-authority?><create/>", b""],
    ids=["none", "not-first", "longer-name", "empty"],
)
def test_a_body_without_the_prefix_is_not_read(body):
    assert take_prefix(body, "exch-auth") is None


@pytest.mark.parametrize(
    "prefix",
    [
        b"<?exch-auth key=k1?>",
        b'<?exch-auth  key="k1"?>',
        b'<?exch-auth key="k1" key="k2"?>',
        b'<?exch-auth key="k1"x?>',
        '<?exch-auth key="k\u00e9"?>'.encode(),
    ],
    ids=["unquoted", "two-spaces", "twice", "stray", "not-ascii"],
)
def test_a_malformed_prefix_has_no_attributes(prefix):
    assert take_prefix(prefix + b"<create/>", "exch-auth") == (None, b"<create/>")


def test_a_prefix_without_an_end_is_malformed_and_nothing_is_taken():
    body = b'<?exch-auth key="' + b"k" * MAX_PREFIX_BYTES + b'"?><create/>'
    assert take_prefix(body, "exch-auth") == (None, body)
