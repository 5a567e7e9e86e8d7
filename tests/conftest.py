from __future__ import annotations

import pytest

from tests.support.broker import BrokerProcess


@pytest.fixture
def broker(tmp_path):
    """A running broker process with a fresh data directory."""
    proc = BrokerProcess(tmp_path / "broker").start()
    yield proc
    proc.kill()
