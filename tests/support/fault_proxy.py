"""An HTTP/1.1 proxy that injects S3 failures between a client and moto.

Put it in front of the moto server and point an `S3Store` at `proxy.url`. Each
request is matched against the fault plan (rules in the order they were added,
first firing rule wins); with no rule firing it is forwarded unchanged.

    proxy = FaultProxy(moto.host, moto.port).start()
    proxy.inject("slow_down", next=2)                    # next two requests: 503 SlowDown
    proxy.inject("internal_error", fraction=0.2)         # 20% of requests: 500 (seeded rng)
    proxy.inject("reset", method="PUT", path="/segments/")  # cut PUTs there, no response
    proxy.inject("reset", next=1, forward=True)          # upstream applies it, response lost
    proxy.inject("stall", next=1, seconds=5)             # hold the next response 5 s
    proxy.clear()
    proxy.injected["slow_down"], proxy.requests, proxy.log

Faults: "internal_error" (500 InternalError), "slow_down" (503 SlowDown), both
with S3's XML error body and the connection kept alive; "reset" (the
connection is closed with a TCP RST and no response; with `forward=True` the
request reaches moto first); "stall" (the request is forwarded and its response
held `seconds` before it is sent, if the client is still there).

HTTP handling: keep-alive connections (one upstream connection per client
connection), request bodies by Content-Length or Transfer-Encoding: chunked
(which also carries aws-chunked uploads: those declare a Content-Length),
`Expect: 100-continue` answered by the proxy itself. botocore with
request_checksum_calculation="when_required" (as S3Store sets it) sends plain
Content-Length bodies over http.

Threading: the proxy runs an asyncio loop in a daemon thread; the plan and the
counters may be changed and read from the test's thread (a lock guards them).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

KINDS = ("internal_error", "slow_down", "reset", "stall")

_ERRORS = {
    "internal_error": (500, "Internal Server Error", "InternalError",
                       "We encountered an internal error. Please try again."),
    "slow_down": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
}


@dataclass
class FaultRule:
    kind: str
    remaining: int | None = None  # fire for this many more matching requests
    fraction: float | None = None  # else fire for this fraction of them
    method: str | None = None
    path: str | None = None  # substring of the request target (path + query)
    match: Callable[[str, str], bool] | None = None  # (method, target) -> bool
    seconds: float = 0.0  # stall
    forward: bool = False  # reset after the upstream handled the request

    def matches(self, method: str, target: str) -> bool:
        return ((self.method is None or self.method.upper() == method)
                and (self.path is None or self.path in target)
                and (self.match is None or self.match(method, target)))


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, seed: int = 0,
                 listen_port: int = 0):
        self.upstream = (upstream_host, upstream_port)
        self.port = listen_port
        self.requests = 0  # every request read from a client
        self.forwarded = 0  # requests sent upstream
        self.injected: Counter[str] = Counter()
        #: (method, target, fault kind or None) of every request, in order.
        self.log: list[tuple[str, str, str | None]] = []
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- the plan -------------------------------------------------------------

    def inject(self, kind: str, *, next: int | None = None, fraction: float | None = None,
               method: str | None = None, path: str | None = None,
               match: Callable[[str, str], bool] | None = None,
               seconds: float = 0.0, forward: bool = False) -> FaultRule:
        """Add a rule: for the `next` n matching requests, or a `fraction` of them,
        or (neither given) every matching request until `clear()`."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {KINDS}")
        if next is not None and fraction is not None:
            raise ValueError("give next or fraction, not both")
        rule = FaultRule(kind, next, fraction, method, path, match, seconds, forward)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def _choose(self, method: str, target: str) -> FaultRule | None:
        with self._lock:
            self.requests += 1
            chosen = None
            for rule in self._rules:
                if not rule.matches(method, target):
                    continue
                if rule.remaining is not None:
                    if rule.remaining <= 0:
                        continue
                    rule.remaining -= 1
                elif rule.fraction is not None and self._rng.random() >= rule.fraction:
                    continue
                chosen = rule
                break
            self._rules = [r for r in self._rules if r.remaining is None or r.remaining > 0]
            if chosen is not None:
                self.injected[chosen.kind] += 1
            self.log.append((method, target, chosen.kind if chosen else None))
            return chosen

    # -- serving ----------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                request = await _read_request(client_r, client_w)
                if request is None:
                    return  # client closed between requests
                method, target, head, body, client_wants_close = request
                rule = self._choose(method, target)
                kind = rule.kind if rule else None
                if kind == "reset" and not rule.forward:
                    _reset(client_w)
                    return
                if kind in _ERRORS:
                    client_w.write(_error_response(kind, method))
                    await client_w.drain()
                    if client_wants_close:
                        return
                    continue
                if upstream is None or upstream[1].is_closing():
                    upstream = await asyncio.open_connection(*self.upstream)
                upstream[1].write(head + body)
                await upstream[1].drain()
                with self._lock:
                    self.forwarded += 1
                response, upstream_closes = await _read_response(upstream[0], method)
                if upstream_closes:
                    upstream[1].close()
                    upstream = None
                if kind == "reset":
                    _reset(client_w)
                    return
                if kind == "stall":
                    await asyncio.sleep(rule.seconds)
                client_w.write(response)
                await client_w.drain()
                if client_wants_close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a peer went away or spoke garbage: drop the connection
        finally:
            self._tasks.discard(task)
            if upstream is not None:
                upstream[1].close()
            if not client_w.is_closing():
                client_w.close()


# -- HTTP/1.1 framing -------------------------------------------------------------


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    """One request: (method, target, head to forward, raw body, close after), or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise
    request_line, headers = _parse_head(head)
    method, target, version = request_line.split(" ", 2)
    if (_header(headers, "expect") or "").lower() == "100-continue":
        # Answer it here; the upstream then sees a plain request.
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        kept = [f"{k}: {v}" for k, v in headers if k.lower() != "expect"]
        head = ("\r\n".join([request_line, *kept]) + "\r\n\r\n").encode("latin-1")
    body = await _read_body(reader, headers)
    close = ((_header(headers, "connection") or "").lower() == "close"
             or version == "HTTP/1.0")
    return method.upper(), target, head, body, close


async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[bytes, bool]:
    """One whole response (raw), and whether the upstream closes after it."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, headers = _parse_head(head)
        status = int(status_line.split(" ", 2)[1])
        if not 100 <= status < 200:
            break  # interim responses (100 Continue) are not forwarded
    closes = (_header(headers, "connection") or "").lower() == "close"
    if method == "HEAD" or status in (204, 304):
        return head, closes
    if _header(headers, "content-length") is None and "chunked" not in (
            _header(headers, "transfer-encoding") or "").lower():
        return head + await reader.read(), True  # body delimited by close
    return head + await _read_body(reader, headers), closes


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    """A body framed by Transfer-Encoding: chunked (raw, chunk lines and all) or
    Content-Length; none if neither is given."""
    if "chunked" in (_header(headers, "transfer-encoding") or "").lower():
        parts = []
        while True:
            line = await reader.readuntil(b"\r\n")
            parts.append(line)
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    trailer = await reader.readuntil(b"\r\n")
                    parts.append(trailer)
                    if trailer == b"\r\n":
                        return b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    length = _header(headers, "content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    return b""


def _error_response(kind: str, method: str) -> bytes:
    status, reason, code, message = _ERRORS[kind]
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>").encode()
    if method == "HEAD":
        body = b""
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\nx-amz-request-id: fault-proxy\r\n\r\n")
    return head.encode() + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: SO_LINGER 0, then drop the transport without flushing."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
