"""One key=value log line per request document; warnings for bad input and slow requests."""

import logging
import shlex

import pytest
from falcon import testing

from app.config import Config
from app.web.app import create_app
from app.web.observe import logfmt

CREATE = b'<create><account id="1" balance="10"/><account id="1" balance="10"/></create>'


@pytest.fixture
def request_log(caplog):
    caplog.set_level(logging.DEBUG, logger="app.web.requests")
    return lambda: [record for record in caplog.records if record.name == "app.web.requests"]


def fields(record: logging.LogRecord) -> dict[str, str]:
    message = record.getMessage()
    assert message.startswith("request ")
    return dict(pair.split("=", 1) for pair in shlex.split(message.removeprefix("request ")))


def test_a_request_logs_one_info_line(client, request_log):
    client.simulate_post("/", body=CREATE)
    [record] = request_log()
    assert record.levelno == logging.INFO
    line = fields(record)
    assert line.pop("ms")
    assert line == {
        "kind": "create",
        "account": "-",
        "items": "2",
        "failed": "1",
        "status": "200",
        "outcome": "ok",
    }


def test_transactions_log_their_account(client, request_log):
    client.simulate_post("/", body=b'<transactions id="42"><query id="1"/></transactions>')
    [record] = request_log()
    assert fields(record)["kind"] == "transactions"
    assert fields(record)["account"] == "42"


def test_bad_input_logs_a_warning_with_the_error(client, request_log):
    client.simulate_post("/", body=b"<create><account")
    [record] = request_log()
    assert record.levelno == logging.WARNING
    assert fields(record)["outcome"] == "bad_request"
    assert 'error="request is not well-formed XML' in record.getMessage()


def test_slow_request_logs_a_warning(engine, database_url, request_log):
    slow = testing.TestClient(create_app(Config(database_url=database_url, slow_ms=0)))
    slow.simulate_post("/", body=CREATE)
    [record] = request_log()
    assert record.levelno == logging.WARNING
    assert fields(record)["slow"] == "true"


def test_health_and_metrics_are_not_request_documents(client, request_log):
    client.simulate_get("/readyz")
    client.simulate_get("/metrics")
    assert request_log() == []


def test_logfmt_quotes_values_that_would_break_the_line():
    assert logfmt({"a": "plain", "b": 'two words "quoted"', "c": "x=y", "d": "", "e": "a\nb"}) == (
        'a=plain b="two words \\"quoted\\"" c="x=y" d="" e="a\\nb"'
    )
