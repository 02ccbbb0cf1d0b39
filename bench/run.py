"""`make bench`: start the service, drive the workload and its variants, print the figures.

    make bench                                   # every point, 5 repetitions (about 20 min + setup)
    BENCH_REPEATS=1 BENCH_SECONDS=5 make bench   # a quick look
    BENCH_POINTS=http,tcp,pgbench make bench     # some points only
    BENCH_BASELINE=705f695 make bench            # http and tcp of that revision too, side by side

It starts its own PostgreSQL cluster in var/bench/pgdata (made anew each
run), gunicorn and the shim on free ports, sets up the workload's accounts
and symbols and preloads the deep book (100,000 orders through the service:
minutes), then measures every point for BENCH_SECONDS after BENCH_WARMUP
unmeasured seconds, with locust headless as the load generator (locustfile.py, the same workload as
`make load`). Rounds go over all points, BENCH_REPEATS times, so that drift
(a database that grows, a neighbour that wakes up) weighs on every point
alike; the tables give medians.

The set-up cluster is saved in var/bench/setup-<hash of the schema's source>
and later runs start from a copy of it, which saves the setup's minutes and
starts every run from the same state; BENCH_FRESH=1 sets up afresh.

The load generator and pgbench run pinned to one CPU (BENCH_LOADGEN_CPU,
default the last one; `none` leaves them unpinned). The server side (gunicorn,
shim, PostgreSQL) gets every CPU, or the first 1 or 2 for the cores sweep:
on a 2-core machine, "1 core" is a server alone on CPU 0 with the load
generator on CPU 1, and "2 cores" shares CPU 1 with the load generator, whose
CPU use is printed with every point.

BENCH_BASELINE=<revision> also runs that revision's service, from a checkout
of its own and on a database of its own in the same cluster (bench/baseline.py),
and measures a twin of each point of BENCH_BASELINE_POINTS (http and tcp by
default) right after the point itself, in every round, with the same load: the
twin of `http` is `http@base`. The service not being measured stays idle (its
CPU use is recorded with every point, with a warning if it is not idle).

Raw figures go to bench/results/<time>/ (runs.csv, pgbench.csv, meta.json,
locust's CSVs and logs), and bench/results/latest points there;
`make bench-report` turns them into plots and docs/scalability.md.
"""

import contextlib
import csv
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from app.config import web_workers
from app.local.cluster import PROJECT, Cluster, create_database, free_port, server_version
from bench import figures, stages, streams, workload
from bench.baseline import Revision, check_out, own_commands, prepare_database, remove_checkout
from bench.keys import issue_keys
from bench.service import (
    BENCH_MASTER_SECRET,
    TIERS,
    ClusterService,
    Service,
    machine_busy_s,
    market_polls,
    tier_usage,
    usage,
)
from bench.workload import READ, Shape, http_poster, set_up

CEILING_SQL = Path(__file__).resolve().parent / "ceiling"
SAVED_SETUPS = PROJECT / "var" / "bench"
PGBENCH_CLIENTS = 8
LOCUST_GRACE_S = 60
SAMPLE_EVERY_S = 1.0
IDLE_CPU_WARNING_PCT = 1.0
ATTACKERS = 500
READERS = 8
STREAMS = (10, 1000)  # clients following streams, beside the traders
STREAMS_WARMUP_S = 6.0  # the least warm-up of a point with streams: they open meanwhile
BOOK_100K = Shape(symbols=1, resting=100_000)  # the one symbol traded, and its deep book
ATTACK_SOURCE = "127.0.0.2"  # another address than the load's, as another machine's would be
ATTACK_RAMP_S = 2.0  # the slow connections open before the load starts
ATTACK_PACE_S = 1.0
ATTACK_LONGEST_S = 3600  # it is stopped when the load ends


