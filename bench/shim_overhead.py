"""What the legacy TCP shim costs: one workload straight over HTTP and through the shim.

Start a service and a shim in front of it first, then:

    .venv/bin/python bench/shim_overhead.py --http http://127.0.0.1:8000/ \\
        --tcp 127.0.0.1:12345 --clients 32 --seconds 20 --rounds 3

Each client owns an account and loops over: place an order (buy or sell, at a
price near 100 so that orders cross), query it, cancel it; one request each.
Both paths replay the same seeded sequences with the same number of clients.
HTTP clients keep their connection alive; TCP clients open one per request,
as the default framing requires, unless --keep-open (start the shim with
`--keep-open --reply-length` for that).

Every phase starts on fresh connections, so each draws anew how the service's
worker processes share them, and rounds alternate the order of the paths
(ABBA), so a database that slows as it grows weighs on both alike. The summary
gives the median of the rounds.
"""

import argparse
import asyncio
import contextlib
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

SYMBOLS = 4
OPENED_ID = re.compile(rb'<opened [^>]*id="(\d+)"')

Send = Callable[[bytes], Awaitable[bytes]]


@dataclass
class Measurement:
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    seconds: float = 0.0
    shim_cpu_s: float | None = None  # the shim process's CPU time during the phase

    @property
    def shim_us_per_request(self) -> float:
        return self.shim_cpu_s / (len(self.latencies) + self.failures) * 1e6

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, percent: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[percent - 1] * 1000


@dataclass
class Path:
    """How clients reach the service; `connect` gives one client its sender for one phase."""

    name: str
    connect: Callable[[contextlib.AsyncExitStack], Awaitable[Send]]


def main() -> int:
    args = _parser().parse_args()
    run = random.randrange(10**8, 10**9)  # keeps accounts and symbols apart from earlier runs
    return asyncio.run(_benchmark(args, run))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--http", required=True, help="URL of the service")
    parser.add_argument("--tcp", required=True, metavar="HOST:PORT", help="address of the shim")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of a measured phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds per path")
    parser.add_argument("--keep-open", action="store_true", help="reuse TCP connections")
    parser.add_argument(
        "--shim-pid", type=int, help="the shim's process id: report its CPU time per request too"
    )
    return parser


async def _benchmark(args, run: int) -> int:
    host, port = args.tcp.rsplit(":", 1)
    http = Path("http", lambda cleanup: _http_sender(cleanup, args.http))
    tcp = Path("tcp", lambda cleanup: _tcp_sender(cleanup, host, int(port), args.keep_open))
    await _open_accounts(http, run, args.clients)
    for path in (http, tcp):
        await _measure(path, run, args.clients, args.warmup)
    results = {http.name: [], tcp.name: []}
    for round_number in range(1, args.rounds + 1):
        for path in (http, tcp) if round_number % 2 else (tcp, http):
            shim_cpu = _cpu_seconds(args.shim_pid) if path is tcp and args.shim_pid else None
            measurement = await _measure(path, run, args.clients, args.seconds)
            if shim_cpu is not None:
                measurement.shim_cpu_s = _cpu_seconds(args.shim_pid) - shim_cpu
            results[path.name].append(measurement)
            _print_row(f"round {round_number}", path.name, measurement)
    _print_summary(results)
    return 1 if any(m.failures for runs in results.values() for m in runs) else 0


async def _http_sender(cleanup: contextlib.AsyncExitStack, url: str) -> Send:
    """A keep-alive connection of the client's own."""
    session = await cleanup.enter_async_context(
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1),
            headers={"Content-Type": "application/xml"},
        )
    )

    async def send(body: bytes) -> bytes:
        async with session.post(url, data=body) as response:
            return await response.read()

    return send


async def _tcp_sender(
    cleanup: contextlib.AsyncExitStack, host: str, port: int, keep_open: bool
) -> Send:
    """One connection per request, or one kept open for all of this client's requests."""
    if not keep_open:

        async def send(body: bytes) -> bytes:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"%d\n%s" % (len(body), body))
            reply = await reader.read()
            writer.close()
            return reply

        return send

    reader, writer = await asyncio.open_connection(host, port)
    cleanup.callback(writer.close)

    async def send_on_open_connection(body: bytes) -> bytes:
        writer.write(b"%d\n%s" % (len(body), body))
        return await reader.readexactly(int(await reader.readline()))

    return send_on_open_connection


