"""Keeps the parts `make run` started serving: a part that dies is restarted, the others go on.

The parts are the local PostgreSQL cluster (when `make run` started it),
gunicorn's master and the shim. A part that exits unexpectedly is restarted
after a pause that doubles with each death (0.5 s, 1 s, 2 s, ... up to 8 s),
and both its death and its return are logged; meanwhile the other parts keep
serving, answering errors where they need the missing one.

A part that has served since `make run` started is restarted for as long as
it takes, at the longest pause, one line each time: what stops it (a full
disk, its port taken by another program, a database that will not start)
needs a person, and once they have fixed it the part comes back without
anyone restarting `make run`. A part that dies 5 times within 60 s without
ever having served is taken for misconfigured (a wrong setting, its port
taken from the start), which retrying cannot fix: then everything is
stopped, saying so, and the launcher exits 1.
"""

import logging
import os
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from app.local.cluster import Cluster, ClusterError

log = logging.getLogger("app.run")

LOOK_EVERY_S = 0.2  # how often the parts are checked: a death is noticed within this
ROLL_TIMEOUT_S = 120.0  # for an instance to be back in service in a rolling restart
MAX_DELAY = 8.0
DETAILS_EVERY_S = 60.0
LOW_DISK_BYTES = 64 << 20  # less than four WAL segments free: PostgreSQL cannot go on


class RestartPolicy:
    """How long to wait before restarting a part that died, and when to give up on it.

    Only bookkeeping of the times of its deaths, so that it can be tested
    without processes. The pause depends on the deaths within the window, so
    a part that has served quietly for a minute starts again from the first.
    """

    def __init__(
        self,
        first_delay: float = 0.5,
        max_delay: float = MAX_DELAY,
        deaths_to_give_up: int = 5,
        window: float = 60.0,
    ):
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.deaths_to_give_up = deaths_to_give_up
        self.window = window
        self._deaths: deque[float] = deque()

    def delay_after_death(self, now: float, has_served: bool = False) -> float | None:
        """Count a death at `now`: the seconds to wait before restarting, or None to give up,
        which happens only to a part that never served (see the module docstring)."""
        self._deaths.append(now)
        while self._deaths[0] <= now - self.window:
            self._deaths.popleft()
        if len(self._deaths) >= self.deaths_to_give_up and not has_served:
            return None
        return min(self.first_delay * 2 ** (len(self._deaths) - 1), self.max_delay)


class Part(Protocol):
    """Something the launcher starts and keeps running."""

    name: str

    def start(self) -> None:
        """Start it; raises OSError or ClusterError when it cannot be."""

    def death(self) -> str | None:
        """How it ended, once it has ("exited with status 1"); None while it runs."""

    def serves(self) -> bool:
        """Whether it serves (again) after a start."""

    def stop(self) -> None:
        """Stop it cleanly, waiting until it has."""


