"""`make bench-profile`: where a request's time goes, sampled with py-spy under load.

    make bench-profile                      # 32 HTTP clients, the base workload
    PROFILE_SECONDS=30 make bench-profile

Starts the service as `make bench` does, drives the base workload with
locust, and meanwhile samples every gunicorn worker with py-spy twice: once
only the thread holding the GIL (what the workers compute in Python: py-spy's
own on-CPU test counts a thread waiting in libpq for PostgreSQL as running),
once with idle threads included (wall time: also the waits on PostgreSQL).
Each sample is put in the category
of the innermost frame that says what the thread is doing; generic frames
(threading, queue, sockets) are looked through, so a thread blocked on a lock
counts for whoever waits. It also measures the CPU time per request of the
workers, the shim and PostgreSQL over the same window.

py-spy reads other processes' memory: it needs root or ptrace permission
(`kernel.yama.ptrace_scope`, or CAP_SYS_PTRACE in a container).
"""

import collections
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from app.exchange.service import answer
from app.exchange.transactions import Exchange
from app.local.cluster import PROJECT, Cluster, free_port
from app.protocol import parse_request, render_results
from app.storage.engine import exchange_engine
from app.storage.session import recording
from bench import figures
from bench.run import Settings, aggregated, locust_command, plan, say
from bench.service import Service, process_tree, usage
from bench.workload import Shape, Trader, http_poster, set_up

PY_SPY = Path(sys.executable).parent / "py-spy"
SAMPLES_PER_S = 200
WARMUP_S = 5
BACKEND_SAMPLE_EVERY_S = 0.02
GENERIC = re.compile(
    r"\((threading|queue|selectors|socket|contextlib|functools|<frozen [^>]*>)\.py"
)
# (category, pattern on one frame "function (file:line)"), the first that matches wins.
CATEGORIES = [
    ("idle: waiting for a request", r"wait_for_and_dispatch_events|_worker \(concurrent"),
    ("SQL: COMMIT (round trip + WAL flush)", r"Transaction\.commit"),
    ("SQL: ROLLBACK", r"Transaction\.rollback"),
    ("SQL: statement round trip (client + PostgreSQL)", r"_send \(|cursor\.execute"),
    ("SQLAlchemy: connection pool", r"sqlalchemy/pool"),
    ("SQLAlchemy: engine and connection objects", r"sqlalchemy/"),
    ("XML: parse and validate", r"app/protocol/(parser|numbers)|lxml"),
    ("XML: render", r"app/protocol/render"),
    ("exchange logic (Python)", r"app/exchange/"),
    ("HTTP: falcon", r"falcon/"),
    ("HTTP: gunicorn (parsing, sockets)", r"gunicorn/"),
]


def main() -> int:
    seconds = float(os.environ.get("PROFILE_SECONDS") or 20)
    settings = Settings.from_env()
    point = plan(settings)[0]["http"]
    directory = figures.RESULTS / f"profile-{time.strftime('%Y%m%d-%H%M%S')}"
    directory.mkdir(parents=True)
    cluster = Cluster(PROJECT / "var" / "bench" / "profile-pgdata", free_port())
    cluster.reset()
    cluster.ensure_running()
    service = Service(cluster, directory)
    try:
        service.start(settings.default_workers)
        set_up(http_poster(service.url + "/"), point.shape, say=say)
        length = WARMUP_S + 2 * seconds + 5
        command, environment = locust_command(
            point, service, directory / "locust", WARMUP_S, length, seed=1
        )
        locust = subprocess.Popen(
            command,
            cwd=PROJECT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            preexec_fn=settings.pin_loadgen,
        )
        time.sleep(WARMUP_S)
        workers = process_tree(service.service_pids()[0])[1:]  # the master's children
        pids = service.service_pids() + service.database_pids()
        before, database_before = usage(pids), usage(service.database_pids())
        profiles = {"cpu": _record(workers, seconds, directory / "gil", mode="--gil")}
        with BackendSampler(cluster.url()) as backends:
            profiles["wall"] = _record(workers, seconds, directory / "wall", mode="--idle")
        after, database_after = usage(pids), usage(service.database_pids())
        locust.wait()
        trips = round_trips(cluster.url(), point.shape)
    finally:
        service.stop()
        cluster.stop()
    rate = aggregated(directory / "locust_stats.csv")["Requests/s"]
    window = 2 * seconds
    report = summary(profiles, rate * window, after.cpu_s - before.cpu_s,
                     database_after.cpu_s - database_before.cpu_s)  # fmt: skip
    report += "\n\n" + backends.summary() + "\n\n" + trips
    (directory / "summary.txt").write_text(report + "\n")
    say(report)
    say(f"\nraw stacks and summary in {directory}")
    return 0