async def _open_accounts(path: Path, run: int, clients: int) -> None:
    accounts = "".join(
        f'<account id="{_account(run, client)}" balance="1000000000"/>' for client in range(clients)
    )
    grants = "".join(
        f'<account id="{_account(run, client)}">1000000</account>' for client in range(clients)
    )
    symbols = "".join(
        f'<symbol sym="{_symbol(run, number)}">{grants}</symbol>' for number in range(SYMBOLS)
    )
    async with contextlib.AsyncExitStack() as cleanup:
        send = await path.connect(cleanup)
        reply = await send(f"<create>{accounts}{symbols}</create>".encode())
    if b"<error" in reply:
        raise SystemExit(f"setting up accounts failed: {reply[:500]!r}")


async def _measure(path: Path, run: int, clients: int, seconds: float) -> Measurement:
    measurement = Measurement()
    async with contextlib.AsyncExitStack() as cleanup:
        senders = [await path.connect(cleanup) for _ in range(clients)]
        deadline = time.monotonic() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _client(send, run, client, deadline, measurement)
                for client, send in enumerate(senders)
            )
        )
        measurement.seconds = time.perf_counter() - started
    return measurement


async def _client(
    send: Send, run: int, client: int, deadline: float, measurement: Measurement
) -> None:
    """Order, query, cancel, again and again, from a sequence that depends only on the client."""
    chooser = random.Random(client)
    account = _account(run, client)
    while time.monotonic() < deadline:
        side = chooser.choice((1, -1))
        order = (
            f'<order sym="{_symbol(run, chooser.randrange(SYMBOLS))}" '
            f'amount="{side * chooser.randint(1, 10)}" limit="{chooser.randint(95, 105)}"/>'
        )
        reply = await _timed(send, _transactions(account, order), measurement)
        opened = OPENED_ID.search(reply or b"")
        if opened is None:
            continue
        order_id = opened.group(1).decode()
        await _timed(send, _transactions(account, f'<query id="{order_id}"/>'), measurement)
        await _timed(send, _transactions(account, f'<cancel id="{order_id}"/>'), measurement)


async def _timed(send: Send, body: bytes, measurement: Measurement) -> bytes | None:
    """The reply, timed; None, counted as a failure, when there is no `<results>` reply."""
    started = time.perf_counter()
    try:
        reply = await send(body)
    except (OSError, aiohttp.ClientError, asyncio.IncompleteReadError, ValueError):
        measurement.failures += 1
        return None
    if b"<results" not in reply or b"service unavailable" in reply:
        measurement.failures += 1
        return None
    measurement.latencies.append(time.perf_counter() - started)
    return reply


def _transactions(account: str, child: str) -> bytes:
    return f'<transactions id="{account}">{child}</transactions>'.encode()


def _account(run: int, client: int) -> str:
    return f"{run}{client:04d}"


def _symbol(run: int, number: int) -> str:
    return f"S{run}N{number}"


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid`, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat_file:
        stat = stat_file.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _print_row(label: str, path: str, measurement: Measurement) -> None:
    shim = (
        f"   shim {measurement.shim_us_per_request:5.0f} us/request"
        if measurement.shim_cpu_s is not None
        else ""
    )
    print(
        f"{label:<8} {path:<5} {measurement.throughput:8.1f} req/s"
        f"   p50 {measurement.percentile(50):7.2f} ms   p99 {measurement.percentile(99):7.2f} ms"
        f"   failures {measurement.failures}{shim}",
        flush=True,
    )


def _print_summary(results: dict[str, list[Measurement]]) -> None:
    print("\nmedian of the rounds")
    throughputs = {}
    for path, runs in results.items():
        throughputs[path] = statistics.median(m.throughput for m in runs)
        p50 = statistics.median(m.percentile(50) for m in runs)
        p99 = statistics.median(m.percentile(99) for m in runs)
        print(f"  {path:<5} {throughputs[path]:8.1f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
    ratio = throughputs["tcp"] / throughputs["http"]
    print(f"  through the shim: {ratio:.1%} of the direct throughput (cost {1 - ratio:.1%})")
    if all(m.shim_cpu_s is not None for m in results["tcp"]):
        shim = statistics.median(m.shim_us_per_request for m in results["tcp"])
        print(f"  the shim's own CPU: {shim:.0f} us per request")


if __name__ == "__main__":
    sys.exit(main())
