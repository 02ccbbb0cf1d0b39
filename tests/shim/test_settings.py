"""Settings from the environment and flags; the length line's grammar."""

import pytest

from app.shim.__main__ import parse_args
from app.shim.config import ShimConfig, service_slots
from app.shim.framing import FramingError, frame_reply, parse_length


def test_defaults_without_environment():
    config, log_level = parse_args([], environ={})
    assert config == ShimConfig(concurrency=service_slots({}))
    assert (config.host, config.port, config.max_body_bytes, log_level) == (
        "127.0.0.1",
        12345,
        1 << 20,
        "info",
    )


def test_environment_gives_defaults_and_flags_override_them():
    environ = {
        "EXCHANGE_SHIM_PORT": "2000",
        "EXCHANGE_SHIM_KEEP_OPEN": "1",
        "EXCHANGE_SHIM_REPLY_LENGTH": "yes",
        "EXCHANGE_SHIM_IDLE_TIMEOUT": "2.5",
        "EXCHANGE_MAX_BODY_BYTES": "4096",
    }
    config, _ = parse_args(["--port", "3000", "--no-keep-open"], environ)
    assert (config.port, config.keep_open, config.reply_length) == (3000, False, True)
    assert (config.idle_timeout, config.max_body_bytes) == (2.5, 4096)


def test_requests_forwarded_at_once_are_by_default_the_services_request_slots():
    config, _ = parse_args([], {"EXCHANGE_WORKERS": "3", "EXCHANGE_CONCURRENCY": "5"})
    assert config.concurrency == 15


def test_requests_forwarded_at_once_can_be_set():
    environ = {"EXCHANGE_WORKERS": "3", "EXCHANGE_SHIM_CONCURRENCY": "64"}
    assert parse_args([], environ)[0].concurrency == 64
    assert parse_args(["--concurrency", "2"], environ)[0].concurrency == 2


@pytest.mark.parametrize(
    "flags", [["--concurrency", "0"], ["--idle-timeout", "-1"], ["--port", "70000"]]
)
def test_nonsense_settings_are_usage_errors(flags):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(flags, environ={})
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    "line, length", [(b"0", 0), (b"47", 47), (b"0047", 47), (b"47\r", 47), (b"100", 100)]
)
def test_length_line_is_decimal_digits(line, length):
    assert parse_length(line, max_body_bytes=100) == length


@pytest.mark.parametrize("line", [b"101", b"-1", b"1e3", b"\xd9\xa3", b"", b"\r", b"4 7"])
def test_anything_else_is_refused(line):
    with pytest.raises(FramingError):
        parse_length(line, max_body_bytes=100)


def test_reply_length_line_has_the_request_line_form():
    assert frame_reply(b"<results/>", with_length=True) == b"10\n<results/>"
    assert frame_reply(b"<results/>", with_length=False) == b"<results/>"
