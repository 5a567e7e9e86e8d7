"""Fixtures for remote-tier tests: a session moto S3 server, a fresh bucket per test."""

from tests.support.moto_server import moto_server, s3_bucket  # noqa: F401 (fixtures)
