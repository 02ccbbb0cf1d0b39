"""`python -m app.shim.probe`: exit 0 when the shim and the service behind it both answer.

A readiness check for containers and supervisors, needing nothing but Python:
it sends one empty request over the legacy protocol (`<create/>`, which the
service answers with `<results/>` without touching a table, and which no
metric counts as a failure) and calls the shim ready when a reply comes back
that is not the shim's own "service unavailable".
"""

import argparse
import os
import sys

from lxml import etree

from app.client.transport import TransportError, tcp_sender
from app.shim.config import ShimConfig

PROBE = b"<create/>"
UNAVAILABLE = "service unavailable"


def main(argv: list[str] | None = None, environ=os.environ) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.shim.probe",
        description="Exit 0 when the legacy TCP shim answers and its service does too.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address of the shim")
    parser.add_argument(
        "--port",
        type=int,
        default=ShimConfig.from_env(environ).port,
        help="port of the shim (EXCHANGE_SHIM_PORT)",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a reply")
    args = parser.parse_args(argv)
    try:
        reply = etree.fromstring(tcp_sender((args.host, args.port), args.timeout)(PROBE))
    except (OSError, TransportError, etree.XMLSyntaxError) as error:
        print(f"not ready: no reply from {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    unavailable = [child.text for child in reply if (child.text or "").startswith(UNAVAILABLE)]
    if unavailable:
        print(f"not ready: {unavailable[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
