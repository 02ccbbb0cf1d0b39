"""The restart policy of `make run`'s supervisor: pauses that double, and when to give up."""

from app.local.supervisor import RestartPolicy


def deaths(policy: RestartPolicy, *times: float) -> list[float | None]:
    return [policy.delay_after_death(now) for now in times]


def test_pause_doubles_with_each_death_up_to_the_cap():
    policy = RestartPolicy(first_delay=0.5, max_delay=3, deaths_to_give_up=10, window=60)
    assert deaths(policy, 0, 1, 2, 3, 4, 5) == [0.5, 1, 2, 3, 3, 3]


def test_gives_up_on_the_fifth_death_within_the_window():
    policy = RestartPolicy(first_delay=0.5, window=60)
    assert deaths(policy, 0, 10, 20, 30, 59.9) == [0.5, 1, 2, 4, None]


def test_deaths_older_than_the_window_are_forgotten():
    policy = RestartPolicy(first_delay=0.5, window=60)
    assert deaths(policy, 0, 10, 20, 30, 61, 200) == [0.5, 1, 2, 4, 4, 0.5]


def test_a_part_that_has_served_is_never_given_up_on():
    """Whatever stops it (a full disk, its port taken later) a person can fix: it is tried
    again at the longest pause, for as long as it takes."""
    policy = RestartPolicy(first_delay=0.5, max_delay=8, window=60)
    delays = [policy.delay_after_death(now, has_served=True) for now in range(0, 100, 5)]
    assert None not in delays
    assert delays[-1] == 8
