"""The broker's HTTP admin endpoint: JSON for the `tierbroker tier` commands.

    GET  /v1/tier/status[?topic=T]   -> 200 {"partitions": [PartitionTierStatus, ...]}
    POST /v1/tier/rollback           {"topic": T | "all": true, "delete_remote": bool,
                                      "rate_bytes_per_s": int | null}
                                     -> 202 {"rollbacks": [RollbackProgress, ...]}
    GET  /v1/tier/rollback?topic=T   -> 200 RollbackProgress
    POST /v1/tier/recover            {"from": "s3://bucket/prefix", "topic": T | null}
                                     -> 200 {"topics": [names rebuilt]}

Every error is JSON too, `{"error": message}`: 400 for a malformed request, 404
for the status of an unknown topic or a rollback that never ran, 409 when the
tier engine refuses (TierAdminError: no such topic, not tiered, no disk room,
another bucket, ...), 500 for a bug (logged with its traceback).

It binds only `admin.http.host`:`admin.http.port` (the CLI finds them with
DescribeConfigs on the broker resource) and has no authentication, like the
metrics endpoint beside it: keep it on loopback or a private network.

Runs on the server's event loop (aiohttp), so handlers call the broker's
TierAdmin directly; the server starts it after the Kafka listeners and closes it
first on shutdown.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from .protocol import errors
from .tier_admin import TierAdmin, TierAdminError

log = logging.getLogger("broker.admin_http")

MAX_BODY_BYTES = 64 << 10
# A request still running at shutdown (a recover) gets this long before it is cancelled.
SHUTDOWN_TIMEOUT_S = 5.0


class AdminHttpServer:
    """Not thread-safe: owned by the server's event loop."""

    def __init__(self, tier_admin: TierAdmin, host: str, port: int):
        self.tier_admin = tier_admin
        self.host = host
        self.requested_port = port
        self.port: int | None = None  # the bound port once started
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = self.host or "0.0.0.0"
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_json_errors])
        app.router.add_get("/v1/tier/status", self._status)
        app.router.add_post("/v1/tier/rollback", self._start_rollback)
        app.router.add_get("/v1/tier/rollback", self._rollback_progress)
        app.router.add_post("/v1/tier/recover", self._recover)
        # The CLI polls rollback progress several times a second: no access log.
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, self.host or None, self.requested_port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # -- handlers ------------------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        topic = request.query.get("topic") or None
        try:
            partitions = self.tier_admin.status(topic)
        except TierAdminError as exc:
            raise _ErrorReply(404 if topic is not None else 409, str(exc)) from None
        if topic is not None and not partitions:
            raise _ErrorReply(404, f"topic {topic!r} does not exist")
        return _json(200, {"partitions": [p.to_json() for p in partitions]})

    async def _start_rollback(self, request: web.Request) -> web.Response:
        body = await _body(request)
        everything = _field(body, "all", bool, False)
        topic = _field(body, "topic", str, None)
        if everything == (topic is not None):
            raise _ErrorReply(400, 'give either "topic" or "all": true')
        delete_remote = _field(body, "delete_remote", bool, False)
        rate = _field(body, "rate_bytes_per_s", int, None)
        if rate is not None and rate <= 0:
            raise _ErrorReply(400, f"rate_bytes_per_s must be positive, got {rate}")
        try:
            if everything:
                started = await self.tier_admin.rollback_all(delete_remote=delete_remote, rate_bytes_per_s=rate)
            else:
                started = [await self.tier_admin.rollback(topic, delete_remote=delete_remote,
                                                          rate_bytes_per_s=rate)]
        except TierAdminError as exc:
            raise _ErrorReply(409, str(exc)) from None
        log.info("rollback of %s started (remote copy %s%s)", "every tiered topic" if everything else topic,
                 "deleted after" if delete_remote else "kept",
                 f", at most {rate} bytes/s" if rate else "")
        return _json(202, {"rollbacks": [p.to_json() for p in started]})

    async def _rollback_progress(self, request: web.Request) -> web.Response:
        topic = request.query.get("topic")
        if not topic:
            raise _ErrorReply(400, "give the topic: /v1/tier/rollback?topic=NAME")
        progress = self.tier_admin.rollback_progress(topic)
        if progress is None:
            raise _ErrorReply(404, f"no rollback of topic {topic!r} has run on this broker")
        return _json(200, progress.to_json())

    async def _recover(self, request: web.Request) -> web.Response:
        body = await _body(request)
        from_url = _field(body, "from", str, None)
        if not from_url:
            raise _ErrorReply(400, 'give "from": the bucket URL to recover from, e.g. s3://bucket/prefix')
        topic = _field(body, "topic", str, None)
        try:
            topics = await self.tier_admin.recover(from_url, topic)
        except TierAdminError as exc:
            raise _ErrorReply(409, str(exc)) from None
        log.info("recovered %d topics from %s: %s", len(topics), from_url, ", ".join(topics) or "none")
        return _json(200, {"topics": topics})


class _ErrorReply(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@web.middleware
async def _json_errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except _ErrorReply as exc:
        return _json(exc.status, {"error": str(exc)})
    except errors.UnknownTopicOrPartition as exc:
        return _json(404, {"error": str(exc)})
    except errors.KafkaError as exc:
        return _json(400, {"error": str(exc)})
    except web.HTTPException as exc:  # no such route, wrong method, body too large
        return _json(exc.status, {"error": f"{exc.reason}: {request.method} {request.path}"})
    except Exception as exc:
        log.exception("admin request %s %s failed", request.method, request.path_qs)
        return _json(500, {"error": f"internal error: {exc}"})


async def _body(request: web.Request) -> dict:
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _ErrorReply(400, f"the request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _ErrorReply(400, "the request body must be a JSON object")
    return body


def _field(body: dict, name: str, type_: type, default: Any) -> Any:
    value = body.get(name)
    if value is None:
        return default
    # bool is an int in Python; JSON's true is not a rate.
    if not isinstance(value, type_) or (type_ is int and isinstance(value, bool)):
        raise _ErrorReply(400, f'"{name}" must be {type_.__name__}, got {json.dumps(value)}')
    return value


def _json(status: int, payload: Any) -> web.Response:
    return web.json_response(payload, status=status)
