"""HAProxy in front of several instances of the exchange: its configuration, and the process.

One configuration serves `make cluster` (instances on loopback addresses of
this machine, each a gunicorn and a shim) and docker compose's `cluster`
profile (the `web` replicas, found by Docker's DNS): only the server lines
differ. Both backends check each host's readiness (`GET /readyz`): a host
whose database is unreachable, or that drains before stopping, is taken out
of both; the TCP backend also checks that the host's shim accepts. Only a
connection that could not be made is retried on another host: a request
once sent is never resent by the balancer, as it may have run (clients
resend it under its idempotency key, SPEC §9).
"""

import csv
import io
import os
import shutil
import urllib.request
from dataclasses import dataclass

CHECK_EVERY_MS = 500  # a host failing 2 checks in a row is out within about a second


@dataclass(frozen=True)
class Timeouts:
    """Seconds; see README.md's Several hosts for what each bounds."""

    connect: float = 1.0  # to a host; beyond, the next host is tried
    server: float = 30.0  # a host's reply to a request; beyond, 504
    client: float = 75.0  # a client silent between requests (EXCHANGE_IDLE_TIMEOUT)
    request: float = 10.0  # a request arriving whole (EXCHANGE_REQUEST_TIMEOUT)
    tunnel: float = 3600.0  # a stream once its reply has begun (SPEC §10's server-sent events)
    check: float = 1.0  # a readiness check


class LoopbackHosts:
    """Instances on consecutive loopback addresses of this machine: `make cluster`."""

    def __init__(self, addresses: list[str]):
        self.addresses = addresses

    def servers(self, port: int) -> list[str]:
        return [
            f"server host{number} {address}:{port} check"
            for number, address in enumerate(self.addresses, 1)
        ]


class Replicas:
    """Up to `count` replicas of a compose service, found by Docker's DNS."""

    def __init__(self, service: str, count: int):
        self.service = service
        self.count = count

    def servers(self, port: int) -> list[str]:
        return [
            f"server-template host {self.count} {self.service}:{port} check "
            "resolvers docker init-addr none"
        ]


def configuration(
    hosts: LoopbackHosts | Replicas,
    http_bind: str,
    tcp_bind: str,
    stats_bind: str,
    web_port: int,
    shim_port: int,
    timeouts: Timeouts = Timeouts(),
    tls_pem: str | None = None,
) -> str:
    """HAProxy's configuration; with `tls_pem` (certificate and key) both fronts speak TLS."""
    tls = f" ssl crt {tls_pem}" if tls_pem else ""
    resolvers = (
        ["resolvers docker", "    nameserver dns 127.0.0.11:53", ""]
        if isinstance(hosts, Replicas)
        else []
    )
    lines = [
        "# HAProxy in front of the exchange's instances; made by app/local/balancer.py.",
        "global",
        f"    hard-stop-after {timeouts.server + 10:g}s",
        "",
        "defaults",
        f"    timeout connect {timeouts.connect:g}s",
        f"    timeout server {timeouts.server:g}s",
        f"    timeout client {timeouts.client:g}s",
        f"    timeout http-request {timeouts.request:g}s",
        f"    timeout http-keep-alive {timeouts.client:g}s",
        f"    timeout tunnel {timeouts.tunnel:g}s",
        f"    timeout queue {timeouts.request:g}s",
        f"    timeout check {timeouts.check:g}s",
        "    retries 3",
        "    option redispatch 1",
        f"    default-server inter {CHECK_EVERY_MS}ms fall 2 rise 2",
        "",
        "frontend http",
        "    mode http",
        f"    bind {http_bind}{tls}",
        "    default_backend web",
        "",
        "backend web",
        "    mode http",
        "    balance roundrobin",
        "    retry-on conn-failure",
        "    option httpchk",
        "    http-check send meth GET uri /readyz",
        "    http-check expect status 200",
        *(f"    {line}" for line in hosts.servers(web_port)),
        "",
        "frontend legacy",
        "    mode tcp",
        f"    bind {tcp_bind}{tls}",
        "    default_backend shims",
        "",
        "backend shims",
        "    mode tcp",
        "    balance leastconn",
        "    option tcp-check",
        "    tcp-check connect",
        f"    tcp-check connect port {web_port}",
        '    tcp-check send "GET /readyz HTTP/1.0\\r\\n\\r\\n"',
        '    tcp-check expect rstring "^HTTP/1\\.[01] 200"',
        *(f"    {line}" for line in hosts.servers(shim_port)),
        "",
        *resolvers,
        "listen stats",
        "    mode http",
        f"    bind {stats_bind}",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 2s",
        "",
    ]
    return "\n".join(lines)


def haproxy_program(environment=os.environ) -> str | None:
    """HAProxy's executable (EXCHANGE_HAPROXY): on PATH, or where Debian puts it, which is
    not on a normal user's PATH."""
    name = environment.get("EXCHANGE_HAPROXY") or "haproxy"
    return shutil.which(name, path=f"{environment.get('PATH', '')}:/usr/sbin:/usr/local/sbin")


def server_states(stats_url: str, timeout: float = 1.0) -> dict[tuple[str, str], str]:
    """(backend, server) -> status ("UP", "DOWN", "MAINT", ...), from the stats page's CSV."""
    with urllib.request.urlopen(f"{stats_url};csv", timeout=timeout) as response:
        text = response.read().decode().removeprefix("# ")
    return {
        (row["pxname"], row["svname"]): row["status"]
        for row in csv.DictReader(io.StringIO(text))
        if row["svname"] not in ("FRONTEND", "BACKEND")
    }
