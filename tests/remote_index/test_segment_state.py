"""The remote segment lifecycle: every (current, target) pair against the table."""

from __future__ import annotations

import itertools

import pytest

from remote_index.segment_state import IllegalStateTransition, RemoteSegmentState, is_valid_transition, transition

S = RemoteSegmentState
ALLOWED = {
    (S.COPY_STARTED, S.COPY_FINISHED),
    (S.COPY_STARTED, S.DELETE_STARTED),
    (S.COPY_FINISHED, S.DELETE_STARTED),
    (S.DELETE_STARTED, S.DELETE_FINISHED),
} | {(s, s) for s in S}


@pytest.mark.parametrize("current,target", list(itertools.product(S, S)), ids=lambda s: s.value)
def test_every_pair(current, target):
    if (current, target) in ALLOWED:
        assert is_valid_transition(current, target)
        assert transition(current, target, "seg-1") is target
    else:
        assert not is_valid_transition(current, target)
        with pytest.raises(IllegalStateTransition) as info:
            transition(current, target, "seg-1")
        assert (info.value.current, info.value.target, info.value.segment_id) == (current, target, "seg-1")
        assert "seg-1" in str(info.value) and current.value in str(info.value) and target.value in str(info.value)


def test_states_serialize_as_their_names():
    assert [s.value for s in S] == ["COPY_STARTED", "COPY_FINISHED", "DELETE_STARTED", "DELETE_FINISHED"]
    assert S("COPY_FINISHED") is S.COPY_FINISHED
