"""Where a request's time went, stage by stage, in `/metrics` of a real gunicorn."""

import requests

from tests.locks import symbol_locked
from tests.web.servers import scrape

SETUP = (
    b'<create><account id="1" balance="1000"/><symbol sym="LOCKED">'
    b'<account id="1">10</account></symbol></create>'
)
ORDER = b'<transactions id="1"><order sym="LOCKED" amount="-1" limit="5"/></transactions>'
HELD_S = 0.3


def stage_counts(server: str) -> dict[str, float]:
    return {
        dict(labels)["stage"]: value
        for (name, labels), value in scrape(server).items()
        if name == "exchange_request_stage_seconds_count"
    }


def waited_at_least(server: str, stage: str, seconds: float) -> float:
    """How many requests spent more than `seconds` in `stage` (from the histogram's buckets)."""
    samples = scrape(server)
    counts = {
        dict(labels)["le"]: value
        for (name, labels), value in samples.items()
        if name == "exchange_request_stage_seconds_bucket" and dict(labels)["stage"] == stage
    }
    return counts["+Inf"] - counts[str(seconds)]


def test_each_request_served_by_a_slot_is_timed_in_every_stage(server, engine):
    before = stage_counts(server)
    assert requests.post(server, data=SETUP, timeout=10).status_code == 200
    assert requests.get(f"{server}/symbols/LOCKED/book", timeout=10).status_code == 200
    requests.get(f"{server}/livez", timeout=10)  # health takes no slot: not timed
    after = stage_counts(server)
    stages = ("arriving", "queued", "locking", "database", "application", "replying")
    assert {stage: after[stage] - before.get(stage, 0) for stage in stages} == dict.fromkeys(
        stages, 2
    )


def test_a_request_on_a_connection_closed_after_its_reply_is_timed_too(server, engine):
    before = stage_counts(server)
    reply = requests.post(server, data=SETUP, headers={"Connection": "close"}, timeout=10)
    assert reply.status_code == 200
    assert stage_counts(server)["queued"] == before.get("queued", 0) + 1


def test_a_wait_for_a_symbols_lock_shows_as_locking(server, engine):
    requests.post(server, data=SETUP, timeout=10)
    before = waited_at_least(server, "locking", 0.2)
    with symbol_locked(engine, "LOCKED", HELD_S):  # the order waits until it is let go
        assert requests.post(server, data=ORDER, timeout=10).status_code == 200
    assert waited_at_least(server, "locking", 0.2) == before + 1