class ChildProcess:
    """A server run as the launcher's child, in a session and process group of its own.

    Its own session: a terminal's Ctrl-C reaches only the launcher, which then
    stops the parts in order instead of all of them at once.
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        environment: dict[str, str],
        serves: Callable[[], bool],
        stop_timeout: float,
        stop_signal: int = signal.SIGTERM,
    ):
        self.name = name
        self.command = command
        self.environment = environment
        self.serves = serves
        self.stop_timeout = stop_timeout
        self.stop_signal = stop_signal
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(self.command, env=self.environment, start_new_session=True)

    def death(self) -> str | None:
        """How it ended. What it leaves behind is killed: gunicorn's workers outlive a killed
        master by a second, still holding the port a new master needs."""
        status = self._process.poll()
        if status is None:
            return None
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:  # nothing left behind
            pass
        if status < 0:
            return f"was killed by {_signal_name(-status)}"
        return f"exited with status {status}"

    def stop(self) -> None:
        if self._process.poll() is not None:
            return
        self._process.send_signal(self.stop_signal)
        try:
            self._process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class LocalDatabase:
    """The local PostgreSQL cluster. pg_ctl detaches the postmaster from the launcher, so
    its death is seen by looking for it: a postmaster working in the data directory."""

    name = "PostgreSQL"

    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    def start(self) -> None:
        """Returns once the server accepts connections. After a crash, pg_ctl starts it
        with the stale postmaster.pid removed, and PostgreSQL recovers from its WAL.

        A server that cannot write its WAL does not start: when the data directory's
        disk is (nearly) full, the error says so first, since that is what to fix."""
        try:
            self.cluster.ensure_running()
        except ClusterError as error:
            free = shutil.disk_usage(self.cluster.datadir).free
            if free < LOW_DISK_BYTES:
                raise ClusterError(
                    f"its disk is full ({free:,} bytes free in {self.cluster.datadir}): "
                    f"waiting for space\n{error}"
                ) from None
            raise

    def death(self) -> str | None:
        return None if self.cluster.is_running() else "is no longer running"

    def serves(self) -> bool:
        return True  # start() waited for it

    def stop(self) -> None:
        self.cluster.stop()


def database_parts(environment: dict[str, str]) -> list[Part]:
    """The local cluster as a part to supervise, unless DATABASE_URL names a server;
    either way DATABASE_URL is set in `environment` for the parts that follow."""
    if environment.get("DATABASE_URL"):
        return []
    local = Cluster.from_env(environment)
    environment["DATABASE_URL"] = local.url()
    return [LocalDatabase(local)]


class GaveUp(Exception):
    """A part keeps dying: restarting it again would not help."""


@dataclass
class _Watch:
    """A part and what the supervisor knows of its deaths."""

    part: Part
    policy: RestartPolicy
    restart_at: float | None = None  # set while it waits to be restarted
    down_since: float | None = None  # set from its death until it serves again
    has_served: bool = False  # since make run started
    details_logged_at: float | None = None  # when a failure's further lines were last logged


class Supervisor:
    """Starts the parts in order, restarts any that dies, and stops them in reverse order
    on SIGINT or SIGTERM, or when one that never served keeps dying. `restarted` is told
    the name of each part started again.

    On SIGHUP it restarts the `instances` (groups of parts, each an instance of the
    service behind a balancer) one after the other: each is stopped (its parts
    drain, app/web/draining.py), started again, and must serve and be back in
    service (`in_service(number)`, the balancer says so) before the next goes.
    """

    def __init__(
        self,
        parts: list[Part],
        first_delay: float = 0.5,
        instances: list[list[Part]] | None = None,
        in_service: Callable[[int], bool] | None = None,
        max_delay: float = MAX_DELAY,
        restarted: Callable[[str], None] = lambda name: None,
    ):
        self.watches = [_Watch(part, RestartPolicy(first_delay, max_delay)) for part in parts]
        self.instances = instances or []
        self.in_service = in_service or (lambda number: True)
        self._restarted = restarted

    def run(self) -> int:
        """Serve until a signal (exit status 0) or a part that keeps dying (1)."""
        stop: list[int] = []
        rolls: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda received, frame: stop.append(received))
        signal.signal(signal.SIGHUP, lambda received, frame: rolls.append(received))
        started: list[Part] = []
        try:
            for watch in self.watches:
                if stop:
                    return 0
                watch.part.start()
                started.append(watch.part)
            log.info("serving; press Ctrl-C to stop")
            while not stop:
                if rolls:
                    rolls.clear()
                    self._restart_instances(stop)
                self._look_after_all()
                time.sleep(LOOK_EVERY_S)
            return 0
        except GaveUp as why:
            log.error(
                "%s: stopping everything, as it never served since the start "
                "(a wrong setting, or its port taken by another program?)",
                why,
            )
            return 1
        finally:
            self._stop(started)
            log.info("stopped")

    def _stop(self, started: list[Part]) -> None:
        """In reverse order of start; the instances all at once, each draining meanwhile."""
        instance_of = {id(part): instance for instance in self.instances for part in instance}
        stopped: set[int] = set()
        for part in reversed(started):
            if id(part) in stopped:
                continue
            if id(part) not in instance_of:
                part.stop()
                continue
            with ThreadPoolExecutor(len(self.instances)) as pool:
                for instance in self.instances:
                    running = [own for own in reversed(instance) if own in started]
                    pool.submit(lambda parts: [own.stop() for own in parts], running)
            stopped |= set(instance_of)

    def _look_after_all(self) -> None:
        for watch in self.watches:
            self._look_after(watch, time.monotonic())

    def _restart_instances(self, stop: list[int]) -> None:
        """A rolling restart: one instance at a time, the next once it is back in service.
        An instance not back within ROLL_TIMEOUT_S ends it, leaving the others serving."""
        for number, instance in enumerate(self.instances, 1):
            if stop:
                return
            log.info("rolling restart: instance %d of %d", number, len(self.instances))
            for part in reversed(instance):
                part.stop()
            for part in instance:
                part.start()
            deadline = time.monotonic() + ROLL_TIMEOUT_S
            while not (all(part.serves() for part in instance) and self.in_service(number)):
                if stop or time.monotonic() > deadline:
                    log.error("rolling restart stopped: instance %d is not back in service", number)
                    return
                self._look_after_all()
                time.sleep(LOOK_EVERY_S)
        log.info("rolling restart done")

    def _look_after(self, watch: _Watch, now: float) -> None:
        part = watch.part
        if watch.restart_at is not None:
            if now >= watch.restart_at:
                self._restart(watch)
            return
        how = part.death()
        if how is not None:
            self._schedule_restart(watch, how, now)
        elif (watch.down_since is not None or not watch.has_served) and part.serves():
            if watch.down_since is not None:
                log.info("%s back after %.1f s", part.name, now - watch.down_since)
            watch.down_since = None
            watch.has_served = True
            watch.details_logged_at = None

    def _restart(self, watch: _Watch) -> None:
        watch.restart_at = None
        self._restarted(watch.part.name)
        try:
            watch.part.start()
        except (OSError, ClusterError) as error:
            self._schedule_restart(watch, f"did not start: {error}", time.monotonic())

    def _schedule_restart(self, watch: _Watch, how: str, now: float) -> None:
        """Restart after the policy's pause, or give up on a part that keeps dying.

        Each line of the supervisor's says one thing of its own: the first line of
        `how` with what it does next, then the further lines of `how` (the end of
        PostgreSQL's log, say), one a line, at the first failure of a part that is
        down and once every DETAILS_EVERY_S while it stays down.
        """
        part, policy = watch.part, watch.policy
        headline, _, details = how.partition("\n")
        delay = policy.delay_after_death(now, watch.has_served)
        if delay is None:
            raise GaveUp(
                f"{part.name} {headline}: {policy.deaths_to_give_up} deaths "
                f"within {policy.window:g} s"
            )
        down = "" if watch.down_since is None else f" (down for {now - watch.down_since:.0f} s)"
        log.error("%s %s; restarting in %g s%s", part.name, headline, delay, down)
        if details and (
            watch.details_logged_at is None or now - watch.details_logged_at >= DETAILS_EVERY_S
        ):
            for line in details.splitlines():
                log.error("  | %s", line)
            watch.details_logged_at = now
        watch.restart_at = now + delay
        if watch.down_since is None:
            watch.down_since = now
