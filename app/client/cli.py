"""Send request documents to the exchange and print its replies: `python -m app.client`.

    echo '<create/>' | python -m app.client    # the service `make run` starts
    python -m app.client --tcp 127.0.0.1:12345 accounts.xml orders.xml
    echo '<create/>' | python -m app.client --http http://127.0.0.1:8000/

Without `--tcp` or `--http` it asks the HTTP service at `EXCHANGE_BIND`, the
address `make run` serves on, as the shim does under `make run`.

    python -m app.client account 123456          # and orders, book, trades:
    python -m app.client book SPY                # tables (app/client/reads.py)
    python -m app.client book SPY --watch        # following the symbol's stream
    python -m app.client trades SPY --follow     # (app/client/live.py)

Each file (or stdin, also named `-`) is one request (app/client/transport.py
says how it travels), sent with an idempotency key of its own and sent again
while the service cannot take it (app/client/resend.py): never lost, never
run twice.
"""

import argparse
import http.client
import os
import sys
from pathlib import Path

from lxml import etree

from app.auth.proof import Credentials
from app.client import live, reads
from app.client.resend import RESEND_FOR_S, NotTaken, keyed_http_sender, keyed_tcp_sender
from app.client.transport import TransportError
from app.endpoints import web_url

OPTIONS_WITH_VALUES = frozenset(
    {"--tcp", "--http", "--timeout", "--key", "--secret", "--resend-for"}
)
EXIT_TRANSPORT_FAILURE = 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if _first_word(argv) in reads.SUBCOMMANDS:
        parser = argparse.ArgumentParser(prog="python -m app.client", description=__doc__)
        _add_http_options(parser)
        # The same options after the subcommand's name; unset there, they keep the above.
        after_name = argparse.ArgumentParser(add_help=False)
        _add_http_options(after_name, default=argparse.SUPPRESS)
        reads.add_subcommands(parser, after_name)
        args = parser.parse_args(argv)
        credentials = _credentials(parser, args)
        if getattr(args, "watch", False) or getattr(args, "follow", False):
            return live.run(args, args.http, args.timeout)  # market data: public
        return reads.run(args, args.http, args.timeout, credentials)
    parser = _parser()
    args = parser.parse_args(argv)
    credentials = _credentials(parser, args)
    if args.tcp:
        send = keyed_tcp_sender(args.tcp, args.timeout, args.resend_for, credentials)
    else:
        send = keyed_http_sender(args.http, args.timeout, args.resend_for, credentials)
    names = args.files or ["-"]
    status = 0
    for name in names:
        if len(names) > 1:
            print(f"==> {name} <==", flush=True)
        try:
            _show(send(_read_input(name)), args.raw)
        except (OSError, http.client.HTTPException, TransportError, NotTaken) as error:
            print(f"{'stdin' if name == '-' else name}: {error}", file=sys.stderr)
            status = EXIT_TRANSPORT_FAILURE
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.client",
        description="Send XML requests to the exchange and print the replies.",
        epilog="Reads as tables: python -m app.client {account,orders,book,trades} --help. "
        "Exit status: 0 when every request got a reply (even an <error> one), "
        "1 when some request got none, 2 for a usage error.",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--tcp", metavar="HOST:PORT", type=_address, help="the legacy TCP protocol")
    _add_http_options(parser, target)
    parser.add_argument(
        "--raw", action="store_true", help="print replies as received, not pretty-printed"
    )
    parser.add_argument(
        "--resend-for",
        type=float,
        default=RESEND_FOR_S,
        metavar="SECONDS",
        help="send a request again, under the same idempotency key, while it gets no reply "
        f"or 409, 502, 503 or 504, for up to this long (default: {RESEND_FOR_S:g}; 0: once)",
    )
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="request documents; none or - for stdin (a file named like a subcommand: ./book)",
    )
    return parser


def _add_http_options(parser: argparse.ArgumentParser, group=None, default=None) -> None:
    """--http, --timeout, --key and --secret; `default` (argparse.SUPPRESS) replaces their
    defaults."""
    (group or parser).add_argument(
        "--http",
        metavar="URL",
        default=default or web_url(os.environ),
        help="the HTTP service (default: the address of EXCHANGE_BIND)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default or 60.0,
        help="seconds to wait for each reply (default: 60)",
    )
    parser.add_argument(
        "--key",
        default=default or os.environ.get("EXCHANGE_KEY"),
        help="sign requests with this key (default: EXCHANGE_KEY), when authentication is on",
    )
    parser.add_argument(
        "--secret",
        default=default or os.environ.get("EXCHANGE_KEY_SECRET"),
        help="the key's secret (default: EXCHANGE_KEY_SECRET)",
    )


def _credentials(parser: argparse.ArgumentParser, args) -> Credentials | None:
    if bool(args.key) != bool(args.secret):
        parser.error("--key and --secret (EXCHANGE_KEY, EXCHANGE_KEY_SECRET) go together")
    return Credentials(args.key, args.secret) if args.key else None


def _first_word(argv: list[str]) -> str | None:
    """The first argument that is neither an option nor an option's value."""
    words = iter(argv)
    for word in words:
        if word in OPTIONS_WITH_VALUES:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _address(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _read_input(name: str) -> bytes:
    return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()


def _show(reply: bytes, raw: bool) -> None:
    if not raw:
        reply = _pretty(reply)
    sys.stdout.buffer.write(reply if reply.endswith(b"\n") else reply + b"\n")
    sys.stdout.buffer.flush()


def _pretty(reply: bytes) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(reply, parser)
    except etree.XMLSyntaxError as error:
        raise TransportError(f"reply is not XML: {error}") from None
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