@dataclass(frozen=True)
class Point:
    """One configuration to measure."""

    label: str
    workers: int  # gunicorn worker processes
    transport: str = "http"  # or "tcp"
    shape: Shape = field(default_factory=Shape)
    clients: int = 32
    cores: int = 0  # the server side on the first `cores` CPUs; 0: on every CPU
    baseline: bool = False  # measured on the baseline revision's service
    attackers: int = 0  # slow connections held against the HTTP port meanwhile
    readers: int = 0  # market-data clients polling beside the `clients` trading
    auth: bool = False  # the service with authentication on, every request signed
    keyed: bool = False  # every request under an idempotency key (SPEC §9)
    cluster: bool = False  # measured on `make cluster`: 3 instances behind HAProxy
    streams: int = 0  # clients following a traded symbol's stream meanwhile

    @property
    def service_state(self) -> tuple[int, int, bool]:
        return self.workers, self.cores, self.auth


@dataclass(frozen=True)
class Settings:
    repeats: int
    seconds: float
    warmup: float
    selected: set[str] | None
    loadgen_cpus: set[int] | None
    cpus: list[int]
    default_workers: int
    fresh: bool
    baseline: str | None = None  # a revision whose service is measured too
    baseline_points: frozenset[str] = frozenset({"http", "tcp"})

    @classmethod
    def from_env(cls, environ=os.environ) -> "Settings":
        cpus = sorted(os.sched_getaffinity(0))
        pin = environ.get("BENCH_LOADGEN_CPU", "")
        if pin.lower() == "none" or (not pin and len(cpus) == 1):
            loadgen = None
        else:
            loadgen = {int(pin) if pin else cpus[-1]}
        selected = environ.get("BENCH_POINTS")
        return cls(
            repeats=int(environ.get("BENCH_REPEATS") or 5),
            seconds=float(environ.get("BENCH_SECONDS") or 10),
            warmup=float(environ.get("BENCH_WARMUP") or 3),
            selected=_names(selected) if selected else None,
            loadgen_cpus=loadgen,
            cpus=cpus,
            default_workers=web_workers(environ),
            fresh=environ.get("BENCH_FRESH", "") not in {"", "0"},
            baseline=environ.get("BENCH_BASELINE") or None,
            baseline_points=_names(environ.get("BENCH_BASELINE_POINTS") or "http,tcp"),
        )

    def pin_loadgen(self) -> None:
        """Confine the calling process to the load generator's CPU (a preexec_fn)."""
        if self.loadgen_cpus:
            os.sched_setaffinity(0, self.loadgen_cpus)

    def wants(self, point: str) -> bool:
        return self.selected is None or point in self.selected


def _names(listed: str) -> frozenset[str]:
    return frozenset(name.strip() for name in listed.split(","))


