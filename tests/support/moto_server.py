"""moto's S3 server over HTTP on loopback, for tests of anything that talks S3.

One server per test session (it starts in ~1 s); every test gets its own bucket,
so tests never see each other's objects. Credentials are dummies passed to each
client explicitly: nothing here touches os.environ.

    from tests.support.moto_server import moto_server, s3_bucket  # noqa: F401 (fixtures)

    def test_x(s3_bucket):
        store = s3_bucket.store(prefix="p")          # an S3Store on that bucket
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
from dataclasses import dataclass

import pytest

ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
REGION = "us-east-1"

_bucket_numbers = itertools.count()


class MotoServer:
    """A ThreadedMotoServer on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO; tests want quiet output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.host = "127.0.0.1"
        self.port = 0
        self._client = None

    def start(self) -> MotoServer:
        self._server.start()
        self.host, self.port = self._server.get_host_and_port()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def sync_client(self):
        """A blocking botocore S3 client (one, shared), for fixtures and assertions."""
        if self._client is None:
            import botocore.session

            self._client = botocore.session.get_session().create_client(
                "s3", endpoint_url=self.url, region_name=REGION,
                aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
        return self._client

    def create_bucket(self, prefix: str = "test") -> str:
        name = f"{prefix}-{os.getpid()}-{next(_bucket_numbers)}"
        self.sync_client().create_bucket(Bucket=name)
        return name


@dataclass
class S3Bucket:
    """A fresh bucket on the session's moto server."""

    server: MotoServer
    name: str

    def store(self, prefix: str = "", endpoint_url: str | None = None, **kwargs):
        """An `S3Store` on this bucket (optionally through another endpoint, e.g. a proxy)."""
        from remote_index.store.s3 import S3Store

        return S3Store(self.name, prefix, endpoint_url=endpoint_url or self.server.url,
                       region=REGION, path_style=True, access_key_id=ACCESS_KEY_ID,
                       secret_access_key=SECRET_ACCESS_KEY, **kwargs)

    def keys(self) -> list[str]:
        """Every key in the bucket, prefix and all (what is really there)."""
        client = self.server.sync_client()
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            keys += [obj["Key"] for obj in page.get("Contents", ())]
        return sorted(keys)


def free_port() -> int:
    """A loopback port nothing listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(moto_server) -> S3Bucket:
    return S3Bucket(moto_server, moto_server.create_bucket())
