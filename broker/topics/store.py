"""Durable topic metadata: one JSON document per topic, plus the broker identity.

Layout under the first log directory:

    meta.properties                       cluster.id, node.id, version (as Kafka)
    __tierbroker_metadata/topics/<topic id>.json
        {"name", "topic_id", "partitions": {"0": "/abs/log/dir", ...}, "configs": {...}}

Each document is replaced atomically (`broker.log.files.write_file_atomically`);
it is named by topic id, not name, so the longest legal topic name (249
characters) still leaves room for the temporary file's suffix. Crash rules: a topic
exists iff its document exists. Creation writes the partition directories first
and the document last; deletion removes the document first and the directories
after, so a crash in between leaves only orphan directories, which startup removes.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..log.files import write_file_atomically
from ..config import parse_properties

METADATA_DIR = "__tierbroker_metadata"


@dataclass
class TopicRecord:
    name: str
    topic_id: uuid.UUID
    partition_dirs: dict[int, Path]
    configs: dict[str, str]

    def to_json(self) -> bytes:
        return json.dumps({
            "name": self.name,
            "topic_id": str(self.topic_id),
            "partitions": {str(i): str(d) for i, d in sorted(self.partition_dirs.items())},
            "configs": self.configs,
        }, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "TopicRecord":
        doc = json.loads(data)
        return cls(doc["name"], uuid.UUID(doc["topic_id"]),
                   {int(i): Path(d) for i, d in doc["partitions"].items()}, dict(doc["configs"]))


class TopicStore:
    def __init__(self, first_log_dir: Path):
        self.root = first_log_dir
        self.topics_dir = first_log_dir / METADATA_DIR / "topics"
        self.topics_dir.mkdir(parents=True, exist_ok=True)

    def load_all(self) -> list[TopicRecord]:
        records = []
        for path in sorted(self.topics_dir.glob("*.json")):
            records.append(TopicRecord.from_json(path.read_bytes()))
        return records

    def save(self, record: TopicRecord) -> None:
        write_file_atomically(self.topics_dir / f"{record.topic_id}.json", record.to_json())

    def remove(self, topic_id: uuid.UUID) -> None:
        (self.topics_dir / f"{topic_id}.json").unlink(missing_ok=True)

    def load_identity(self, node_id: int) -> str:
        """The cluster id from meta.properties, created on first start.

        A data directory written by another node id is refused: mixing two
        brokers' logs would silently serve the wrong data.
        """
        path = self.root / "meta.properties"
        if path.exists():
            props = parse_properties(path.read_text())
            stored = int(props.get("node.id", node_id))
            if stored != node_id:
                raise RuntimeError(f"{path} belongs to node.id {stored}, but this broker is "
                                   f"node.id {node_id}; point log.dirs elsewhere or fix node.id")
            return props["cluster.id"]
        cluster_id = _new_cluster_id()
        write_file_atomically(path, f"version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n".encode())
        return cluster_id


def _new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