class BackendSampler:
    """What the service's PostgreSQL backends are doing, sampled from pg_stat_activity:
    running, waiting for a lock or for the WAL, or idle in a transaction while
    the worker computes."""

    def __init__(self, url: str):
        self._engine = sa.create_engine(url, poolclass=sa.NullPool)
        self._counts: collections.Counter = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "BackendSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self._engine.dispose()

    def _sample(self) -> None:
        query = sa.text(
            "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        with self._engine.connect() as connection:
            while not self._stop.wait(BACKEND_SAMPLE_EVERY_S):
                for state, wait_type, wait in connection.execute(query):
                    if state == "active":
                        label = (
                            f"active, waiting: {wait_type} {wait}"
                            if wait_type
                            else "active, on CPU"
                        )
                    else:
                        label = state
                    self._counts[label] += 1
                connection.rollback()

    def summary(self) -> str:
        total = sum(self._counts.values()) or 1
        lines = ["PostgreSQL backends of the service (pg_stat_activity samples)   share"]
        for label, count in self._counts.most_common():
            lines.append(f"  {label:<60} {100 * count / total:5.1f} %")
        return "\n".join(lines)


def round_trips(url: str, shape: Shape, requests: int = 600) -> str:
    """Round trips per kind of request, counted in-process at the driver on the
    same code path as the service's (parse, answer, render); apart, the lookup
    of an acting account the first time a process sees it."""
    engine = exchange_engine(url, pool_size=1)
    exchange = Exchange(engine)
    trader = Trader(shape, number=0, clients=1, seed=99)
    sent: dict[str, list[int]] = collections.defaultdict(list)
    try:
        for _ in range(requests):
            account, body, kind = trader.next_request()
            with recording(engine) as statements:
                reply = render_results(answer(exchange, parse_request(body)))
            trader.record(account, reply)
            lookups = sum("account_exists" in statement for statement in statements)
            sent[kind].append((len(statements) - lookups, lookups))
    finally:
        engine.dispose()
    lines = ["per request (in-process count)     round trips   + first lookup of the account"]
    for kind, counts in sorted(sent.items()):
        trips, lookups = (sum(column) / len(counts) for column in zip(*counts, strict=True))
        lines.append(f"  {kind:<32} {trips:11.2f} {lookups:11.2f}")
    return "\n".join(lines)


def _record(workers: list[int], seconds: float, prefix: Path, mode: str) -> collections.Counter:
    """Sample every worker at once for `seconds`; the samples per category."""
    samplers = []
    for worker in workers:
        command = [str(PY_SPY), "record", "--pid", str(worker), "--duration", f"{seconds:g}",
                   "--rate", str(SAMPLES_PER_S), "--format", "raw", "--nonblocking",
                   "--output", f"{prefix}-{worker}.txt", mode]  # fmt: skip
        samplers.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        )
    for sampler in samplers:
        _, errors = sampler.communicate()
        if sampler.returncode != 0:
            raise RuntimeError(f"py-spy failed: {errors.decode()[-500:]}")
    counts = collections.Counter()
    for worker in workers:
        for line in Path(f"{prefix}-{worker}.txt").read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            counts[categorize(stack)] += int(samples)
    return counts


def categorize(stack: str) -> str:
    """The category of the innermost frame of a ";"-joined stack (outermost first)
    that is not generic plumbing."""
    for frame in reversed(stack.split(";")):
        if GENERIC.search(frame):
            continue
        for category, pattern in CATEGORIES:
            if re.search(pattern, frame):
                return category
    return "other"


def summary(
    profiles: dict[str, collections.Counter], requests: float, server_cpu_s: float,
    database_cpu_s: float,
) -> str:  # fmt: skip
    lines = ["category                                       GIL held %   wall % (busy threads)"]
    cpu = profiles["cpu"]
    wall = {k: v for k, v in profiles["wall"].items() if not k.startswith("idle")}
    categories = sorted(set(cpu) | set(wall), key=lambda name: -wall.get(name, 0))
    for category in categories:
        share_cpu = 100 * cpu.get(category, 0) / max(sum(cpu.values()), 1)
        share_wall = 100 * wall.get(category, 0) / max(sum(wall.values()), 1)
        lines.append(f"{category:<48} {share_cpu:6.1f}   {share_wall:6.1f}")
    if requests:
        lines += [
            "",
            f"{requests:.0f} requests in the sampled window; CPU per request: service and "
            f"PostgreSQL {1000 * server_cpu_s / requests:.2f} ms, "
            f"of which PostgreSQL {1000 * database_cpu_s / requests:.2f} ms",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
