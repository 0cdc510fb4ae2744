"""edges/ocpp/fastsend.py on real websockets connections (loopback): the answer a charger reads is the same, in the
same order, whichever path wrote it; a closed connection still raises ConnectionClosed; a full write buffer is left
to the library's back-pressure."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from edges.ocpp import fastsend


def test_the_fast_path_is_available_on_the_pinned_websockets() -> None:
    assert fastsend.fast_path_available()


async def _pair(handler):  # noqa: ANN001, ANN202
    server = await serve(handler, "127.0.0.1", 0, compression=None, close_timeout=0.5)
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://127.0.0.1:{port}"


def test_answers_arrive_whole_and_in_order_mixed_with_the_library_send() -> None:
    async def main() -> list[str]:
        async def handler(ws) -> None:  # noqa: ANN001
            async for msg in ws:
                n = int(msg)
                if n % 2:
                    await fastsend.send_text(ws, f'[3,"{n}",{{"currentTime":"é{n}"}}]')
                else:
                    await ws.send(f'[3,"{n}",{{}}]')

        server, url = await _pair(handler)
        got = []
        async with connect(url, compression=None) as c:
            for i in range(50):
                await c.send(str(i))
            for _ in range(50):
                got.append(await c.recv())
        server.close()
        await server.wait_closed()
        return got

    got = asyncio.run(main())
    assert got == [f'[3,"{n}",{{"currentTime":"é{n}"}}]' if n % 2 else f'[3,"{n}",{{}}]' for n in range(50)]


def test_a_closed_connection_raises_connection_closed_not_a_protocol_error() -> None:
    async def main() -> BaseException | None:
        result: list[BaseException | None] = []
        closed = asyncio.Event()

        async def handler(ws) -> None:  # noqa: ANN001
            await ws.recv()
            await ws.close()
            try:
                await fastsend.send_text(ws, "[3,\"1\",{}]")
                result.append(None)
            except BaseException as exc:  # noqa: BLE001 - the type is the assertion
                result.append(exc)
            closed.set()

        server, url = await _pair(handler)
        async with connect(url) as c:
            await c.send("x")
            await asyncio.wait_for(closed.wait(), 5)
        server.close()
        await server.wait_closed()
        return result[0]

    assert isinstance(asyncio.run(main()), ConnectionClosed)


def test_a_full_write_buffer_waits_for_the_charger_instead_of_piling_up() -> None:
    """The charger stops reading: the library's send (taken once the buffer is not empty) waits for the drain, so
    the server's buffer stays bounded instead of growing with every answer."""
    async def main() -> tuple[bool, int]:
        stuck = asyncio.Event()
        sizes: list[int] = []

        async def handler(ws) -> None:  # noqa: ANN001
            await ws.recv()
            big = "x" * 60_000
            try:
                for _ in range(400):  # 24 MB if nothing held it back
                    await asyncio.wait_for(fastsend.send_text(ws, big), 0.5)
                    sizes.append(ws.transport.get_write_buffer_size())
            except (asyncio.TimeoutError, TimeoutError):
                stuck.set()

        server, url = await _pair(handler)
        async with connect(url, max_size=None, close_timeout=0.5) as c:
            c.transport.pause_reading()  # a charger that does not read
            await c.send("go")
            await asyncio.wait_for(stuck.wait(), 20)
            c.transport.resume_reading()
        server.close()
        await server.wait_closed()
        return stuck.is_set(), max(sizes, default=0)

    stuck, biggest = asyncio.run(main())
    assert stuck
    assert biggest < 4 * 1024 * 1024


@pytest.mark.parametrize("text", ["", "[2,\"a\",\"Heartbeat\",{}]", "ü" * 70_000])
def test_sizes_around_the_frame_length_encodings_arrive_unchanged(text: str) -> None:
    async def main() -> str:
        async def handler(ws) -> None:  # noqa: ANN001
            await ws.recv()
            await fastsend.send_text(ws, text)

        server, url = await _pair(handler)
        async with connect(url, max_size=None) as c:
            await c.send("?")
            got = await c.recv()
        server.close()
        await server.wait_closed()
        return got

    assert asyncio.run(main()) == text
