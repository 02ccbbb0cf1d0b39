"""Hostile documents (SPEC §3.3): refused quickly, never expanded, never fetched."""

import gzip
import http.server
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from app.exchange.commands import Request
from app.protocol import DocumentTooLarge, MalformedDocument, ProtocolError, parse_request, parser

DTD_REFUSED = "request must not declare a DTD or entities"
NOT_WELL_FORMED = "request is not well-formed XML"
ENTITIES = ['<!ENTITY lol0 "lol">'] + [
    f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
]
LAUGHS = (
    f'<!DOCTYPE create [{"".join(ENTITIES)}]><create><account balance="&lol9;"/></create>'.encode()
)


@pytest.fixture
def web_server():
    """A local HTTP server recording every path asked of it."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY leaked "LEAKED">')

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def refusal(body: bytes) -> str:
    with pytest.raises(MalformedDocument) as caught:
        parse_request(body)
    return str(caught.value)


def test_billion_laughs_is_refused_without_expansion():
    started = time.monotonic()
    assert refusal(LAUGHS) == DTD_REFUSED
    assert time.monotonic() - started < 1


def test_billion_laughs_is_refused_quickly_even_past_the_doctype_check(monkeypatch):
    monkeypatch.setattr(parser, "FORBIDDEN", ())
    started = time.monotonic()
    refusal(LAUGHS)
    refusal(LAUGHS.replace(b'<account balance="&lol9;"/>', b"&lol9;"))
    assert time.monotonic() - started < 1


def test_parser_never_expands_entities():
    body = f"<!DOCTYPE create [{''.join(ENTITIES[:4])}]><create>&lol3;</create>".encode()
    assert etree.tostring(etree.fromstring(body, parser.xml_parser())) == b"<create>&lol3;</create>"


def test_external_file_entity_is_refused_and_never_read():
    body = b'<!DOCTYPE create [<!ENTITY e SYSTEM "file:///etc/passwd">]><create>&e;</create>'
    assert refusal(body) == DTD_REFUSED
    assert etree.tostring(etree.fromstring(body, parser.xml_parser())) == b"<create>&e;</create>"


def test_external_http_entity_is_refused_and_never_fetched(web_server):
    url, hits = web_server
    body = f'<!DOCTYPE create [<!ENTITY e SYSTEM "{url}/e">]><create>&e;</create>'.encode()
    assert refusal(body) == DTD_REFUSED
    assert etree.tostring(etree.fromstring(body, parser.xml_parser())) == b"<create>&e;</create>"
    assert hits == []


def test_external_http_dtd_is_refused_and_never_fetched(web_server, monkeypatch):
    url, hits = web_server
    body = f'<!DOCTYPE create SYSTEM "{url}/x.dtd"><create>&leaked;</create>'.encode()
    assert refusal(body) == DTD_REFUSED
    monkeypatch.setattr(parser, "FORBIDDEN", ())
    refusal(body)
    assert hits == []


def test_external_local_dtd_is_never_loaded(tmp_path):
    """Regression guard: lxml's collect_ids=False makes libxml2 load the external subset."""
    dtd = tmp_path / "x.dtd"
    dtd.write_text('<!ENTITY leaked "LEAKED">')
    body = f'<!DOCTYPE create SYSTEM "{dtd.as_uri()}"><create>&leaked;</create>'.encode()
    root = etree.fromstring(body, parser.xml_parser())
    assert root.getroottree().docinfo.externalDTD is None
    assert b"LEAKED" not in etree.tostring(root)


def test_parameter_entities_are_never_fetched_or_expanded(web_server):
    url, hits = web_server
    body = (
        f'<!DOCTYPE create [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]><create>&leaked;</create>'
    ).encode()
    assert refusal(body) == DTD_REFUSED
    root = etree.fromstring(body, parser.xml_parser())
    assert hits == [] and b"LEAKED" not in etree.tostring(root)


def test_internal_dtd_is_refused():
    assert refusal(b"<!DOCTYPE create><create/>") == DTD_REFUSED


def test_dtd_is_refused_even_past_the_doctype_check(monkeypatch):
    monkeypatch.setattr(parser, "FORBIDDEN", ())
    assert refusal(b'<!DOCTYPE create [<!ENTITY e "x">]><create/>') == DTD_REFUSED


def test_undeclared_entity_is_not_well_formed():
    assert refusal(b"<create>&xxe;</create>").startswith(
        f"{NOT_WELL_FORMED}: Entity 'xxe' not defined"
    )


