"""A TCP proxy between Kafka clients and the broker that loses some responses.

It reads the client's request frames to learn which API each correlation id
belongs to; when the broker's answer to a chosen API arrives, it may cut both
connections instead of forwarding it. The request was handled, the client never
hears so and retries: exactly what idempotence must absorb.
"""

from __future__ import annotations

import asyncio
import random
import struct
import threading


class FlakyProxy:
    def __init__(self, listen_port: int, upstream_port: int, drop_api_key: int, drop_rate: float, seed: int = 1):
        self.listen_port = listen_port
        self.upstream_port = upstream_port
        self.drop_api_key = drop_api_key
        self.drop_rate = drop_rate
        self.rng = random.Random(seed)
        self.dropped = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server = None

    def start(self) -> "FlakyProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close():
            self._server.close()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.listen_port)

    async def _serve(self, client_r, client_w) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        api_of: dict[int, int] = {}
        done = asyncio.Event()

        async def requests():
            try:
                while True:
                    size = struct.unpack(">i", await client_r.readexactly(4))[0]
                    frame = await client_r.readexactly(size)
                    api_key, _, correlation_id = struct.unpack_from(">hhi", frame)
                    api_of[correlation_id] = api_key
                    broker_w.write(struct.pack(">i", size) + frame)
                    await broker_w.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            done.set()

        async def responses():
            try:
                while True:
                    size = struct.unpack(">i", await broker_r.readexactly(4))[0]
                    frame = await broker_r.readexactly(size)
                    correlation_id = struct.unpack_from(">i", frame)[0]
                    if api_of.pop(correlation_id, None) == self.drop_api_key and self.rng.random() < self.drop_rate:
                        self.dropped += 1
                        break
                    client_w.write(struct.pack(">i", size) + frame)
                    await client_w.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            done.set()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(responses())]
        await done.wait()
        for task in tasks:
            task.cancel()
        for writer in (client_w, broker_w):
            writer.transport.abort()
