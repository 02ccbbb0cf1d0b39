"""No request makes a reply much larger than itself (decisions: bounded replies)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from app.protocol import MalformedDocument, parse_request
from app.protocol.parser import REPLY_ALLOWANCE, REPLY_FACTOR, SHARED_ECHO_CHARS
from app.protocol.render import _child, _safe, echoed_size

GRANTS = "<account/>" * 2


def grants_of(sym: str, grants: str = GRANTS) -> bytes:
    return f'<create><symbol sym="{sym}">{grants}</symbol></create>'.encode()


def test_each_grant_echoes_a_long_sym_of_its_symbol_cut_short():
    items = parse_request(grants_of("A" * 200_000)).items
    assert {item.echo for item in items} == {(("sym", "A" * SHARED_ECHO_CHARS + "..."),)}


def test_each_grant_echoes_a_sym_of_sane_size_exactly():
    padded = "  SPY" + " " * (SHARED_ECHO_CHARS - 5)
    grants = '<account id="1">1</account>' * 2
    assert [item.echo for item in parse_request(grants_of(padded, grants)).items[1:]] == [
        (("sym", padded), ("id", "1"))
    ] * 2


def test_a_request_whose_own_text_would_make_its_reply_8_times_larger_is_refused_whole():
    """Many tiny grants of a symbol with a bad sym: each would be answered with an error
    repeating the sym and saying why it is bad, some 180 bytes for 10."""
    body = grants_of("A" * 1000 + "!", "<account/>" * 10_000)
    with pytest.raises(MalformedDocument, match="would get more than"):
        parse_request(body)


def test_a_small_request_may_make_more_than_its_size_within_the_allowance():
    body = grants_of("A" * 1000 + "!", "<account/>" * 10)
    items = parse_request(body).items
    made = sum(echoed_size(item.echo, item.problem) for item in items)
    assert len(body) < made <= REPLY_FACTOR * len(body) + REPLY_ALLOWANCE


TEXT = st.text(st.sampled_from("aZ0 \"'&<>\t\n\ré€😀\x01"), max_size=12)


@given(
    attributes=st.dictionaries(st.sampled_from(["sym", "id", "amount"]), TEXT),
    problem=st.none() | TEXT,
)
def test_echoed_size_is_the_size_lxml_writes(attributes, problem):
    echo = tuple(attributes.items())
    element = _child(etree.Element("results"), "error", echo)
    if problem is not None:
        element.text = _safe(problem)
    assert echoed_size(echo, problem) == len(etree.tostring(element, encoding="UTF-8"))
