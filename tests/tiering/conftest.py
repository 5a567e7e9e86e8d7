"""Fixtures for the write side's end-to-end tests: a session moto S3 server, a fresh
bucket per test (tests/support/moto_server.py)."""

from tests.support.moto_server import moto_server, s3_bucket  # noqa: F401 (fixtures)
