"""Prometheus metrics of the cold-read path, registered in the broker's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ReadMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        registry = registry if registry is not None else CollectorRegistry()
        self.fetch_requests = Counter("tierbroker_remote_fetch_requests_total",
                                      "Partition reads served from the remote tier", ["topic"], registry=registry)
        self.fetch_bytes = Counter("tierbroker_remote_fetch_bytes_total",
                                   "Record bytes served from the remote tier", ["topic"], registry=registry)
        self.fetch_errors = Counter("tierbroker_remote_fetch_errors_total",
                                    "Remote reads that failed, by reason", ["reason"], registry=registry)
        self.fetch_latency = Histogram("tierbroker_remote_fetch_latency_seconds",
                                       "Time to serve one partition's remote read", registry=registry,
                                       buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.get_requests = Counter("tierbroker_remote_get_requests_total",
                                    "Ranged GETs of chunks, by topic", ["topic"], registry=registry)
        self.bytes_read = Counter("tierbroker_remote_get_bytes_total",
                                  "Stored bytes downloaded by ranged GETs, by topic", ["topic"], registry=registry)
        self.pool_bytes = Gauge("tierbroker_remote_pool_bytes_in_use",
                                "Bytes of the cold-read memory pool held by chunks and reads", registry=registry)
        self.pool_waits = Counter("tierbroker_remote_pool_waits_total",
                                  "Reservations that had to wait for pool space", registry=registry)
        self.pool_exhausted = Counter("tierbroker_remote_pool_exhausted_total",
                                      "Reservations that gave up at their deadline", registry=registry)
        self.prefetch_hits = Counter("tierbroker_remote_prefetch_hits_total",
                                     "Reads that found their chunk already hydrated by prefetch",
                                     registry=registry)
        self.prefetch_misses = Counter("tierbroker_remote_prefetch_misses_total",
                                       "Reads that had to hydrate their chunk on demand", registry=registry)
        self.prefetch_wasted = Counter("tierbroker_remote_prefetch_wasted_total",
                                       "Prefetched chunks evicted before anyone read them", registry=registry)
        self.corrupt_chunks = Counter("tierbroker_remote_corrupt_chunks_total",
                                      "Chunks that failed verification and were not served", ["topic"],
                                      registry=registry)
