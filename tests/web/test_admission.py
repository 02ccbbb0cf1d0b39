"""A worker's request slots: first come, first served, and never lost."""

import gevent
import pytest

from app.web.admission import Slots


def _served_in_order(slots: Slots, names: list[str], order: list[str]) -> list[gevent.Greenlet]:
    def client(name: str, arrives_after: float):
        gevent.sleep(arrives_after)
        assert slots.acquire(timeout=1)
        order.append(name)
        gevent.sleep(0.001)
        slots.release()

    return [gevent.spawn(client, name, 0.001 * (i + 1)) for i, name in enumerate(names)]


def test_waiting_requests_take_freed_slots_in_the_order_they_arrived():
    slots, order = Slots(1), []
    assert slots.acquire(timeout=0)
    waiters = _served_in_order(slots, ["first", "second", "third"], order)
    gevent.sleep(0.01)
    slots.release()
    gevent.joinall(waiters, raise_error=True)
    assert order == ["first", "second", "third"]


def test_a_request_arriving_as_a_slot_frees_does_not_overtake_one_already_waiting():
    slots, order = Slots(1), []

    def holder():
        assert slots.acquire(timeout=0)
        gevent.sleep(0.01)
        slots.release()

    def newcomer():
        gevent.sleep(0.01)  # woken in the same turn of the loop as the release
        assert slots.acquire(timeout=1)
        order.append("newcomer")
        slots.release()

    greenlets = [
        gevent.spawn(holder),
        *_served_in_order(slots, ["waiting"], order),
        gevent.spawn(newcomer),
    ]
    gevent.joinall(greenlets, raise_error=True)
    assert order == ["waiting", "newcomer"]


def test_a_wait_past_its_timeout_gets_no_slot_and_leaves_the_queue():
    slots = Slots(1)
    assert slots.acquire(timeout=0)
    assert slots.acquire(timeout=0.005) is False
    slots.release()
    assert slots.acquire(timeout=0)


def test_no_slot_is_free_while_all_are_taken():
    slots = Slots(2)
    assert slots.acquire(timeout=0) and slots.acquire(timeout=0)
    assert slots.acquire(timeout=0) is False


def test_a_waiter_killed_while_it_waits_leaves_the_queue_and_the_slot_goes_on():
    slots = Slots(1)
    assert slots.acquire(timeout=0)
    doomed = gevent.spawn(slots.acquire, timeout=1)
    gevent.sleep(0.001)
    doomed.kill(block=True)
    slots.release()
    assert slots.acquire(timeout=0)


def test_a_waiter_killed_as_its_slot_is_handed_over_passes_the_slot_on():
    slots = Slots(1)
    assert slots.acquire(timeout=0)
    doomed = gevent.spawn(slots.acquire, timeout=1)
    gevent.sleep(0.001)
    doomed.kill(block=False)  # the kill is delivered before the hand-over wakes it
    slots.release()
    gevent.joinall([doomed])
    assert slots.acquire(timeout=0)


@pytest.mark.parametrize("count", [1, 4])
def test_every_slot_taken_and_released_is_free_again(count: int):
    slots = Slots(count)

    def client():
        assert slots.acquire(timeout=1)
        gevent.sleep(0.001)
        slots.release()

    gevent.joinall([gevent.spawn(client) for _ in range(20)], raise_error=True)
    assert all(slots.acquire(timeout=0) for _ in range(count))
    assert slots.acquire(timeout=0) is False
