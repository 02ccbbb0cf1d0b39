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
says how it travels).
"""

import argparse
import http.client
import os
import sys
from pathlib import Path

from lxml import etree

from app.client import live, reads
from app.client.transport import TransportError, http_sender, tcp_sender
from app.endpoints import web_url

OPTIONS_WITH_VALUES = frozenset({"--tcp", "--http", "--timeout"})
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
        following = getattr(args, "watch", False) or getattr(args, "follow", False)
        return (live.run if following else reads.run)(args, args.http, args.timeout)
    args = _parser().parse_args(argv)
    send = tcp_sender(args.tcp, args.timeout) if args.tcp else http_sender(args.http, args.timeout)
    names = args.files or ["-"]
    status = 0
    for name in names:
        if len(names) > 1:
            print(f"==> {name} <==", flush=True)
        try:
            _show(send(_read_input(name)), args.raw)
        except (OSError, http.client.HTTPException, TransportError) as error:
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
        "files",
        nargs="*",
        metavar="FILE",
        help="request documents; none or - for stdin (a file named like a subcommand: ./book)",
    )
    return parser


def _add_http_options(parser: argparse.ArgumentParser, group=None, default=None) -> None:
    """--http and --timeout; `default` (argparse.SUPPRESS) replaces their defaults."""
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
