"""Many clients at once: each gets its own reply, and none is dropped while others are served."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from app.local.cluster import free_port
from tests.shim.processes import echo_service, running_shim
from tests.shim.wire import TIMEOUT, children, connect, framed, read_to_end

CLIENTS = 200
CONNECTIONS = 2000


def test_200_concurrent_clients_each_get_their_own_reply(shim, engine):
    everyone_connected = threading.Barrier(CLIENTS)

    def client(number: int):
        with connect(shim.address) as connection:
            everyone_connected.wait(TIMEOUT)
            connection.sendall(framed(b'<create><account id="%d" balance="1"/></create>' % number))
            return children(read_to_end(connection))

    with ThreadPoolExecutor(CLIENTS) as pool:
        replies = list(pool.map(client, range(CLIENTS)))
    assert replies == [[("created", {"id": str(number)}, None)] for number in range(CLIENTS)]


def test_thousands_of_connections_wait_in_the_backlog_and_all_get_served():
    """Far more connections than slots: the shim stops accepting, the backlog holds the rest."""
    with (
        echo_service(free_port()) as upstream,
        running_shim(upstream, "--max-connections", "50", "--concurrency", "8") as shim,
    ):
        replies = asyncio.run(_connect_all_then_talk(shim.address, CONNECTIONS))
    assert replies == [_request(number) for number in range(CONNECTIONS)]


async def _connect_all_then_talk(address, count: int) -> list[bytes]:
    async with asyncio.timeout(60):
        connections = [await asyncio.open_connection(*address) for _ in range(count)]
        return await asyncio.gather(
            *(
                _talk(reader, writer, _request(number))
                for number, (reader, writer) in enumerate(connections)
            )
        )


async def _talk(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> bytes:
    writer.write(framed(request))
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    return reply


def _request(number: int) -> bytes:
    return b'<request number="%d"/>' % number