def plan(
    settings: Settings, baseline: Revision | None = None
) -> tuple[dict[str, Point], dict[str, dict[int, str]]]:
    """The points, and the sweeps they form (value -> point); points that a
    sweep shares with the base are measured once, as the base. With a
    baseline, twins of the chosen points it should run too."""
    base = Point("mixed, 10 symbols, 32 clients, HTTP", settings.default_workers)
    points = {
        "http": base,
        "tcp": replace(base, label="mixed, 10 symbols, 32 clients, TCP shim", transport="tcp"),
        "hot-symbol": replace(base, label="every order on 1 symbol", shape=Shape(hot=True)),
        "100-symbols": replace(base, label="100 symbols", shape=Shape(symbols=100)),
        "100k-resting": replace(
            base, label="100,000 resting orders on the book", shape=Shape(resting=100_000)
        ),
        "5-children": replace(base, label="5 children per request", shape=Shape(children=5)),
        "1-symbol-100k": replace(
            base,
            label="every order on 1 symbol with 100,000 resting orders",
            shape=BOOK_100K,
        ),
        "readers": replace(
            base,
            label=f"the same, and {READERS} market-data clients polling",
            shape=BOOK_100K,
            readers=READERS,
        ),
        "http-auth": replace(base, label="HTTP, authentication on", auth=True),
        "tcp-auth": replace(base, label="TCP shim, authentication on", transport="tcp", auth=True),
        "http-keyed": replace(base, label="HTTP, idempotency keys", keyed=True),
        "tcp-keyed": replace(base, label="TCP shim, idempotency keys", transport="tcp", keyed=True),
        "cluster-http": replace(
            base, label="make cluster: 3 instances, HAProxy, HTTP", cluster=True
        ),
        "cluster-tcp": replace(
            base, label="make cluster: 3 instances, HAProxy, TCP", transport="tcp", cluster=True
        ),
        **{
            f"streams-{count}": replace(
                base, label=f"the same, and {count:,} clients following streams", streams=count
            )
            for count in STREAMS
        },
        "http-attacked": replace(
            base, label=f"HTTP, {ATTACKERS} slow clients attacking", attackers=ATTACKERS
        ),
        "tcp-attacked": replace(
            base,
            label=f"TCP shim, {ATTACKERS} slow clients attacking",
            transport="tcp",
            attackers=ATTACKERS,
        ),
    }
    sweeps: dict[str, dict[int, str]] = {"clients": {}, "cores": {}, "workers": {}}
    for clients in (8, 16, 32, 64):
        variant = replace(base, label=f"{clients} clients", clients=clients)
        sweeps["clients"][clients] = _add(points, f"clients-{clients}", variant, base)
    for cores in (1, 2):
        if cores <= len(settings.cpus):
            whole = cores == len(settings.cpus)
            variant = replace(base, label=f"server on {cores} core(s)", cores=0 if whole else cores)
            sweeps["cores"][cores] = _add(points, f"cores-{cores}", variant, base)
    for workers in (1, 2, 4, 8):
        variant = replace(base, label=f"{workers} gunicorn workers", workers=workers)
        sweeps["workers"][workers] = _add(points, f"workers-{workers}", variant, base)
    chosen = {name: point for name, point in points.items() if settings.wants(name)}
    if baseline:
        chosen = with_twins(chosen, settings.baseline_points, baseline)
    return chosen, sweeps


def with_twins(
    points: dict[str, Point], twinned: frozenset[str], baseline: Revision
) -> dict[str, Point]:
    """The points, each of `twinned` followed by its twin on the baseline, so
    that within a round the two are measured one right after the other."""
    result = {}
    for name, point in points.items():
        result[name] = point
        if name in twinned:
            label = f"{point.label}, baseline {baseline.short}"
            result[figures.twin(name)] = replace(point, label=label, baseline=True)
    return result


def round_order(names: list[str], round_number: int) -> list[str]:
    """The points in their order, each twin next to its point: after it in odd
    rounds, before it in even ones, so that neither side always goes first."""
    twin_first = round_number % 2 == 0

    def position(name: str) -> tuple[int, bool]:
        ours = figures.ours(name)
        return names.index(ours), (name == ours) == twin_first

    return sorted(names, key=position)


def _add(points: dict[str, Point], name: str, variant: Point, base: Point) -> str:
    if replace(variant, label=base.label) == base:
        return "http"
    points[name] = variant
    return name


