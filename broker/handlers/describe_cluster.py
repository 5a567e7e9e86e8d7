"""DescribeCluster (key 60): the cluster id and its one broker."""

from __future__ import annotations

from .common import error_fields


async def handle(ctx, req):
    node = ctx.node
    ep = node.endpoint
    return {
        "error_code": 0,
        "endpoint_type": 1,  # brokers
        "cluster_id": node.cluster_id,
        "controller_id": node.node_id,
        "brokers": [{"broker_id": node.node_id, "host": ep.host, "port": ep.port, "rack": node.rack}],
    }


def error_response(req, version, error):
    return error_fields(error)
