"""Fixtures for the local-log tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from log_helpers import NOW  # noqa: E402

from broker.log import LogConfig, PartitionLog  # noqa: E402


@pytest.fixture
def log_dir(tmp_path):
    return tmp_path / "topic-0"


@pytest.fixture
def open_log(log_dir):
    opened = []

    def _open(config: LogConfig | None = None, **kwargs) -> PartitionLog:
        log = PartitionLog.open(log_dir, config or LogConfig(), now_ms=kwargs.pop("now_ms", NOW), **kwargs)
        opened.append(log)
        return log

    yield _open
    for log in opened:
        try:
            log.close()
        except Exception:
            pass
