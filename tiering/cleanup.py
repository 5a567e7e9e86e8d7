"""Garbage collection of what failed or interrupted uploads and deletes left behind.

Run for a partition only while none of its uploads is in flight (at the start
of its first pass after startup, and after a failed attempt). Then:
- a manifest entry still COPY_STARTED belongs to an attempt that will never
  finish: it moves to DELETE_STARTED, its objects are deleted, it moves to
  DELETE_FINISHED (and so leaves the manifest);
- an entry in DELETE_STARTED (a retention pass or an abandoned attempt that
  died half way) gets its objects deleted and moves to DELETE_FINISHED;
- an object under the partition's segments prefix that no manifest entry
  names is an orphan (the manifest write of its attempt never happened) and is
  deleted;
- unfinished multipart uploads under that prefix are aborted.
Every step is idempotent, so a crash during garbage collection is repaired by
the next run.
"""

from __future__ import annotations

import logging
import time

from remote_index.manifest import ManifestStore
from remote_index.segment_state import RemoteSegmentState as State
from remote_index.store import ObjectStore

from .uploader import CONFLICT_RETRIES

log = logging.getLogger("tiering.cleanup")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def collect_garbage(store: ObjectStore, manifests: ManifestStore) -> int:
    """Clean one partition; returns how many objects and uploads were removed."""
    keys = manifests.keys
    manifest = manifests.cached or await manifests.load()
    removed = 0
    for segment in manifest.segments:
        sid = segment.segment_id
        if segment.state is State.COPY_STARTED:
            await manifests.commit(lambda m, sid=sid: m.with_state(sid, State.DELETE_STARTED, _now_ms()),
                                   conflict_retries=CONFLICT_RETRIES)
        if segment.state in (State.COPY_STARTED, State.DELETE_STARTED):
            await store.delete_many(list(segment.object_keys))
            await manifests.commit(lambda m, sid=sid: m.with_state(sid, State.DELETE_FINISHED, _now_ms()),
                                   conflict_retries=CONFLICT_RETRIES)
            removed += 1
            log.info("%s: removed abandoned segment %s (offsets %d-%d)", keys, segment.segment_id,
                     segment.base_offset, segment.last_offset)
    named = {key for s in manifests.cached.segments if s.state is State.COPY_FINISHED for key in s.object_keys}
    orphans = [info.key for info in await store.list(keys.segments_prefix) if info.key not in named]
    if orphans:
        await store.delete_many(orphans)
        removed += len(orphans)
        log.info("%s: deleted %d orphaned objects of failed uploads", keys, len(orphans))
    for upload in await store.list_multipart_uploads(keys.segments_prefix):
        await store.abort_multipart(upload)
        removed += 1
        log.info("%s: aborted unfinished multipart upload of %s", keys, upload.key)
    return removed
