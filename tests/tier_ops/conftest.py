"""Fixtures for rollback and recovery tests: a session moto S3 server, a bucket per test."""

from tests.support.moto_server import moto_server, s3_bucket  # noqa: F401 (fixtures)
