"""A kafka-python group member that learns its topic's partitions before it joins.

kafka-python 3.0.x can strand a member: if its first JoinGroup goes out before
the topic's metadata arrives, the leader assigns nothing and rejoins once the
metadata lands; performing that second assignment already makes `need_rejoin()`
false, so when a `poll(timeout_ms=...)` gives up while the rejoin is still in
flight (a loaded machine), no later poll collects the SyncGroup answer: the
assignment is never applied and heartbeats stay off until the broker expires the
member. The broker answered correctly; the client dropped the answer. Fetching
the topic's partitions first makes the first assignment complete, so there is no
second join to lose.
"""

from __future__ import annotations

import time


def kafka_python_member(bootstrap: str, topic: str, timeout_s: float = 60.0, **config):
    """A subscribed `kafka.KafkaConsumer` (with `config`) whose metadata already
    lists every partition of `topic`."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **config)
    deadline = time.monotonic() + timeout_s
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            consumer.close()
            raise TimeoutError(f"kafka-python never saw partitions for {topic!r}")
        time.sleep(0.1)
    consumer.subscribe([topic])
    return consumer
