"""Reading what a stream writes, for the tests: its bytes as SPEC §10's events."""

import json
import time
from collections.abc import Callable, Iterator

from sseclient import Event, SSEClient


def parse(chunks: list[bytes]) -> list[Event]:
    return list(SSEClient(iter(chunks)).events())


def read_until(
    chunks: Iterator[bytes], done: Callable[[list[Event]], bool], timeout: float = 5.0
) -> list[Event]:
    """Events from `chunks` until `done(events)` holds; fails after `timeout` seconds.

    `chunks` must yield now and then even when nothing happens (heartbeats do).
    """
    received: list[bytes] = []
    deadline = time.monotonic() + timeout
    while not done(events := parse(received)):
        assert time.monotonic() < deadline, f"only got {[str(e) for e in events]}"
        received.append(next(chunks))
    return events


def trades(events: list[Event]) -> list[tuple[int, dict]]:
    return [(int(e.id), json.loads(e.data)) for e in events if e.event == "trade"]


def books(events: list[Event]) -> list[dict]:
    return [json.loads(e.data) for e in events if e.event == "book"]


def prices(events: list[Event]) -> list[str]:
    return [trade["price"] for _, trade in trades(events)]


def read_for(chunks: Iterator[bytes], seconds: float) -> list[Event]:
    """The events `chunks` bring within `seconds` (give or take a heartbeat)."""
    received: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        received.append(next(chunks))
    return parse(received)
