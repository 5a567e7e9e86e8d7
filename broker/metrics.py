"""Prometheus metrics for one broker: a private registry, never the global one,
so several brokers (tests) can live in one process."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

log = logging.getLogger("broker.metrics")


class BrokerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_latency = Histogram(
            "tierbroker_request_latency_seconds", "Time to handle a request, by Kafka API",
            ["api"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.bytes_in = Counter("tierbroker_bytes_in_total", "Record bytes appended, by topic",
                                ["topic"], registry=self.registry)
        self.bytes_out = Counter("tierbroker_bytes_out_total", "Record bytes served to fetches, by topic",
                                 ["topic"], registry=self.registry)
        self.produce_errors = Counter("tierbroker_produce_errors_total",
                                      "Partition produce requests answered with an error, by error name",
                                      ["error"], registry=self.registry)
        self._http = None

    def observe_request(self, api: str, seconds: float) -> None:
        self.request_latency.labels(api).observe(seconds)

    def serve_http(self, host: str, port: int) -> int:
        """Start the /metrics endpoint in a daemon thread; returns the bound port."""
        server, _thread = start_http_server(port, host, registry=self.registry)
        self._http = server
        bound = server.server_address[1]
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
