"""Choosing the event loop: uvloop by default where it is installed, the standard
one when asked for or when uvloop is missing, and a clear refusal when uvloop is
asked for but missing (the broker then exits 2 before touching anything)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from broker import cli, event_loop


def test_uvloop_is_the_default_where_installed():
    pytest.importorskip("uvloop")
    assert cli.build_parser().parse_args(["serve"]).event_loop is None  # resolved at start
    assert event_loop.default_choice() == "uvloop"
    loop = event_loop.loop_factory("uvloop")()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_the_standard_loop_when_asked_for_or_without_uvloop(monkeypatch):
    assert cli.build_parser().parse_args(["serve", "--event-loop", "asyncio"]).event_loop == "asyncio"
    assert event_loop.loop_factory("asyncio") is asyncio.new_event_loop
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert event_loop.default_choice() == "asyncio"


def test_asking_for_a_missing_uvloop_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` raise ImportError
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"uvloop is not installed \(pip install uvloop\)"):
        event_loop.loop_factory("uvloop")
    assert cli.main(["serve", "--event-loop", "uvloop"]) == 2
    assert "uvloop is not installed" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_an_unknown_loop_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["serve", "--event-loop", "trio"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'trio'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown event loop 'trio'; choose one of uvloop, asyncio"):
        event_loop.loop_factory("trio")
