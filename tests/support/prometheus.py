"""Reading a broker's Prometheus endpoint in tests."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Metrics:
    """One scrape: sample values by name and labels."""

    def __init__(self, text: str):
        self.samples: dict[tuple[str, tuple], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def get(self, name: str, **labels) -> float:
        """The sample's value (0 when absent: a labelled counter appears on first use)."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str) -> float:
        """The sum over every label set of `name`."""
        return sum(v for (n, _), v in self.samples.items() if n == name)


def scrape(port: int, timeout: float = 10) -> Metrics:
    """GET http://127.0.0.1:<port>/metrics and parse it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as reply:
        return Metrics(reply.read().decode())
