"""Where the processes of the web tier keep their Prometheus values, and who removes it.

prometheus_client's multiprocess mode gives each process files of its own in
`PROMETHEUS_MULTIPROC_DIR`; any worker's `/metrics` adds them all up. Whoever
makes the directory owns it, and removes it when it exits: `make run`'s
launcher for a whole run, else gunicorn's master. An owner killed before it
could is made up for by the next one to start, which removes the directories
of owners that are gone: the directory's name carries its owner's pid.

At each start of gunicorn's master (`prepare`), a directory owned by a live
process other than the master, the launcher that started it, keeps its
counters: they go on across a restart of the master, and the launcher counts
its restarts there too. Only the gauges of processes that are gone are
dropped. Any other directory is emptied, as values of an earlier run would
be added to this one's: a restart then shows as counters starting again from
zero, which Prometheus reads as a restart.
"""

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

from app.local.cluster import pid_alive

PREFIX = "exchange-metrics-"
OWNED = re.compile(re.escape(PREFIX) + r"(\d+)-")
LIVE_GAUGE = re.compile(r"gauge_live\w*_(\d+)\.db")


def own_directory() -> str:
    """A new directory owned by this process, removed when it exits."""
    for abandoned in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        owner = _owner(abandoned)
        if owner is not None and not pid_alive(owner):
            shutil.rmtree(abandoned, ignore_errors=True)
    directory = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    atexit.register(_remove, os.getpid(), directory)
    return directory


def prepare(directory: Path) -> None:
    """At the start of gunicorn's master, before any worker exists (see the module docstring)."""
    from prometheus_client import multiprocess

    directory.mkdir(parents=True, exist_ok=True)
    owner = _owner(directory)
    if owner is not None and owner != os.getpid() and pid_alive(owner):
        for entry in directory.iterdir():
            gauge = LIVE_GAUGE.fullmatch(entry.name)
            if gauge and not pid_alive(int(gauge[1])):
                multiprocess.mark_process_dead(int(gauge[1]), str(directory))
        return
    for entry in directory.iterdir():
        entry.unlink()


def _owner(directory: Path) -> int | None:
    match = OWNED.match(directory.name)
    return int(match[1]) if match else None


def _remove(owner: int, directory: str) -> None:
    """At exit, only by the process that made it: gunicorn's workers exit through here too."""
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)