def test_ten_thousand_levels_of_nesting_are_refused():
    depth = 10_000
    assert refusal(b"<create>" + b"<a>" * depth + b"</a>" * depth + b"</create>").startswith(
        NOT_WELL_FORMED
    )


def test_nesting_beyond_the_depth_cap_is_refused():
    depth = parser.MAX_DEPTH
    body = b"<create>" + b"<a>" * depth + b"</a>" * depth + b"</create>"
    assert refusal(body) == f"request nests elements more than {depth} levels deep"


def test_too_many_elements_are_refused():
    body = b"<create>" + b"<a/>" * parser.MAX_ELEMENTS + b"</create>"
    assert refusal(body) == f"request has more than {parser.MAX_ELEMENTS} elements"


def test_many_siblings_below_the_cap_are_parsed():
    count = 20_000
    body = b'<transactions id="1">' + b'<query id="1"/>' * count + b"</transactions>"
    assert len(parse_request(body).items) == count


def test_huge_attribute_value_is_a_short_problem():
    body = (
        b'<transactions id="1"><order sym="'
        + b"A" * 900_000
        + b'" amount="1" limit="1"/></transactions>'
    )
    (item,) = parse_request(body).items
    assert item.problem.startswith("malformed symbol") and len(item.problem) < 200
    assert item.echo[0] == ("sym", "A" * 900_000)


def test_huge_tag_name_is_shortened_in_the_message():
    message = refusal(b"<" + b"x" * 10_000 + b"/>")
    assert message.startswith("root element must be") and len(message) < 300


def test_oversize_body_is_too_large():
    with pytest.raises(DocumentTooLarge) as caught:
        parse_request(b"<create/>" + b" " * 100, max_bytes=100)
    assert str(caught.value) == "request is larger than the limit of 100 bytes"


def test_body_at_the_limit_is_accepted():
    body = b"<create/>" + b" " * 91
    assert parse_request(body, max_bytes=100) == Request(items=())


def test_default_limit_is_one_mebibyte():
    with pytest.raises(DocumentTooLarge):
        parse_request(b"<create/>" + b" " * (1 << 20))


def test_empty_body_is_refused():
    assert refusal(b"") == "request is empty"


def test_whitespace_only_body_is_refused():
    assert refusal(b" \r\n\t ") == "request is empty"


def test_invalid_utf8_is_refused():
    message = refusal(b'<create><account id="\xff"/></create>')
    assert message == "request is not valid UTF-8: invalid start byte at byte 21"


def test_utf16_with_byte_order_mark_is_refused():
    assert refusal("<create/>".encode("utf-16")).startswith("request is not valid UTF-8")


def test_utf16_without_byte_order_mark_is_not_well_formed():
    body = '<?xml version="1.0" encoding="UTF-16"?><create/>'.encode("utf-16-le")
    assert refusal(body).startswith(NOT_WELL_FORMED)


def test_nul_byte_is_not_well_formed():
    assert refusal(b"<create>\x00</create>").startswith(NOT_WELL_FORMED)


def test_control_character_reference_is_not_well_formed():
    assert refusal(b'<create><account id="&#1;"/></create>').startswith(NOT_WELL_FORMED)


def test_gzip_body_is_not_decompressed():
    refusal(gzip.compress(b"<create/>"))
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(gzip.compress(b"<create/>"), parser.xml_parser())


def test_unclosed_element_is_not_well_formed():
    assert refusal(b"<create>").startswith(NOT_WELL_FORMED)


def test_two_roots_are_not_well_formed():
    assert refusal(b"<create/><create/>").startswith(NOT_WELL_FORMED)


def test_text_that_is_not_xml_is_not_well_formed():
    assert refusal(b"hello").startswith(NOT_WELL_FORMED)


def test_wrong_root_is_refused():
    assert (
        refusal(b"<results/>") == "root element must be <create> or <transactions>, not <results>"
    )


def test_too_large_and_malformed_share_one_base():
    assert issubclass(DocumentTooLarge, ProtocolError) and issubclass(
        MalformedDocument, ProtocolError
    )


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300)
    | st.text(max_size=200).map(lambda text: f"<create>{text}</create>".encode())
)
def test_arbitrary_bytes_parse_or_raise_a_protocol_error(body):
    try:
        assert isinstance(parse_request(body), Request)
    except ProtocolError as error:
        assert str(error)
