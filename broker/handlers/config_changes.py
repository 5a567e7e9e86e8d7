"""What AlterConfigs and IncrementalAlterConfigs share: apply changes to one resource."""

from __future__ import annotations

from ..config import InvalidConfigError, TopicConfig, apply_alter
from ..tier_admin import TierAdminError
from ..protocol import errors
from .common import error_fields
from .describe_configs import BROKER, TOPIC


async def apply_resource_changes(node, resource_type, resource_name, changes, incremental, validate_only) -> dict:
    out = {"resource_type": resource_type, "resource_name": resource_name,
           "error_code": 0, "error_message": None}
    try:
        if resource_type == BROKER:
            raise errors.InvalidRequest(
                "broker configs are static in tierbroker: set them in server.properties or with "
                "--override and restart the broker")
        if resource_type != TOPIC:
            raise errors.InvalidRequest(f"resource type {resource_type} has no alterable configs")
        topic = node.topics.require(resource_name)
        try:
            overrides = apply_alter(topic.overrides, changes, incremental, node.config)
        except InvalidConfigError as exc:
            raise errors.InvalidConfig(str(exc)) from None
        new_config = TopicConfig(node.config, overrides)
        if topic.tiered and not new_config.get("remote.storage.enable") and not validate_only:
            # Turning tiering off rolls the topic back to local-only (KIP-950 would refuse
            # or drop the remote data; we restore it). The rollback persists the overrides.
            try:
                await node.tier_admin.rollback(
                    resource_name, delete_remote=new_config.get("remote.log.delete.on.disable"),
                    rate_bytes_per_s=None, overrides=overrides)
            except TierAdminError as exc:
                raise errors.PolicyViolation(str(exc)) from None
        else:
            await node.topics.set_overrides(resource_name, overrides, validate_only)
    except errors.KafkaError as exc:
        out.update(error_fields(exc))
    return out


def resource_error(res, error) -> dict:
    return {"resource_type": res.resource_type, "resource_name": res.resource_name, **error_fields(error)}
