"""A small blocking Kafka protocol client for the CLI, on the project's own codec.

It speaks to a running broker the way any Kafka client does: ApiVersions
first, then each request at the highest version both sides know. Failures
are typed: `AdminClientError` for transport problems (carrying the address),
`broker.protocol.errors` classes for Kafka error codes.

Not thread-safe: one caller, one request in flight per connection.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from .protocol import errors
from .protocol.framing import decode_response, encode_request
from .protocol.messages import BY_NAME
from .protocol.primitives import DecodeError

LATEST_OFFSET = -1


class AdminClientError(Exception):
    """The broker at `address` could not be reached or answered garbage."""

    def __init__(self, address: str, message: str):
        super().__init__(f"{address}: {message}")
        self.address = address


def raise_for(code: int, context: str) -> None:
    if code:
        cls = errors.BY_CODE.get(code, errors.UnknownServerError)
        raise cls(f"{context}: {cls.name} (error code {code})")


class _Connection:
    def __init__(self, host: str, port: int, client_id: str, timeout: float):
        self.address = f"{host}:{port}"
        self.client_id = client_id
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise AdminClientError(self.address, f"cannot connect: {exc}") from None
        self.correlation_id = 0
        self.versions: dict[int, tuple[int, int]] = {}
        response = self.call("ApiVersions", 0, {})
        raise_for(response.error_code, "ApiVersions")
        self.versions = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}

    def close(self) -> None:
        self.sock.close()

    def version_for(self, api: str) -> int:
        schema = BY_NAME[api]
        theirs = self.versions.get(schema.key)
        if theirs is None:
            raise errors.UnsupportedVersion(f"the broker at {self.address} does not support {api}")
        low, high = max(theirs[0], schema.valid.low), min(theirs[1], schema.valid.high)
        if low > high:
            raise errors.UnsupportedVersion(f"no {api} version in common with {self.address}")
        return high

    def call(self, api: str, version: int, body: dict) -> Any:
        schema = BY_NAME[api]
        self.correlation_id += 1
        try:
            self.sock.sendall(encode_request(schema, version, self.correlation_id, self.client_id, body))
            size = struct.unpack(">i", self._read(4))[0]
            correlation_id, response = decode_response(schema, version, self._read(size))
        except OSError as exc:
            raise AdminClientError(self.address, f"{api} failed: {exc}") from None
        except DecodeError as exc:
            raise AdminClientError(self.address, f"unreadable {api} response: {exc}") from None
        if correlation_id != self.correlation_id:
            raise AdminClientError(self.address, f"{api}: response for request {correlation_id}, "
                                                 f"expected {self.correlation_id}")
        return response

    def _read(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)


class AdminClient:
    """Connections to the bootstrap broker and, when it differs, a group's coordinator."""

    def __init__(self, bootstrap: str, client_id: str = "tierbroker-cli", timeout: float = 10.0):
        host, _, port = bootstrap.rpartition(":")
        if not host or not port.isdigit():
            raise AdminClientError(bootstrap, "expected HOST:PORT")
        self.timeout = timeout
        self.client_id = client_id
        self._bootstrap = _Connection(host.strip("[]"), int(port), client_id, timeout)
        self._others: dict[str, _Connection] = {}

    def close(self) -> None:
        self._bootstrap.close()
        for conn in self._others.values():
            conn.close()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, api: str, body: dict, conn: _Connection | None = None) -> Any:
        conn = conn or self._bootstrap
        return conn.call(api, conn.version_for(api), body)

    def _connect(self, host: str, port: int) -> _Connection:
        address = f"{host}:{port}"
        if address == self._bootstrap.address:
            return self._bootstrap
        if address not in self._others:
            self._others[address] = _Connection(host, port, self.client_id, self.timeout)
        return self._others[address]

    # -- groups ----------------------------------------------------------------------

    def coordinator(self, group_id: str) -> _Connection:
        conn = self._bootstrap
        version = conn.version_for("FindCoordinator")
        body = {"key": group_id, "key_type": 0, "coordinator_keys": [group_id]}
        response = conn.call("FindCoordinator", version, body)
        entry = response.coordinators[0] if version >= 4 else response
        raise_for(entry.error_code, f"FindCoordinator for group {group_id!r}")
        return self._connect(entry.host, entry.port)

    def list_groups(self, states: list[str] | None = None) -> list[Any]:
        response = self.request("ListGroups", {"states_filter": states or []})
        raise_for(response.error_code, "ListGroups")
        return sorted(response.groups, key=lambda g: g.group_id)

    def describe_group(self, group_id: str) -> Any:
        response = self.request("DescribeGroups", {"groups": [group_id]}, self.coordinator(group_id))
        group = response.groups[0]
        raise_for(group.error_code, f"DescribeGroups {group_id!r}")
        return group

    def committed_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        """Every committed offset of the group."""
        conn = self.coordinator(group_id)
        version = conn.version_for("OffsetFetch")
        if version < 2:
            raise errors.UnsupportedVersion("fetching all of a group's offsets needs OffsetFetch v2+")
        body = {"group_id": group_id, "topics": None,
                "groups": [{"group_id": group_id, "topics": None}]}
        response = conn.call("OffsetFetch", version, body)
        if version >= 8:
            group = response.groups[0]
            raise_for(group.error_code, f"OffsetFetch {group_id!r}")
            topics = group.topics
        else:
            raise_for(response.error_code, f"OffsetFetch {group_id!r}")
            topics = response.topics
        out = {}
        for t in topics:
            for p in t.partitions:
                raise_for(p.error_code, f"OffsetFetch {group_id!r} {t.name}-{p.partition_index}")
                if p.committed_offset >= 0:
                    out[(t.name, p.partition_index)] = p.committed_offset
        return out

    def log_end_offsets(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        """The latest offset (high watermark) of each partition; None where the
        broker answered with an error (e.g. the topic is gone)."""
        if not tps:
            return {}
        by_topic: dict[str, list[int]] = {}
        for topic, partition in tps:
            by_topic.setdefault(topic, []).append(partition)
        body = {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": topic, "partitions": [{"partition_index": p, "timestamp": LATEST_OFFSET}
                                           for p in partitions]}
            for topic, partitions in by_topic.items()]}
        version = self._bootstrap.version_for("ListOffsets")
        response = self._bootstrap.call("ListOffsets", version, body)
        out: dict[tuple[str, int], int | None] = {tp: None for tp in tps}
        for t in response.topics:
            for p in t.partitions:
                if p.error_code:
                    continue
                offset = p.old_style_offsets[0] if version == 0 and p.old_style_offsets else p.offset
                out[(t.name, p.partition_index)] = offset
        return out
