"""Where the parts of the exchange reach each other on this machine, from the environment.

Light on purpose: the command-line client imports it, and needs neither the
launcher nor the database layer.
"""

from collections.abc import Mapping

DEFAULT_BIND = "127.0.0.1:8000"
LIVENESS = "/livez"
# Health and metrics answer at once, never waiting for a request slot: a liveness
# check that queued behind requests stuck on a hung database would get healthy
# workers restarted.
UNQUEUED_PATHS = frozenset({LIVENESS, "/readyz", "/health", "/metrics"})
WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def web_url(environment: Mapping[str, str]) -> str:
    """Where the shim and the client reach the web tier: the address gunicorn binds,
    on loopback if wildcard."""
    host, _, port = environment.get("EXCHANGE_BIND", DEFAULT_BIND).rpartition(":")
    return f"http://{reachable(host)}:{port}/"


def reachable(host: str) -> str:
    """A listening address as a client on this machine connects to it."""
    return "127.0.0.1" if host in WILDCARDS else host