class Bench:
    def __init__(self, settings: Settings, directory: Path, revision: Revision | None = None):
        self.settings = settings
        self.directory = directory
        self.revision = revision
        self.runs: list[dict] = []
        self.pgbench: list[dict] = []
        self.points, self.sweeps = plan(settings, revision)
        self.cluster = Cluster(SAVED_SETUPS / "pgdata", free_port())
        self.service = Service(self.cluster, directory)
        self.baseline: Service | None = None  # once the revision is checked out
        wanted = any(point.cluster for point in self.points.values())
        self.instances = ClusterService(self.cluster, directory) if wanted else None
        self.measured = 0
        self.started = self.measuring_since = time.monotonic()

    def run(self) -> None:
        self._write_meta()
        say(f"results go to {_show(self.directory)}")
        finished = False
        try:
            if self.revision:
                self._check_out_baseline()
            self._restore_setup()
            self.cluster.ensure_running()
            if self.revision:
                prepare_database(self.cluster, self.revision.database)
            self._start_services()
            if self._set_up():
                self._save_setup()
            self._issue_keys()
            self.measuring_since = time.monotonic()
            for round_number in range(1, self.settings.repeats + 1):
                self._round(round_number)
            self._stop_services()
            for service in self.services:
                self._audit(service)
            finished = True
        finally:
            self._stop_services()
            self.cluster.stop()
            if self.revision and not finished:
                self._remove_baseline_checkout()

    @property
    def services(self) -> list[Service]:
        return [service for service in (self.service, self.baseline, self.instances) if service]

    def _service_of(self, point: Point) -> Service:
        if point.cluster:
            return self.instances
        return self.baseline if point.baseline else self.service

    def _start_services(self) -> None:
        for service in self.services:
            service.start(self.settings.default_workers)

    def _stop_services(self) -> None:
        for service in self.services:
            service.stop()

    def _remove_baseline_checkout(self) -> None:
        """A run that failed or was interrupted leaves no checkout behind, not even half of one."""
        checkout = self.revision.checkout_in(SAVED_SETUPS)
        remove_checkout(checkout)
        say(f"removed the baseline's checkout {_show(checkout)}")

    def _check_out_baseline(self) -> None:
        """Check the baseline revision out (or reuse its checkout) and read its commands."""
        directory, made = check_out(self.revision, SAVED_SETUPS)
        self.baseline = Service(
            self.cluster,
            self.directory,
            name="baseline",
            source=directory,
            database=self.revision.database,
            commands=own_commands(directory),
        )
        how = "checked out in" if made else "reusing its checkout in"
        say(f"baseline {self.revision.short} ({self.revision.subject}): {how} {_show(directory)}")

    # -- setup ----------------------------------------------------------------

    def _set_up(self) -> bool:
        """Set up what the points need; whether anything was missing."""
        started = time.monotonic()
        created = [made for service in self.services for made in self._set_up_universes(service)]
        if self.settings.wants("pgbench") and not self._client(
            "psql", "-Atc", "SELECT 1 FROM pg_database WHERE datname = 'limits'", "postgres"
        ):
            create_database(self.cluster.url("limits"))
            self._client("psql", "-q", "-f", CEILING_SQL / "order_schema.sql", "limits")
            say("pgbench tables ready")
            created.append(True)
        say(f"setup took {time.monotonic() - started:.0f} s")
        return any(created)

    def _set_up_universes(self, service: Service) -> list[bool]:
        """Set up, through `service`, the universes of the points it serves."""
        post = http_poster(service.url + "/")
        if service is self.instances:  # it shares the service's database, set up through it
            return []
        points = [point for point in self.points.values() if self._service_of(point) is service]
        shapes = {replace(point.shape, hot=False, children=1) for point in points}
        return [
            set_up(post, shape, say=lambda line: say(f"{service.name}: {line}")) for shape in shapes
        ]

    def _issue_keys(self) -> None:
        """Keys for the points with authentication on, signed with the bench's master secret."""
        if any(point.auth for point in self.points.values()):
            url = self.cluster.url(self.service.database)
            issue_keys(url, BENCH_MASTER_SECRET.encode(), Shape()).save(str(self._keys))
            say(f"keys issued for the points with authentication on: {_show(self._keys)}")

    @property
    def _keys(self) -> Path:
        return self.directory / "keys.json"

    def _saved_setup(self) -> Path:
        """Where a set-up cluster is kept for the next run, named after the schema's
        source: another schema means another setup. (The baseline's database is
        named after its commit, see bench/baseline.py.)"""
        digest = hashlib.sha256()
        for source in sorted((PROJECT / "app" / "storage").glob("*.py")) + [
            Path(workload.__file__),
            CEILING_SQL / "order_schema.sql",
        ]:
            digest.update(source.read_bytes())
        digest.update(server_version(self.cluster.bindir()).encode())
        return SAVED_SETUPS / f"setup-{digest.hexdigest()[:16]}"

    def _restore_setup(self) -> None:
        """Start from a copy of the saved setup when there is one (BENCH_FRESH=1: never)."""
        self.cluster.reset()
        saved = self._saved_setup()
        if saved.exists() and not self.settings.fresh:
            say(f"starting from the setup saved in {_show(saved)} (BENCH_FRESH=1 to redo it)")
            shutil.copytree(saved, self.cluster.datadir, symlinks=True)

    def _save_setup(self) -> None:
        """Keep a copy of the set-up cluster, stopped, replacing older ones."""
        self._stop_services()
        self.cluster.stop()
        for older in SAVED_SETUPS.glob("setup-*"):
            shutil.rmtree(older)
        saved = self._saved_setup()
        shutil.copytree(self.cluster.datadir, saved, symlinks=True)
        say(f"setup saved in {_show(saved)} for the next runs")
        self.cluster.ensure_running()
        self._start_services()

    def _client(self, program: str, *args: object) -> str:
        """Run one of PostgreSQL's client programs against the cluster, pinned like the load."""
        command = [
            str(self.cluster.bindir() / program),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.cluster.port),
            "-U",
            "postgres",
            *map(str, args),
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, preexec_fn=self.settings.pin_loadgen
        )
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stdout}{result.stderr}")
        return result.stdout

    # -- measuring ------------------------------------------------------------

    def _round(self, round_number: int) -> None:
        states = sorted({point.service_state for point in self.points.values()}, key=self._order)
        for state in states:
            self._enter(state)
            names = [name for name, point in self.points.items() if point.service_state == state]
            for name in round_order(names, round_number):
                point = self.points[name]
                self._record(round_number, name, self._measure(round_number, name, point))
            if state == (self.settings.default_workers, 0, False) and self.settings.wants(
                "pgbench"
            ):
                self._measure_ceiling(round_number)

    def _order(self, state: tuple[int, int, bool]) -> tuple[bool, bool, int, int]:
        """The default state first, so that a round starts where the previous ended."""
        workers, cores, auth = state
        return (state[:2] != (self.settings.default_workers, 0), auth, cores, workers)

    def _enter(self, state: tuple[int, int, bool]) -> None:
        """Give the services measured in `state` its workers and authentication, and pin
        every one (an idle one too) and the database to its CPUs."""
        workers, cores, auth = state
        measured = [self._service_of(p) for p in self.points.values() if p.service_state == state]
        for service in self.services:
            if service.name in measured and (workers, auth) != (service.workers, service.auth):
                how = "with authentication on" if auth else "with authentication off"
                say(f"restarting {service.name} with {workers} workers, {how}")
                service.restart(workers, auth)
        cpus = set(self.settings.cpus[:cores] if cores else self.settings.cpus)
        for service in self.services:
            service.pin(cpus)

    def _measure(self, round_number: int, name: str, point: Point) -> dict:
        prefix = self.directory / "locust" / f"{name}-{round_number}"
        prefix.parent.mkdir(exist_ok=True)
        warmup = max(self.settings.warmup, STREAMS_WARMUP_S if point.streams else 0)
        length = warmup + self.settings.seconds
        service = self._service_of(point)
        command, environment = locust_command(
            point, service, prefix, warmup, length, seed=round_number
        )
        if point.auth:
            environment["LOAD_AUTH_KEYS"] = str(self._keys)
        scraped_before = service.metrics()  # read once for the polls and the stages
        commits_before = self._commits(service)
        server_pids = service.service_pids() + service.database_pids()
        idle_pids = [
            pid for other in self.services if other is not service for pid in other.service_pids()
        ]
        loading_since, children_before = time.monotonic(), _children_cpu_s()
        with self._attack(point, service, prefix):
            before, idle_before = usage(server_pids), usage(idle_pids)
            tiers_before = tier_usage(server_pids)
            busy_before = machine_busy_s()
            started = time.monotonic()
            with open(f"{prefix}.log", "wb") as log:
                locust = subprocess.Popen(
                    command,
                    cwd=PROJECT,
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=self.settings.pin_loadgen,
                )
                service_rss = database_rss = 0.0
                while locust.poll() is None:
                    service_rss = max(service_rss, usage(service.service_pids()).rss_mb)
                    database_rss = max(database_rss, usage(service.database_pids()).rss_mb)
                    if time.monotonic() - started > length + LOCUST_GRACE_S:
                        locust.kill()
                    time.sleep(SAMPLE_EVERY_S)
            wall = time.monotonic() - started
            tiers_after = tier_usage(server_pids)
            server_cpu = usage(server_pids).cpu_s - before.cpu_s
            idle_cpu = usage(idle_pids).cpu_s - idle_before.cpu_s
            busy = machine_busy_s() - busy_before
        # The load generator's CPU: locust's, and the attack's (counted once it has exited).
        loadgen_cpu = (_children_cpu_s() - children_before) / (time.monotonic() - loading_since)
        commits = self._commits(service) - commits_before
        scraped = service.metrics()
        polls = market_polls(scraped) - market_polls(scraped_before)
        spent = stages.quantiles(stages.buckets(scraped_before), stages.buckets(scraped))
        stats = aggregated(Path(f"{prefix}_stats.csv"))
        reached = streams.delays(Path(f"{prefix}_arrivals.csv"), self._query(service))
        return {
            "point": name,
            "round": round_number,
            "seconds": self.settings.seconds,
            "requests": stats["Request Count"],
            "failures": stats["Failure Count"],
            "requests_per_s": stats["Requests/s"],
            "children_per_s": stats["Requests/s"] * point.shape.children,
            "p50_ms": stats["50%"],
            "p99_ms": stats["99%"],
            "service_rss_mb": round(service_rss, 1),
            "database_rss_mb": round(database_rss, 1),
            "server_cpu_pct": round(100 * server_cpu / wall, 1),
            "loadgen_cpu_pct": round(100 * loadgen_cpu, 1),
            "machine_busy_pct": round(100 * busy / wall, 1),
            "idle_service_cpu_pct": round(100 * idle_cpu / wall, 2),
            "reads_per_s": stats["reads_per_s"],
            "book_p99_ms": stats["book_p99_ms"],
            **{
                f"{tier}_cpu_pct": round(100 * (tiers_after[tier] - tiers_before[tier]) / wall, 1)
                for tier in TIERS
            },
            "db_commits_per_s": round(commits / wall, 1),
            "market_polls_per_s": round(polls / wall, 2),
            "streams": point.streams,
            "stream_deliveries": reached.deliveries if reached else 0,
            "stream_p50_s": round(reached.p50_s, 4) if reached else 0.0,
            "stream_p99_s": round(reached.p99_s, 4) if reached else 0.0,
            "stream_max_s": round(reached.max_s, 4) if reached else 0.0,
            **{
                f"{stage}_{name}_ms": round(seconds * 1000, 2)
                for stage, at in spent.items()
                for name, seconds in zip(("p50", "p99"), at, strict=True)
            },
        }

    def _query(self, service: Service):
        """`query(sql)`: psql's unaligned answer from the service's database."""
        return lambda sql: self._client("psql", "-Atc", sql, service.database)

    def _commits(self, service: Service) -> int:
        """Transactions the service's database has committed so far: every statement
        the exchange sends on its own, and every transaction, counts one."""
        return int(self._query(service)(streams.COMMITS))

    @contextlib.contextmanager
    def _attack(self, point: Point, service: Service, prefix: Path):
        """bench/slow_clients.py against the service while the block runs (the point's
        `attackers` connections, half dribbling headers, half bodies), given
        ATTACK_RAMP_S to open them first; its log says what the service did with them."""
        if not point.attackers:
            yield
            return
        command = [
            sys.executable,
            "-m",
            "bench.slow_clients",
            service.url,
            f"--connections={point.attackers}",
            f"--seconds={ATTACK_LONGEST_S:g}",
            f"--pace={ATTACK_PACE_S:g}",
            f"--source={ATTACK_SOURCE}",
        ]
        with open(f"{prefix}-attack.log", "wb") as log:
            attack = subprocess.Popen(
                command,
                cwd=PROJECT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self.settings.pin_loadgen,
            )
            try:
                time.sleep(ATTACK_RAMP_S)
                yield
            finally:
                attack.terminate()  # it stops within a pace and writes its summary
                try:
                    attack.wait(timeout=ATTACK_PACE_S + LOCUST_GRACE_S)
                except subprocess.TimeoutExpired:
                    attack.kill()
                    attack.wait()

    def _record(self, round_number: int, name: str, row: dict) -> None:
        self.runs.append(row)
        figures.write_rows(self.directory / "runs.csv", figures.RUN_FIELDS, self.runs)
        self.measured += 1
        self._progress(
            round_number,
            f"{name:<17} {row['requests_per_s']:7.1f} req/s  p50 {row['p50_ms']:4.0f} ms  "
            f"p99 {row['p99_ms']:4.0f} ms  errors {row['failures']:.0f}  "
            f"load gen CPU {row['loadgen_cpu_pct']:.0f} %",
        )
        if row["failures"]:
            failures = self.directory / "locust" / f"{name}-{round_number}_failures.csv"
            say(f"  warning: some requests failed; see {_show(failures)}")
        if row["loadgen_cpu_pct"] > 80:
            say("  warning: the load generator used most of its CPU: it may be the bottleneck")
        if row["idle_service_cpu_pct"] > IDLE_CPU_WARNING_PCT:
            say(
                f"  warning: the service not measured used {row['idle_service_cpu_pct']:.1f} % "
                "of a CPU meanwhile: it competed with the one measured"
            )

    def _measure_ceiling(self, round_number: int) -> None:
        seconds = max(1, round(self.settings.seconds))
        output = self._client(
            "pgbench",
            "-n",
            "-f",
            CEILING_SQL / "order.sql",
            "-D",
            "nsym=10",
            "-c",
            PGBENCH_CLIENTS,
            "-j",
            2,
            "-T",
            seconds,
            "limits",
        )
        tps = float(re.search(r"tps = ([\d.]+)", output).group(1))
        latency = float(re.search(r"latency average = ([\d.]+) ms", output).group(1))
        row = {
            "round": round_number,
            "clients": PGBENCH_CLIENTS,
            "seconds": seconds,
            "tps": tps,
            "latency_ms": latency,
        }
        self.pgbench.append(row)
        figures.write_rows(self.directory / "pgbench.csv", figures.PGBENCH_FIELDS, self.pgbench)
        self.measured += 1
        self._progress(round_number, f"{'pgbench':<17} {tps:7.1f} tps    latency {latency:.1f} ms")

    def _progress(self, round_number: int, text: str) -> None:
        per_round = len(self.points) + self.settings.wants("pgbench")
        total = per_round * self.settings.repeats
        elapsed = time.monotonic() - self.started
        remaining = (
            (time.monotonic() - self.measuring_since) / self.measured * (total - self.measured)
        )
        say(
            f"[round {round_number}/{self.settings.repeats} {self.measured}/{total}, "
            f"{elapsed / 60:.1f} min, about {remaining / 60:.1f} min left] {text}"
        )

    def _audit(self, service: Service) -> None:
        """The ledger audit of the service's own code on its own database."""
        result = subprocess.run(
            [sys.executable, "-m", "app.audit"],
            cwd=service.source,
            env=service.environment(),
            capture_output=True,
            text=True,
        )
        verdict = "passed" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        say(f"{service.name}: ledger audit after the load: {verdict}")
        if result.returncode != 0:
            say(result.stdout + result.stderr)

    def _write_meta(self) -> None:
        meta = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "commit": _git("rev-parse", "--short", "HEAD"),
            "changed_files": _git("status", "--porcelain", "--untracked-files=no").count("\n"),
            "machine": {"cpus": len(self.settings.cpus), "model": _cpu_model()},
            "settings": {
                "repeats": self.settings.repeats,
                "seconds": self.settings.seconds,
                "warmup": self.settings.warmup,
                "loadgen_cpus": sorted(self.settings.loadgen_cpus or []),
                "default_workers": self.settings.default_workers,
                "pgbench_clients": PGBENCH_CLIENTS,
            },
            "base_point": "http",
            "baseline": self.revision.describe() if self.revision else None,
            "points": {
                name: {**asdict(point), "shape": asdict(point.shape)}
                for name, point in self.points.items()
            },
            "sweeps": self.sweeps,
        }
        (self.directory / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def locust_command(
    point: Point, service: Service, prefix: Path, warmup: float, length: float, seed: int
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a headless locust run of `point`."""
    users = ["LegacyTcpUser" if point.transport == "tcp" else "ExchangeHttpUser"]
    if point.readers:
        users.append("MarketDataUser")
    if point.streams:
        users.append("MarketStreamUser")
    everyone = str(point.clients + point.readers + point.streams)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        "locustfile.py",
        "--headless",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
        "-u",
        everyone,
        "-r",
        everyone,
        "-t",
        f"{length:g}s",
        "--host",
        service.url,
        "--csv",
        str(prefix),
        *users,
    ]
    environment = dict(
        os.environ,
        **point.shape.env(),
        LOAD_SETUP="0",
        LOAD_WARMUP=str(warmup),
        LOAD_TCP=f"127.0.0.1:{service.tcp_port}",
        LOAD_SEED=str(seed),
        LOAD_READERS=str(point.readers),
        LOAD_KEYS="1" if point.keyed else "0",
        LOAD_STREAMS=str(point.streams),
        LOAD_STREAM_LOG=f"{prefix}_arrivals.csv",
    )
    return command, environment


def aggregated(stats_csv: Path) -> dict[str, float]:
    """The trading requests of locust's statistics (the "Aggregated" row less the
    reads, whose rate and book p99 come apart); zeros when locust wrote none."""
    fields = ("Request Count", "Failure Count", "Requests/s", "50%", "99%")
    rows = []
    if stats_csv.exists():
        with open(stats_csv, newline="") as source:
            rows = list(csv.DictReader(source))
    total = [row for row in rows if row["Name"] == "Aggregated"]
    if not total:
        say(f"  warning: no statistics in {_show(stats_csv)}: see its .log")
        return dict.fromkeys((*fields, "reads_per_s", "book_p99_ms"), 0.0)
    figures = {name: _figure(total[0][name]) for name in fields}
    reads = {row["Name"].removeprefix(READ): row for row in rows if row["Name"].startswith(READ)}
    read_rate = sum(_figure(row["Requests/s"]) for row in reads.values())
    figures["Request Count"] -= sum(_figure(row["Request Count"]) for row in reads.values())
    figures["Requests/s"] -= read_rate
    figures["reads_per_s"] = read_rate
    figures["book_p99_ms"] = _figure(reads["book"]["99%"]) if "book" in reads else 0.0
    return figures


def _figure(cell: str) -> float:
    """A cell of locust's statistics; percentiles are "N/A" when no request finished."""
    return float(cell.replace("N/A", "") or 0)


def _children_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=PROJECT, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def say(message: str) -> None:
    print(message, flush=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # stop the service and the cluster on the way out
    settings = Settings.from_env()
    try:
        revision = Revision.resolve(settings.baseline) if settings.baseline else None
    except RuntimeError as error:
        say(str(error))
        return 2
    directory = figures.RESULTS / time.strftime("%Y%m%d-%H%M%S")
    directory.mkdir(parents=True)
    if figures.LATEST.is_symlink() or figures.LATEST.exists():
        figures.LATEST.unlink()
    figures.LATEST.symlink_to(directory.name)
    bench = Bench(settings, directory, revision)
    try:
        bench.run()
    except KeyboardInterrupt:
        say("interrupted: the figures so far follow")
    results = figures.Results(directory)
    say(f"\n{figures.render_text(results.table())}\n")
    comparison = results.comparison()
    if comparison:
        say(f"{results.comparison_caption()}\n\n{figures.render_text(comparison)}\n")
    if results.streams_table():
        say(f"{figures.render_text(results.streams_table())}\n")
    say(figures.render_text(results.targets_table()))
    say(f"\nCPU ms per request by tier\n\n{figures.render_text(results.tiers_table())}")
    say(f"\nWhere a request's time went, ms\n\n{figures.render_text(results.stages_table())}")
    say(f"\nraw figures in {_show(directory)}; {(time.monotonic() - bench.started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
