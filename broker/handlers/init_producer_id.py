"""InitProducerId (key 22): a producer id and epoch for an idempotent producer.

A request carrying its current id and epoch (v3+, KIP-360) gets the same id with
the next epoch, which fences its older incarnation; when the epoch is exhausted
it gets a fresh id. Transactions are not supported: a transactional id is
refused with a message saying so.
"""

from __future__ import annotations

from ..protocol import errors

MAX_EPOCH = 32767


async def handle(ctx, req):
    if req.transactional_id is not None:
        raise errors.TransactionalIdAuthorizationFailed(
            "tierbroker does not support transactions; use an idempotent producer without transactional.id")
    if req.producer_id >= 0 and 0 <= req.producer_epoch < MAX_EPOCH - 1:
        return {"error_code": 0, "producer_id": req.producer_id, "producer_epoch": req.producer_epoch + 1}
    producer_id = await ctx.node.producer_ids.allocate()
    return {"error_code": 0, "producer_id": producer_id, "producer_epoch": 0}


def error_response(req, version, error):
    return {"error_code": error.code, "producer_id": -1, "producer_epoch": -1}
