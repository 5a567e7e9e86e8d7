"""`tierbroker tier ...`: the tiered storage of a running broker.

    tierbroker tier status [TOPIC]
    tierbroker tier rollback (TOPIC | --all) [--delete-remote | --keep-remote] [--rate BYTES_PER_S]
                             [--no-wait]
    tierbroker tier recover --from s3://bucket/prefix [--topic TOPIC]

each with [--bootstrap-server HOST:PORT] [--admin-url URL] [--json].

`status` shows per partition the offsets and bytes in each tier, the upload
lag, the last upload and the last error. `rollback` brings a topic's remote
segments back to local disk and turns tiering off for it; the broker refuses
up front when the disk lacks room. It runs in the broker: the command starts
it, then follows it (a progress bar on a terminal, a line per step otherwise)
until it is done; `--no-wait` returns at once, and interrupting the command
does not stop the rollback. The remote copy is kept unless `--delete-remote`.
`recover` rebuilds topics from what a bucket holds (after the local disks were
lost).

These commands use the broker's HTTP admin endpoint. The CLI finds it from
`--bootstrap-server` by asking the broker, over the Kafka protocol,
DescribeConfigs on its broker resource for `admin.http.host` and
`admin.http.port` (a wildcard host means "the bootstrap host"); `--admin-url`
skips that.

Exit status: 0 on success, 1 when the broker cannot be reached, refuses (its
message is printed) or a rollback fails, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .admin_client import AdminClient, AdminClientError
from .cli_support import add_common_options, dash, table
from .protocol import errors

BROKER_RESOURCE = 4
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")
FINAL_STATES = ("done", "failed")
REQUEST_TIMEOUT_S = 30.0
RECOVER_TIMEOUT_S = 3600.0
BAR_WIDTH = 30
ERROR_COLUMN_WIDTH = 48


class TierCommandError(Exception):
    """What to print before exiting with status 1."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of bytes per second, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_subcommand(commands) -> None:
    tier = commands.add_parser("tier", help="tiered storage of a running broker: status, rollback, recover")
    actions = tier.add_subparsers(dest="tier_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        add_common_options(p)
        p.add_argument("--admin-url", metavar="URL",
                       help="the broker's admin endpoint, e.g. http://127.0.0.1:9465 (default: ask the broker)")

    status = actions.add_parser("status", help="per partition: offsets and bytes in each tier, upload lag, errors")
    status.add_argument("topic", nargs="?", help="only this topic (default: every topic)")
    common(status)

    rollback = actions.add_parser("rollback", help="bring a topic's remote segments back to local disk "
                                                   "and stop tiering it")
    rollback.add_argument("topic", nargs="?")
    rollback.add_argument("--all", action="store_true", help="every tiered topic")
    remote = rollback.add_mutually_exclusive_group()
    remote.add_argument("--delete-remote", dest="delete_remote", action="store_true", default=False,
                        help="delete the bucket's copy once everything is restored")
    remote.add_argument("--keep-remote", dest="delete_remote", action="store_false",
                        help="keep the bucket's copy (the default)")
    rollback.add_argument("--rate", type=_positive_int, metavar="BYTES_PER_S",
                          help="restore at most this many bytes per second (default: the broker's "
                               "remote.log.manager.fetch.max.bytes.per.second)")
    rollback.add_argument("--no-wait", action="store_true", help="return once the rollback has started")
    rollback.add_argument("--poll-interval", type=float, default=None, help=argparse.SUPPRESS)
    common(rollback)

    recover = actions.add_parser("recover", help="rebuild topics from the objects in a bucket")
    recover.add_argument("--from", dest="from_url", required=True, metavar="URL",
                         help="where the remote tier is, e.g. s3://bucket/prefix")
    recover.add_argument("--topic", help="only this topic (default: every topic found)")
    common(recover)


def main(args) -> int:
    if args.tier_command == "rollback" and args.all == (args.topic is not None):
        print("tierbroker tier rollback: give a TOPIC or --all", file=sys.stderr)
        return 2
    try:
        endpoint = AdminEndpoint(args.admin_url or find_admin_url(args.bootstrap_server))
        return {"status": _status, "rollback": _rollback, "recover": _recover}[args.tier_command](endpoint, args)
    except (TierCommandError, AdminClientError, errors.KafkaError) as exc:
        print(f"tierbroker tier: {exc}", file=sys.stderr)
        return 1


# -- finding and calling the admin endpoint ----------------------------------------------


def find_admin_url(bootstrap: str) -> str:
    """The admin endpoint's URL, from the broker's own `admin.http.*` settings."""
    with AdminClient(bootstrap) as client:
        meta = client.request("Metadata", {"topics": [], "allow_auto_topic_creation": False})
        host, _, port = bootstrap.rpartition(":")
        host = host.strip("[]")
        ids = [b.node_id for b in meta.brokers if (b.host, b.port) == (host, int(port))]
        if not ids and len(meta.brokers) == 1:
            ids = [meta.brokers[0].node_id]
        body = {"resources": [{"resource_type": BROKER_RESOURCE, "resource_name": str(ids[0]) if ids else "",
                               "configuration_keys": ["admin.http.host", "admin.http.port"]}],
                "include_synonyms": False, "include_documentation": False}
        (result,) = client.request("DescribeConfigs", body).results
    if result.error_code:
        cls = errors.BY_CODE.get(result.error_code, errors.UnknownServerError)
        raise cls(f"DescribeConfigs for broker {result.resource_name!r}: {result.error_message or cls.name}")
    settings = {c.name: c.value for c in result.configs}
    if "admin.http.port" not in settings:
        raise TierCommandError(f"the broker at {bootstrap} has no admin endpoint (no admin.http.port config): "
                               f"is it a tierbroker?")
    admin_port = int(settings["admin.http.port"])
    if admin_port < 0:
        raise TierCommandError(f"the broker at {bootstrap} has its admin endpoint turned off "
                               f"(admin.http.port=-1); restart it with admin.http.port set")
    if admin_port == 0:
        raise TierCommandError(f"the broker at {bootstrap} runs its admin endpoint on a free port "
                               f"(admin.http.port=0; its log says which): pass --admin-url")
    admin_host = settings.get("admin.http.host") or ""
    if admin_host in WILDCARD_HOSTS:
        admin_host = host
    if ":" in admin_host:
        admin_host = f"[{admin_host}]"
    return f"http://{admin_host}:{admin_port}"


class AdminEndpoint:
    """JSON over HTTP to the broker's admin endpoint (broker/admin_http.py)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def get(self, path: str, query: dict[str, str] | None = None, timeout: float = REQUEST_TIMEOUT_S) -> Any:
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        return self._call(urllib.request.Request(self.url + target, method="GET"), timeout)

    def post(self, path: str, body: dict, timeout: float = REQUEST_TIMEOUT_S) -> Any:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        return self._call(request, timeout)

    def _call(self, request: urllib.request.Request, timeout: float) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise TierCommandError(_error_text(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TierCommandError(f"cannot reach the admin endpoint at {self.url}: {reason}") from None
        except ValueError as exc:
            raise TierCommandError(f"the admin endpoint at {self.url} answered something that is not JSON: "
                                   f"{exc}") from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    """The broker's own message ({"error": ...}) when it sent one."""
    try:
        return str(json.loads(exc.read())["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return f"the admin endpoint answered HTTP {exc.code} {exc.reason}"


# -- status ----------------------------------------------------------------------------


def _status(endpoint: AdminEndpoint, args) -> int:
    partitions = endpoint.get("/v1/tier/status", {"topic": args.topic} if args.topic else None)["partitions"]
    if args.json:
        print(json.dumps(partitions, indent=2))
        return 0
    if not partitions:
        print("no topics")
        return 0
    now_ms = time.time() * 1000
    long_errors = []
    rows = []
    show_rollback = any(p.get("rollback") for p in partitions)
    for p in partitions:
        name = f"{p['topic']}-{p['partition']}"
        error = p.get("last_error")
        if error and len(error) > ERROR_COLUMN_WIDTH:
            long_errors.append((name, error))
            error = error[:ERROR_COLUMN_WIDTH - 3] + "..."
        row = [p["topic"], p["partition"], "yes" if p["tiered"] else "no",
               _range(p["local_start"], p["local_end"]), _range(p.get("remote_start"), p.get("remote_end")),
               human_bytes(p["local_bytes"]), human_bytes(p["remote_bytes"]) if p["tiered"] or p["remote_bytes"]
               else "-",
               _lag(p) if p["tiered"] else "-", _ago(p.get("last_upload_ms"), now_ms), error or "-"]
        if show_rollback:
            row.append(dash(p.get("rollback")))
        rows.append(row)
    header = ["TOPIC", "PARTITION", "TIERED", "LOCAL-OFFSETS", "REMOTE-OFFSETS", "LOCAL-BYTES", "REMOTE-BYTES",
              "UPLOAD-LAG", "LAST-UPLOAD", "LAST-ERROR"]
    print(table(header + (["ROLLBACK"] if show_rollback else []), rows))
    if long_errors:
        print()
        for name, error in long_errors:
            print(f"{name}: {error}")
    return 0


def _range(start: int | None, end: int | None) -> str:
    """Offsets `start` (first held) to `end` (next to be written there), as Kafka counts them."""
    if start is None or end is None:
        return "-"
    return "empty" if end <= start else f"{start}..{end - 1}"


def _lag(p: dict) -> str:
    if not p["upload_lag_segments"] and not p["upload_lag_bytes"]:
        return "0"
    segments = p["upload_lag_segments"]
    return f"{segments} segment{'s' if segments != 1 else ''} ({human_bytes(p['upload_lag_bytes'])})"


def _ago(ms: int | None, now_ms: float) -> str:
    if ms is None:
        return "never"
    seconds = max(0.0, (now_ms - ms) / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# -- rollback ----------------------------------------------------------------------------


def _rollback(endpoint: AdminEndpoint, args) -> int:
    body = {"delete_remote": args.delete_remote, "rate_bytes_per_s": args.rate}
    body.update({"all": True} if args.all else {"topic": args.topic})
    started = endpoint.post("/v1/tier/rollback", body)["rollbacks"]
    if not started:
        print(json.dumps([]) if args.json else "no tiered topics to roll back")
        return 0
    if args.no_wait:
        if args.json:
            print(json.dumps(started, indent=2))
        else:
            for p in started:
                print(f"rollback of {p['topic']} started: {p['total_segments']} segments, "
                      f"{human_bytes(p['total_bytes'])} to restore; `tierbroker tier status {p['topic']}` "
                      f"follows it")
        return 0
    interactive = sys.stdout.isatty() and not args.json
    display = None if args.json else (_ProgressBars if interactive else _ProgressLines)(sys.stdout)
    interval = args.poll_interval or (0.2 if interactive else 0.5)
    latest = {p["topic"]: p for p in started}
    try:
        while True:
            if display is not None:
                display.show(list(latest.values()))
            if all(p["state"] in FINAL_STATES for p in latest.values()):
                break
            time.sleep(interval)
            for topic, p in latest.items():
                if p["state"] not in FINAL_STATES:
                    latest[topic] = endpoint.get("/v1/tier/rollback", {"topic": topic})
    except KeyboardInterrupt:
        if display is not None:
            display.finish()
        print("stopped following; the rollback goes on in the broker (`tierbroker tier status` shows it)",
              file=sys.stderr)
        return 130
    if display is not None:
        display.finish()
    final = list(latest.values())
    if args.json:
        print(json.dumps(final, indent=2))
    for p in final:
        if p["state"] == "failed":
            print(f"tierbroker tier: rollback of {p['topic']} failed: {p.get('error')}", file=sys.stderr)
    return 1 if any(p["state"] == "failed" for p in final) else 0


def _fraction(p: dict) -> float:
    if p["state"] in ("done", "deleting-remote", "finishing"):
        return 1.0
    if p["total_bytes"] > 0:
        return min(1.0, p["restored_bytes"] / p["total_bytes"])
    if p["total_segments"] > 0:
        return min(1.0, p["restored_segments"] / p["total_segments"])
    return 0.0


def _summary(p: dict) -> str:
    if p["state"] == "done":
        remote = "the remote copy was deleted" if p["delete_remote"] else "the remote copy is kept"
        return (f"done: {p['restored_segments']} segments, {human_bytes(p['restored_bytes'])} restored; "
                f"{remote}")
    if p["state"] == "failed":
        return f"failed: {p.get('error')}"
    return (f"{p['state']}: {p['restored_segments']}/{p['total_segments']} segments, "
            f"{human_bytes(p['restored_bytes'])} of {human_bytes(p['total_bytes'])} ({_fraction(p):.0%})")


class _ProgressLines:
    """For logs and pipes: one line whenever a rollback moves on (a segment, a state)."""

    def __init__(self, out):
        self.out = out
        self.last: dict[str, tuple] = {}

    def show(self, progresses: list[dict]) -> None:
        for p in progresses:
            step = (p["state"], p["restored_segments"], p["total_segments"])
            if self.last.get(p["topic"]) != step:
                self.last[p["topic"]] = step
                print(f"rollback of {p['topic']}: {_summary(p)}", file=self.out, flush=True)

    def finish(self) -> None:
        pass


class _ProgressBars:
    """For a terminal: one bar per topic, redrawn in place, with the restore rate and time left."""

    def __init__(self, out):
        self.out = out
        self.drawn = 0
        self.first_seen: dict[str, tuple[float, int]] = {}  # topic -> (time, restored bytes)

    def show(self, progresses: list[dict]) -> None:
        now = time.monotonic()
        width = max(len(p["topic"]) for p in progresses)
        lines = [self._line(p, width, now) for p in progresses]
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")  # back to the first bar
        self.out.write("".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self.drawn = len(lines)

    def _line(self, p: dict, width: int, now: float) -> str:
        since, bytes_then = self.first_seen.setdefault(p["topic"], (now, p["restored_bytes"]))
        fraction = _fraction(p)
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        head = f"{p['topic']:<{width}} [{bar}] {fraction:4.0%}"
        if p["state"] in FINAL_STATES:
            return f"{head}  {_summary(p)}"
        text = (f"{head}  {human_bytes(p['restored_bytes'])}/{human_bytes(p['total_bytes'])}  "
                f"{p['restored_segments']}/{p['total_segments']} segments  {p['state']}")
        elapsed, moved = now - since, p["restored_bytes"] - bytes_then
        if elapsed > 1 and moved > 0:
            rate = moved / elapsed
            left = max(0, p["total_bytes"] - p["restored_bytes"]) / rate
            text += f"  {human_bytes(rate)}/s  {left:.0f}s left"
        return text

    def finish(self) -> None:
        self.out.flush()


# -- recover -----------------------------------------------------------------------------


def _recover(endpoint: AdminEndpoint, args) -> int:
    body = {"from": args.from_url, "topic": args.topic}
    topics = endpoint.post("/v1/tier/recover", body, timeout=RECOVER_TIMEOUT_S)["topics"]
    if args.json:
        print(json.dumps({"from": args.from_url, "topics": topics}, indent=2))
    elif topics:
        print(f"recovered {len(topics)} topic{'s' if len(topics) != 1 else ''} from {args.from_url}: "
              f"{', '.join(topics)}")
    else:
        print(f"found nothing to recover in {args.from_url}"
              + (f" for topic {args.topic}" if args.topic else ""))
    return 0
