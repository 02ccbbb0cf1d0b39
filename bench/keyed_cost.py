"""What an idempotency key (SPEC §9) costs a request, in CPU: the same requests with and without.

    .venv/bin/python -m bench.keyed_cost                 # about a minute, on a cluster of its own
    .venv/bin/python -m bench.keyed_cost --requests 2000 --rounds 5

On a throwaway PostgreSQL, the Falcon app (falcon.testing: no HTTP server, no
gevent) answers the workload's requests (bench/workload.py: orders, queries
and cancels, one child each) in blocks of `--requests`, alternately with and
without a key of their own. A block's cost is the CPU time of this process
plus PostgreSQL's (every process of the cluster, those that ended included),
divided by its requests; the summary gives the medians of the rounds and
their ratio. Steadier than throughput on a shared machine: other work slows
a block down but hardly changes what it costs.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import psutil
from falcon import testing

from app.client.resend import HEADER, new_key
from app.config import Config
from app.local.cluster import temporary_cluster
from app.storage.engine import database_engine
from app.storage.schema import create_schema
from app.web.app import create_app
from bench.workload import Shape, Trader, problem, set_up

SHAPE = Shape(accounts=50, symbols=4)


def database_cpu_s(datadir: Path) -> float:
    """CPU seconds of the cluster's processes so far: the live ones, and those the
    postmaster has reaped (its children's time)."""
    postmaster = psutil.Process(int((datadir / "postmaster.pid").read_text().split()[0]))
    own = postmaster.cpu_times()
    total = own.user + own.system + own.children_user + own.children_system
    for process in postmaster.children(recursive=True):
        try:
            used = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += used.user + used.system
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.keyed_cost", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per block")
    parser.add_argument("--rounds", type=int, default=5, help="blocks of each kind")
    args = parser.parse_args(argv)
    with temporary_cluster() as cluster:
        setup = database_engine(cluster.url(), pool_size=1)
        create_schema(setup)
        setup.dispose()
        client = testing.TestClient(create_app(Config(database_url=cluster.url())))

        def post(body: bytes, headers: dict | None = None) -> bytes:
            return client.simulate_post("/", body=body, headers=headers).content

        set_up(post, SHAPE, parallel=1)
        trader = Trader(SHAPE, 0, 1)
        costs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        run_block(post, trader, args.requests, keyed=False, datadir=cluster.datadir)  # warm up
        for round_number in range(args.rounds):
            for keyed in (round_number % 2 == 0, round_number % 2 == 1):  # ABBA
                cost = run_block(post, trader, args.requests, keyed, cluster.datadir)
                costs[keyed].append(cost)
                app_ms, database_ms = cost
                print(
                    f"round {round_number + 1} {'keyed  ' if keyed else 'unkeyed'}: "
                    f"{app_ms:.3f} ms app + {database_ms:.3f} ms PostgreSQL per request",
                    flush=True,
                )
    report(costs)
    return 0


def run_block(post, trader: Trader, requests: int, keyed: bool, datadir: Path):
    """Per request: the app's CPU ms, PostgreSQL's CPU ms."""
    app_before, database_before = time.process_time(), database_cpu_s(datadir)
    for _ in range(requests):
        account, body, _ = trader.next_request()
        reply = post(body, {HEADER: new_key()} if keyed else None)
        trouble = problem(reply)
        if trouble:
            raise RuntimeError(trouble)
        trader.record(account, reply)
    app_ms = (time.process_time() - app_before) * 1000 / requests
    database_ms = (database_cpu_s(datadir) - database_before) * 1000 / requests
    return app_ms, database_ms


def report(costs: dict[bool, list[tuple[float, float]]]) -> None:
    medians = {}
    for keyed, blocks in costs.items():
        app = statistics.median(app for app, _ in blocks)
        database = statistics.median(database for _, database in blocks)
        total = statistics.median(app + database for app, database in blocks)
        medians[keyed] = total
        print(
            f"median {'keyed  ' if keyed else 'unkeyed'}: {app:.3f} ms app + {database:.3f} ms "
            f"PostgreSQL = {total:.3f} ms CPU per request"
        )
    print(
        f"keyed / unkeyed CPU per request: {medians[True] / medians[False]:.3f} "
        f"(+{medians[True] - medians[False]:.3f} ms)"
    )


if __name__ == "__main__":
    sys.exit(main())
