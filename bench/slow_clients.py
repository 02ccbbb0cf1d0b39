"""Slow clients against the HTTP port: connections that dribble a request and never finish it.

    .venv/bin/python -m bench.slow_clients http://127.0.0.1:8000 --connections 500 --seconds 60

    # from another loopback address, as from another machine
    .venv/bin/python -m bench.slow_clients http://127.0.0.1:8000 --source 127.0.0.2

Half the connections send a request's header lines one every `--pace`
seconds and never end the headers; the other half send complete headers
announcing a 100,000-byte body and then a few bytes of it every `--pace`
seconds. Whenever the server closes one (a deadline, a refusal), another is
opened in its place, so `--connections` stay held open for as long as the
server lets them. `make bench` runs this beside its attacked points; every
few seconds it prints how many are open, and at the end what the server did
with them. SIGTERM or Ctrl-C ends the attack early, with the same summary.
"""

import argparse
import asyncio
import collections
import contextlib
import itertools
import signal
import sys
import time
from urllib.parse import urlsplit

BODY_ANNOUNCED = 100_000
REPORT_EVERY_S = 5.0


class Attack:
    def __init__(self, host: str, port: int, pace: float, until: float, source: str | None):
        self.host, self.port, self.pace, self.until = host, port, pace, until
        self.local_addr = (source, 0) if source else None
        self.open = 0
        self.outcomes: collections.Counter = collections.Counter()

    def stop(self) -> None:
        self.until = time.monotonic()

    async def hold(self, dribble_body: bool) -> None:
        """One slot: a slow connection, replaced whenever the server closes it."""
        while time.monotonic() < self.until:
            try:
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, local_addr=self.local_addr
                )
            except OSError as error:
                self.outcomes[f"connect failed: {error.strerror or error}"] += 1
                await asyncio.sleep(self.pace)
                continue
            self.open += 1
            try:
                outcome = await self._dribble(reader, writer, dribble_body)
            finally:
                self.open -= 1
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            self.outcomes[outcome] += 1

    async def _dribble(self, reader, writer, dribble_body: bool) -> str:
        head = [b"POST / HTTP/1.1\r\n", b"Host: x\r\n", b"Content-Type: application/xml\r\n"]
        if dribble_body:
            writer.write(b"".join(head) + b"Content-Length: %d\r\n\r\n" % BODY_ANNOUNCED)
            pieces = (b"<" for _ in range(BODY_ANNOUNCED))
        else:
            pieces = itertools.chain(head, (b"X-Slow-%d: 1\r\n" % n for n in itertools.count()))
        for piece in pieces:
            if time.monotonic() >= self.until:
                return "held to the end"
            try:
                writer.write(piece)
                await writer.drain()
                reply = await asyncio.wait_for(reader.read(4096), timeout=self.pace)
            except TimeoutError:
                continue  # still open, no reply: the attack goes on
            except OSError:
                return "reset by the server"
            if not reply:
                return "closed by the server"
            status = reply.split(b"\r\n", 1)[0].decode("ascii", "replace")
            return f"answered {status}"
        return "ran out of bytes"

    async def report(self) -> None:
        last = time.monotonic()
        while time.monotonic() < self.until:
            await asyncio.sleep(self.pace)
            if time.monotonic() - last >= REPORT_EVERY_S:
                last = time.monotonic()
                print(f"slow clients: {self.open} open", flush=True)


async def run(
    url: str, connections: int, seconds: float, pace: float, source: str | None = None
) -> Attack:
    address = urlsplit(url)
    attack = Attack(address.hostname, address.port or 80, pace, time.monotonic() + seconds, source)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, attack.stop)
    holders = [attack.hold(dribble_body=n % 2 == 1) for n in range(connections)]
    await asyncio.gather(attack.report(), *holders)
    return attack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients", description=__doc__)
    parser.add_argument("url", help="the HTTP service, e.g. http://127.0.0.1:8000")
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between two pieces")
    parser.add_argument("--source", help="local address to connect from, e.g. 127.0.0.2")
    args = parser.parse_args(argv)
    attack = asyncio.run(run(args.url, args.connections, args.seconds, args.pace, args.source))
    for outcome, count in attack.outcomes.most_common():
        print(f"slow clients: {count} connections {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
