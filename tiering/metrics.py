"""Prometheus metrics of the write side, registered in the broker's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class TieringMetrics:
    def __init__(self, registry: CollectorRegistry):
        def counter(name, doc, labels=("topic",)):
            return Counter(f"tierbroker_remote_{name}", doc, list(labels), registry=registry)

        def gauge(name, doc, labels=("topic", "partition")):
            return Gauge(f"tierbroker_remote_{name}", doc, list(labels), registry=registry)

        self.bytes_uploaded = counter("upload_bytes_total", "Segment bytes (before chunk compression) uploaded")
        self.segments_uploaded = counter("upload_segments_total", "Segments whose upload committed")
        self.upload_errors = counter("upload_errors_total", "Upload attempts that failed and were abandoned")
        self.retries = Counter("tierbroker_remote_store_retries_total",
                               "Object-store calls retried after a transient failure", ["operation"],
                               registry=registry)
        self.copy_lag_bytes = gauge("copy_lag_bytes", "Bytes of closed local segments not yet uploaded")
        self.copy_lag_segments = gauge("copy_lag_segments", "Closed local segments not yet uploaded")
        self.remote_log_bytes = gauge("log_size_bytes", "Bytes of the partition held in the remote tier")
        self.remote_deletes = counter("deleted_segments_total", "Remote segments deleted by retention")
        self.local_deletes = counter("local_deleted_segments_total",
                                     "Uploaded local segments deleted by local retention")
        self.orphans_deleted = counter("orphans_deleted_total",
                                       "Objects of abandoned uploads garbage-collected", labels=())
        self.throttle_seconds = Counter("tierbroker_remote_upload_throttle_seconds_total",
                                        "Time uploads waited on the bytes-per-second limit", [],
                                        registry=registry)
        self.rollback_restored_bytes = Gauge("tierbroker_rollback_restored_bytes",
                                             "Bytes restored from the remote tier by a topic's rollback",
                                             ["topic"], registry=registry)
        self.rollback_total_bytes = Gauge("tierbroker_rollback_total_bytes",
                                          "Bytes a topic's rollback restores in all", ["topic"], registry=registry)
        self.store_unavailable = Gauge("tierbroker_remote_store_unavailable",
                                       "1 while uploads are failing against the object store, else 0",
                                       registry=registry)
