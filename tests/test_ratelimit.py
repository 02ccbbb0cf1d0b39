"""Warnings about a client: one per address per period, then a count of the ones held back."""

import logging
import time

from app.ratelimit import RateLimitedWarnings

PERIOD_S = 0.5
log = logging.getLogger("tests.ratelimit")


def test_warnings_held_back_within_the_period_are_counted_in_the_next_one(caplog):
    warnings = RateLimitedWarnings(log, every=PERIOD_S)
    with caplog.at_level(logging.WARNING, logger=log.name):
        for _ in range(3):
            warnings.warn("192.0.2.1", "misbehaved")
        time.sleep(PERIOD_S * 1.2)
        warnings.warn("192.0.2.1", "misbehaved")
    assert caplog.messages == [
        "client 192.0.2.1 misbehaved",
        "client 192.0.2.1 misbehaved (2 more since the last warning)",
    ]


def test_each_address_has_a_period_of_its_own(caplog):
    warnings = RateLimitedWarnings(log, every=PERIOD_S)
    with caplog.at_level(logging.WARNING, logger=log.name):
        warnings.warn("192.0.2.1", "misbehaved")
        warnings.warn("192.0.2.2", "misbehaved")
    assert caplog.messages == ["client 192.0.2.1 misbehaved", "client 192.0.2.2 misbehaved"]


def test_warnings_still_held_back_are_counted_when_flushed(caplog):
    warnings = RateLimitedWarnings(log, every=60)
    with caplog.at_level(logging.WARNING, logger=log.name):
        for _ in range(3):
            warnings.warn("192.0.2.1", "misbehaved")
        warnings.warn("192.0.2.2", "misbehaved")
        warnings.flush()
        warnings.flush()
    assert caplog.messages == [
        "client 192.0.2.1 misbehaved",
        "client 192.0.2.2 misbehaved",
        "client 192.0.2.1 misbehaved (2 more since the last warning)",
    ]
