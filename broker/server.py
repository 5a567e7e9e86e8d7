"""Server lifecycle: startup -> serve -> shutdown.

Startup recovers every partition's log (in a worker thread), binds the
listeners and starts the background loops. Shutdown stops accepting, lets every
connection finish the requests it already read (bounded by a drain timeout),
then closes the logs cleanly so the next start skips recovery scans. The first
SIGTERM/SIGINT drains; a second one forces: connections are cut at once, and
the logs are still closed.

Every background task belongs to the server's TaskGroup; nothing outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from pathlib import Path

from remote_index.read_metrics import ReadMetrics
from remote_index.remote_reader import ReadSettings, RemoteLogReader
from remote_index.store import open_store
from tiering import TieringManager, TieringMetrics, TieringSettings

from .admin_http import AdminHttpServer
from .config import BrokerConfig
from .connection import Connection
from .dispatch import Dispatcher
from .frame_pool import FramePool
from .groups import GroupCoordinator, GroupSettings, OffsetStore
from .metrics import BrokerMetrics
from .node import BrokerNode, Endpoint
from .producer_ids import ProducerIdAllocator
from .tier_admin import TierAdmin
from .topics import TopicRegistry
from .topics.store import METADATA_DIR

log = logging.getLogger("broker.server")

DRAIN_TIMEOUT_S = 30.0
# Spare request-frame buffers kept for reuse, across all connections.
FRAME_POOL_BYTES = 32 << 20
RECOVERY_POINT_INTERVAL_S = 10.0


class Server:
    def __init__(self, config: BrokerConfig):
        self.config = config
        self.node: BrokerNode | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._admin_http: AdminHttpServer | None = None
        self._connections: set[Connection] = set()
        self._frame_pool = FramePool(FRAME_POOL_BYTES)
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._started = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------

    async def run(self) -> None:
        """startup, serve until `request_stop`, shutdown."""
        await self.startup()
        try:
            async with asyncio.TaskGroup() as background:
                background.create_task(self._retention_loop(), name="retention")
                background.create_task(self._recovery_point_loop(), name="recovery-point")
                background.create_task(self.node.tiering.run(), name="tiering")
                background.create_task(self.node.groups.run(), name="groups")
                self._started.set()
                await self._stop.wait()
                await self._drain()
                raise _Stopped
        except* _Stopped:
            pass
        finally:
            await self._close()

    async def startup(self) -> None:
        cfg = self.config
        started = time.monotonic()
        log_dirs = [Path(d).resolve() for d in cfg.log_dirs()]
        registry = TopicRegistry(cfg, log_dirs)
        node_id = cfg.node_id()
        cluster_id = registry.store.load_identity(node_id)
        log.info("starting tierbroker node %d of cluster %s; log dirs %s", node_id, cluster_id,
                 ", ".join(map(str, log_dirs)))
        await asyncio.to_thread(registry.open_all)
        partitions = sum(len(t.partitions) for t in registry.topics.values())
        log.info("recovered %d topics, %d partitions in %.2fs", len(registry.topics), partitions,
                 time.monotonic() - started)
        # Committed offsets live under the first log dir; groups come back Empty.
        groups = GroupCoordinator(GroupSettings.from_config(cfg),
                                  OffsetStore(log_dirs[0] / METADATA_DIR / "offsets"))
        await groups.load()
        producer_ids = ProducerIdAllocator(log_dirs[0])
        await asyncio.to_thread(producer_ids.load)
        metrics = BrokerMetrics()
        store = open_store(cfg)
        log.info("remote tier: %s", store)
        tiering = TieringManager(store, TieringSettings.from_broker_config(cfg), TieringMetrics(metrics.registry))
        registry.attach_tiering(tiering)
        remote_reader = RemoteLogReader(store, ReadSettings.from_broker_config(cfg), ReadMetrics(metrics.registry))
        self.node = BrokerNode(cfg, node_id, cluster_id, registry, metrics, groups, producer_ids, tiering,
                               remote_reader)
        self.node.tier_admin = TierAdmin(self.node, log_dirs[0])
        await self.node.tier_admin.resume()
        dispatcher = Dispatcher(self.node)
        max_request = cfg.get("socket.request.max.bytes")
        bound: list[Endpoint] = []
        loop = asyncio.get_running_loop()
        for name, host, port in cfg.listeners():
            server = await loop.create_server(
                lambda: self._new_connection(dispatcher, max_request), host or None, port,
                reuse_address=True)
            self._servers.append(server)
            apply_socket_buffers(server, cfg.get("socket.send.buffer.bytes"), cfg.get("socket.receive.buffer.bytes"))
            actual_port = server.sockets[0].getsockname()[1]
            bound.append(Endpoint(name, host or "0.0.0.0", actual_port))
            log.info("listening on %s://%s:%d", name, host or "0.0.0.0", actual_port)
        self.node.advertised = self._advertised(bound)
        for ep in self.node.advertised:
            log.info("advertising %s://%s:%d", ep.listener, ep.host, ep.port)
        metrics_port = cfg.get("metrics.port")
        if metrics_port >= 0:
            metrics.serve_http(cfg.get("metrics.host"), metrics_port)
        admin_port = cfg.get("admin.http.port")
        if admin_port >= 0:
            self._admin_http = AdminHttpServer(self.node.tier_admin, cfg.get("admin.http.host"), admin_port)
            await self._admin_http.start()
            log.info("admin endpoint on %s/v1/", self._admin_http.url)
        log.info("ready in %.2fs", time.monotonic() - started)

    def _advertised(self, bound: list[Endpoint]) -> list[Endpoint]:
        configured = self.config.advertised_listeners()
        if not configured:
            return [Endpoint(b.listener, "127.0.0.1" if b.host in ("0.0.0.0", "::") else b.host, b.port)
                    for b in bound]
        ports = {b.listener: b.port for b in bound}
        return [Endpoint(name, host, port or ports.get(name, port)) for name, host, port in configured]

    def request_stop(self, force: bool = False) -> None:
        if self._stop.is_set() or force:
            self._force.set()
        self._stop.set()

    async def wait_started(self) -> None:
        await self._started.wait()

    @property
    def ports(self) -> list[int]:
        return [s.sockets[0].getsockname()[1] for s in self._servers]

    async def _drain(self) -> None:
        log.info("shutting down: no new connections; draining %d connections", len(self._connections))
        # Parked JoinGroup/SyncGroup requests would otherwise hold the drain for a rebalance timeout.
        self.node.groups.resign()
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            conn.stop_reading()
        if self._connections:
            drained = asyncio.gather(*(c.closed for c in self._connections))
            forced = asyncio.ensure_future(self._force.wait())
            await asyncio.wait([drained, forced], timeout=DRAIN_TIMEOUT_S,
                               return_when=asyncio.FIRST_COMPLETED)
            forced.cancel()
            if not drained.done():
                log.warning("cutting %d connections that did not drain", len(self._connections))

    async def _close(self) -> None:
        if self._admin_http is not None:
            await self._admin_http.close()
        for conn in list(self._connections):
            conn.abort()
        for server in self._servers:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
        if self.node is not None:
            self.node.groups.close()
            await self.node.remote_reader.close()
            await self.node.tiering.close()
            self.node.metrics.close()
            await asyncio.to_thread(self.node.topics.close_all)
            log.info("logs closed cleanly; bye")

    # -- connections -------------------------------------------------------------

    def _new_connection(self, dispatcher: Dispatcher, max_request: int) -> Connection:
        conn = Connection(dispatcher, max_request, self._frame_pool, on_closed=self._connections.discard)
        if self._stop.is_set():
            conn.stop_reading()
        self._connections.add(conn)
        return conn

    # -- background loops ------------------------------------------------------

    async def _retention_loop(self) -> None:
        interval = self.config.get("log.retention.check.interval.ms") / 1000
        producer_expiry_ms = self.config.get("producer.id.expiration.ms")
        while True:
            await asyncio.sleep(interval)
            now_ms = int(time.time() * 1000)
            for partition in self.node.topics.all_partitions():
                try:
                    partition.log.producers.expire(now_ms, producer_expiry_ms)
                    if partition.topic.tiered:
                        continue  # retention across the tiers is the tiering manager's
                    deleted = partition.log.apply_retention(now_ms)
                except Exception:
                    log.exception("retention pass failed for %s", partition.name)
                    continue
                if deleted:
                    log.info("retention deleted %d segments of %s; log start offset is now %d",
                             len(deleted), partition.name, partition.log.log_start_offset)
                    partition.wake_waiters()


    async def _recovery_point_loop(self) -> None:
        """Every few seconds: roll active segments older than segment.ms even when idle
        (so their data reaches the remote tier), and fsync rolled segments in the
        background so recovery after a crash only rescans the active segment, even for
        topics produced with acks=1."""
        while True:
            await asyncio.sleep(RECOVERY_POINT_INTERVAL_S)
            now_ms = int(time.time() * 1000)
            for partition in self.node.topics.all_partitions():
                plog = partition.log
                try:
                    if plog.maybe_roll(now_ms):
                        self.node.tiering.wake()
                    active_base = plog.segments[-1].base_offset
                    if plog.recovery_point < active_base:
                        await plog.flush(active_base - 1)
                except Exception as exc:
                    log.error("background roll/flush of %s failed: %s", partition.name, exc)


class _Stopped(Exception):
    pass


def apply_socket_buffers(server: asyncio.Server, send_bytes: int, receive_bytes: int) -> None:
    """Set SO_SNDBUF / SO_RCVBUF on the listening sockets; Linux copies both onto
    every accepted connection, and the receive size set before the handshake is
    what the TCP window scale is negotiated from. -1 leaves the kernel's
    auto-tuned default (which an explicit size switches off)."""
    for sock in server.sockets:
        if send_bytes >= 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_bytes)
        if receive_bytes >= 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_bytes)


def install_signal_handlers(server: Server) -> None:
    """First SIGTERM/SIGINT drains; the second forces."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        forcing = server._stop.is_set()
        log.warning("received %s: %s", signal.Signals(signum).name,
                    "forcing shutdown" if forcing else "draining (send again to force)")
        server.request_stop(force=forcing)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)


async def serve(config: BrokerConfig) -> None:
    server = Server(config)
    install_signal_handlers(server)
    await server.run()
