"""AlterConfigs / IncrementalAlterConfigs on topic overrides."""

from __future__ import annotations

import pytest

from broker.config import AlterOp, BrokerConfig, ConfigChange, InvalidConfigError, apply_alter

SET, DELETE, APPEND, SUBTRACT = AlterOp.SET, AlterOp.DELETE, AlterOp.APPEND, AlterOp.SUBTRACT


def test_op_ids_are_kafkas():
    assert [(o.name, o.value) for o in AlterOp] == [("SET", 0), ("DELETE", 1), ("APPEND", 2), ("SUBTRACT", 3)]


def test_alter_configs_replaces_everything():
    current = {"retention.ms": "1000", "segment.bytes": "5000"}
    new = apply_alter(current, [ConfigChange("retention.bytes", "77"), ConfigChange("segment.ms", None)],
                      incremental=False)
    assert new == {"retention.bytes": "77"}
    assert current == {"retention.ms": "1000", "segment.bytes": "5000"}  # untouched


def test_alter_configs_accepts_only_set():
    with pytest.raises(InvalidConfigError, match="DELETE needs IncrementalAlterConfigs"):
        apply_alter({}, [("retention.ms", None, DELETE)], incremental=False)


def test_incremental_set_and_delete_touch_only_named_keys():
    current = {"retention.ms": "1000", "segment.bytes": "5000"}
    new = apply_alter(current, [("retention.ms", "2000", SET), ("segment.bytes", None, DELETE),
                                ("retention.bytes", " 10 ", 0), ("flush.ms", None, 1)], incremental=True)
    assert new == {"retention.ms": "2000", "retention.bytes": "10"}


def test_incremental_set_needs_a_value():
    with pytest.raises(InvalidConfigError, match="SET needs a value"):
        apply_alter({}, [("retention.ms", None, SET)], incremental=True)


def test_append_and_subtract_on_a_list():
    new = apply_alter({}, [("cleanup.policy", "delete", APPEND)], incremental=True)
    assert new == {"cleanup.policy": "delete"}  # already in the default: not added twice
    with pytest.raises(InvalidConfigError, match="cleanup.policy: .* must not be empty"):
        apply_alter(new, [("cleanup.policy", "delete", SUBTRACT)], incremental=True)
    with pytest.raises(InvalidConfigError, match="compact: log compaction is not implemented"):
        apply_alter({}, [("cleanup.policy", "compact", APPEND)], incremental=True)


@pytest.mark.parametrize("op", [APPEND, SUBTRACT])
def test_append_and_subtract_only_for_lists(op):
    with pytest.raises(InvalidConfigError, match=f"retention.ms: 5 is not valid: {op.name} applies only to list configs"):
        apply_alter({}, [("retention.ms", "5", op)], incremental=True)


def test_unknown_key_unknown_op_and_duplicates_are_refused():
    with pytest.raises(InvalidConfigError, match="bogus.key: 1 is not valid: unknown topic config"):
        apply_alter({}, [("bogus.key", "1", SET)], incremental=True)
    with pytest.raises(InvalidConfigError, match="unknown config operation 9"):
        apply_alter({}, [("retention.ms", "1", 9)], incremental=True)
    with pytest.raises(InvalidConfigError, match="named more than once"):
        apply_alter({}, [("retention.ms", "1", SET), ("retention.ms", None, DELETE)], incremental=True)


def test_result_is_validated():
    with pytest.raises(InvalidConfigError, match="segment.bytes: 1 is not valid: must be >= 14"):
        apply_alter({}, [("segment.bytes", "1", SET)], incremental=True)


def test_result_is_cross_checked_with_the_broker():
    broker = BrokerConfig()
    current = {"retention.ms": "10000", "local.retention.ms": "5000"}
    with pytest.raises(InvalidConfigError, match="local.retention.ms: 5000 .* more than retention.ms \\(1000\\)"):
        apply_alter(current, [("retention.ms", "1000", SET)], incremental=True, broker=broker)
    assert apply_alter(current, [("local.retention.ms", None, DELETE)], incremental=True,
                       broker=broker) == {"retention.ms": "10000"}
