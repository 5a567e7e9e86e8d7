"""broker.log depends only on broker.protocol, the standard library and crc32c."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import broker.log

ALLOWED_THIRD_PARTY = {"crc32c"}
PACKAGE = Path(broker.log.__file__).parent


def _imports(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_broker_log_imports_only_protocol_stdlib_and_crc32c():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY:
                continue
            if name == "broker.protocol" or name.startswith("broker.protocol."):
                continue
            offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_records_codec_does_no_io():
    import broker.protocol.records as records

    names = set(_imports(Path(records.__file__)))
    assert not names & {"os", "io", "socket", "asyncio", "pathlib", "mmap", "select"}
