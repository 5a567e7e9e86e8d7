"""Read-ahead through a real broker: a sequential cold reader's Fetches set off
the GETs of the chunks after the ones they read (once each answer is sent), so
its later Fetches are served from chunks already in memory, each chunk
downloaded once and none in vain, and every record exact.
"""

from __future__ import annotations

PARTITIONS = 1


def test_a_sequential_cold_reader_is_served_from_read_ahead(moto_server, start_cold_broker, cold):
    broker = start_cold_broker(moto=moto_server)
    topic = "read-ahead"
    topic_id = broker.create_topic(topic, cold.topic_configs("none"), PARTITIONS)
    produced = broker.produce(topic, 0, 96 * 1024)
    end = broker.wait_until_remote_only(topic, PARTITIONS, share=0.6)[0][cold.EARLIEST_LOCAL]
    chunks = sum(len(meta.chunks) for _, meta in broker.remote_segments(topic, topic_id))
    assert chunks >= 12
    before = broker.metrics()

    # About a third of a chunk per Fetch, with a pause between Fetches (a GET from moto
    # on loopback takes a few milliseconds): a reader that outruns the bucket would
    # catch up with its read-ahead, which downloads one chunk at a time.
    records = broker.replay(topic, 0, 0, end, max_bytes=cold.CHUNK_BYTES // 3, pause_s=0.03)
    assert records == [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in produced[:end]]

    after = broker.metrics()

    def grew(name: str) -> float:
        return after.total(name) - before.total(name)

    hits = grew("tierbroker_remote_prefetch_hits_total")
    assert hits >= chunks // 2, f"{hits:.0f} of {chunks} chunks were read ahead"
    assert grew("tierbroker_remote_prefetch_wasted_total") == 0
    assert grew("tierbroker_remote_get_requests_total") == chunks  # each chunk once
