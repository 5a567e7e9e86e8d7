"""`tierbroker groups ...`: inspect consumer groups of a running broker.

    tierbroker groups list [--state STATE ...] [--bootstrap-server HOST:PORT] [--json]
    tierbroker groups describe GROUP [--bootstrap-server HOST:PORT] [--json]

`describe` shows the members (id, client id, host, assigned partitions, read
from the consumer protocol assignment) and, per partition, the committed
offset, the log end offset and the lag (log end - committed), like Kafka's
kafka-consumer-groups.sh. It talks the Kafka protocol (broker.admin_client),
so it works against any Kafka-compatible broker.

Exit status: 0 on success, 1 when the broker cannot be reached, answers an
error, or the group does not exist.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .admin_client import AdminClient, AdminClientError
from .groups.consumer_protocol import PROTOCOL_TYPE, parse_assignment
from .cli_support import add_common_options, dash, table
from .protocol import errors
from .protocol.primitives import DecodeError

def add_subcommand(commands) -> None:
    groups = commands.add_parser("groups", help="list and describe consumer groups of a running broker")
    actions = groups.add_subparsers(dest="groups_command", required=True)

    common = add_common_options

    listing = actions.add_parser("list", help="list the groups")
    listing.add_argument("--state", action="append", default=[],
                         help="only groups in this state (repeatable), e.g. Stable, Empty")
    common(listing)
    describe = actions.add_parser("describe", help="members, committed offsets and lag of a group")
    describe.add_argument("group")
    common(describe)


def main(args) -> int:
    try:
        with AdminClient(args.bootstrap_server) as client:
            if args.groups_command == "list":
                return _list(client, args)
            return _describe(client, args)
    except (AdminClientError, errors.KafkaError) as exc:
        print(f"tierbroker groups: {exc}", file=sys.stderr)
        return 1


# -- list ------------------------------------------------------------------------------


def _list(client: AdminClient, args) -> int:
    groups = client.list_groups(args.state or None)
    rows = [{"group": g.group_id, "protocol_type": g.protocol_type, "state": g.group_state} for g in groups]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(table(["GROUP", "PROTOCOL-TYPE", "STATE"],
                     [[r["group"], r["protocol_type"] or "-", r["state"] or "-"] for r in rows]))
    return 0


# -- describe ------------------------------------------------------------------------


def describe_group(client: AdminClient, group_id: str) -> dict[str, Any] | None:
    """Everything `describe` prints, as a dict; None if the group does not exist."""
    group = client.describe_group(group_id)
    committed = client.committed_offsets(group_id)
    if group.group_state == "Dead" and not committed:
        return None
    members = []
    owner: dict[tuple[str, int], dict] = {}
    for m in group.members:
        assignment = _assignment(group.protocol_type, bytes(m.member_assignment))
        member = {"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                  "client_id": m.client_id, "host": m.client_host, "assignment": assignment}
        members.append(member)
        for topic, partitions in (assignment or {}).items():
            for p in partitions:
                owner[(topic, p)] = member
    tps = sorted(set(committed) | set(owner))
    ends = client.log_end_offsets(tps)
    partitions = []
    for tp in tps:
        current, end = committed.get(tp), ends.get(tp)
        member = owner.get(tp)
        partitions.append({
            "topic": tp[0], "partition": tp[1], "committed_offset": current, "log_end_offset": end,
            "lag": end - current if current is not None and end is not None else None,
            "member_id": member["member_id"] if member else None,
            "host": member["host"] if member else None,
            "client_id": member["client_id"] if member else None,
        })
    return {"group": group_id, "state": group.group_state, "protocol_type": group.protocol_type,
            "protocol": group.protocol_data, "members": members, "partitions": partitions}


def _assignment(protocol_type: str, data: bytes) -> dict[str, list[int]] | None:
    """The member's partitions; None when the group is not a consumer group or
    the assignment is not readable (it is opaque to the broker)."""
    if protocol_type != PROTOCOL_TYPE or not data:
        return {} if protocol_type == PROTOCOL_TYPE else None
    try:
        return {t: sorted(ps) for t, ps in sorted(parse_assignment(data).partitions.items())}
    except DecodeError:
        return None


def _describe(client: AdminClient, args) -> int:
    described = describe_group(client, args.group)
    if described is None:
        print(f"tierbroker groups: consumer group {args.group!r} does not exist", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    d = described
    print(f"GROUP {d['group']}  STATE {d['state']}  PROTOCOL {d['protocol'] or '-'} "
          f"({d['protocol_type'] or '-'})  MEMBERS {len(d['members'])}")
    print()
    if d["members"]:
        print(table(["MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"], [
            [m["member_id"], m["group_instance_id"] or "-", m["client_id"], m["host"],
             _format_assignment(m["assignment"])] for m in d["members"]]))
        print()
    if d["partitions"]:
        print(table(["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST",
                      "CLIENT-ID"], [
            [p["topic"], p["partition"], dash(p["committed_offset"]), dash(p["log_end_offset"]),
             dash(p["lag"]), dash(p["member_id"]), dash(p["host"]), dash(p["client_id"])]
            for p in d["partitions"]]))
    else:
        print("no committed offsets and no assigned partitions")
    return 0


def _format_assignment(assignment: dict[str, list[int]] | None) -> str:
    if assignment is None:
        return "?"
    if not assignment:
        return "-"
    return " ".join(f"{topic}:{','.join(map(str, partitions))}" for topic, partitions in assignment.items())
