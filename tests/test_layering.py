"""The dependency rule of DESIGN.md section 1, enforced:

    broker.protocol <- broker.log <- remote_index <- tiering <- broker (server, handlers, CLI)

plus `broker.config`, plain data every layer may read. A module may import its
own layer and the layers to its left, never one to its right; and the wire
codec does no I/O.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# layer -> the project packages its modules may import (besides themselves)
ALLOWED = {
    "broker.protocol": {"broker.protocol"},
    "broker.config": {"broker.config"},
    "broker.log": {"broker.protocol", "broker.log"},
    "remote_index": {"broker.protocol", "broker.log", "broker.config", "remote_index"},
    "tiering": {"broker.protocol", "broker.log", "broker.config", "remote_index", "tiering"},
}
PROJECT = ("broker", "remote_index", "tiering")
NO_IO_MODULES = {"asyncio", "socket", "selectors", "select", "subprocess", "threading", "os", "io", "pathlib", "mmap"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str | None = None):
    """Absolute names of every module `path` imports (relative imports resolved)."""
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                yield ".".join(base + ([node.module] if node.module else []))
            elif node.module:
                yield node.module


def _layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _project_modules():
    for top in PROJECT:
        for path in sorted((REPO / top).rglob("*.py")):
            yield _module_name(path), path


def _violations(layer: str, modules) -> list[str]:
    offenders = []
    for module, path in modules:
        if _layer_of(module) != layer:
            continue
        for name in _imports(path, module):
            if not name.startswith(PROJECT):
                continue
            if not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED[layer]):
                offenders.append(f"{module} imports {name}")
    return offenders


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_its_own_and_lower_layers(layer):
    assert _violations(layer, _project_modules()) == []


def test_the_wire_codec_does_no_io():
    offenders = [f"{path.relative_to(REPO)} imports {name}"
                 for path in sorted((REPO / "broker" / "protocol").rglob("*.py"))
                 for name in _imports(path) if name.split(".")[0] in NO_IO_MODULES]
    assert offenders == []


def test_the_rule_catches_violations(tmp_path):
    """The checker itself: upward imports, absolute or relative, are reported."""
    probe = tmp_path / "probe.py"
    probe.write_text("from tiering import TieringManager\nfrom ..handlers import fetch\n")
    assert _violations("remote_index", [("remote_index.probe", probe)]) == ["remote_index.probe imports tiering"]
    assert _violations("broker.log", [("broker.log.probe", probe)]) == [
        "broker.log.probe imports tiering", "broker.log.probe imports broker.handlers"]
