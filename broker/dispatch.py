"""Route a request frame to its handler and encode whatever comes back.

This is the one place where exceptions become Kafka error codes: a handler raises
a `KafkaError` (or anything else, which becomes UNKNOWN_SERVER_ERROR and is
logged), and its module's `error_response` shapes the error for that API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .handlers import HANDLERS
from .protocol import errors
from .protocol.framing import RequestHeader, encode_bare_error, encode_response, parse_request
from .protocol.primitives import DecodeError
from .protocol.schema import ApiSchema

if TYPE_CHECKING:
    from .node import BrokerNode

log = logging.getLogger("broker.dispatch")


class UnreadableRequest(Exception):
    """The frame cannot be parsed far enough to answer it; the connection closes."""


@dataclass
class RequestContext:
    """What a handler knows about the request besides its body.

    `after_response` holds work the handler wants done once its response is on
    its way (handed to the socket, or dropped with the connection), such as
    background reads its answer set off: run before, they would delay it."""

    node: "BrokerNode"
    header: RequestHeader
    schema: ApiSchema
    connection: Any
    after_response: list[Callable[[], None]] = field(default_factory=list)

    @property
    def version(self) -> int:
        return self.header.api_version


@dataclass
class Answer:
    """A handled request: the response parts (None: no response, as for an acks=0
    Produce) and the request's `after_response` work."""

    parts: list | None
    after_response: list[Callable[[], None]] = field(default_factory=list)

    def run_after_response(self) -> None:
        for callback in self.after_response:
            try:
                callback()
            except Exception:
                log.exception("work after a response failed")
        self.after_response.clear()


class Dispatcher:
    def __init__(self, node: "BrokerNode"):
        self.node = node

    def begin(self, frame: bytes, connection) -> Any:
        """Parse the header now (so an unreadable frame closes the connection at
        once) and return the coroutine that produces the `Answer`."""
        try:
            parsed = parse_request(frame)
        except DecodeError as exc:
            raise UnreadableRequest(f"unreadable request header: {exc}") from None
        return self._answer(parsed, connection)

    async def _answer(self, parsed, connection) -> Answer:
        header: RequestHeader = parsed.header
        schema = parsed.schema
        module = HANDLERS.get(header.api_key)
        if schema is None or module is None:
            return Answer([encode_bare_error(header.correlation_id, errors.UnsupportedVersion.code)])
        version = header.api_version
        if version not in schema.valid:
            if header.api_key == 18:
                # KIP-511: answer ApiVersions v0 with our ranges so the client retries.
                body = module.error_response(None, 0, errors.UnsupportedVersion())
                return Answer(encode_response(schema, 0, header.correlation_id, body))
            return Answer([encode_bare_error(header.correlation_id, errors.UnsupportedVersion.code)])
        if parsed.body_reader is None:
            raise UnreadableRequest(f"{schema.name} v{version}: request header is malformed")
        try:
            request = schema.decode_request(parsed.body_reader, version)
        except DecodeError as exc:
            raise UnreadableRequest(f"{schema.name} v{version} body is malformed: {exc}") from None
        ctx = RequestContext(self.node, header, schema, connection)
        started = time.monotonic()
        if version not in schema.advertised:
            body = module.error_response(request, version, errors.UnsupportedVersion(
                f"{schema.name} v{version} is not supported; this broker speaks "
                f"v{schema.advertised.low}-v{min(schema.advertised.high, schema.valid.high)}"))
        else:
            try:
                body = await module.handle(ctx, request)
            except errors.KafkaError as exc:
                body = module.error_response(request, version, exc)
            except Exception as exc:
                log.exception("%s v%d from %s failed", schema.name, version, header.client_id)
                body = module.error_response(request, version, errors.UnknownServerError(
                    f"{type(exc).__name__}: {exc}"))
        self.node.metrics.observe_request(schema.name, time.monotonic() - started)
        parts = None if body is None else encode_response(schema, version, header.correlation_id, body)
        return Answer(parts, ctx.after_response)
