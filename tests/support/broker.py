"""Run a real tierbroker as a separate process, as a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

READY_LINE = "ready in"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerProcess:
    """`python -m broker.cli serve` on a free loopback port with its own data dir.

    The broker's stderr goes to `log_path`, which tests may read (recovery lines).
    """

    def __init__(self, data_dir: Path, overrides: dict[str, str] | None = None, port: int | None = None,
                 event_loop: str | None = None):
        """`event_loop`: `--event-loop` for the broker (None: its default)."""
        self.data_dir = Path(data_dir)
        self.event_loop = event_loop
        self.port = port or free_port()
        self.overrides = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": str(self.data_dir / "logs"),
            "metrics.port": "-1",
            "admin.http.port": "-1",
            **(overrides or {}),
        }
        self.log_path = self.data_dir / f"broker-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self._log_offset = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "BrokerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "broker.cli", "serve"]
        for key, value in self.overrides.items():
            args += ["--override", f"{key}={value}"]
        if self.event_loop is not None:
            args += ["--event-loop", self.event_loop]
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log_file = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.log_since_start():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}:\n{self.log_since_start()}")
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"broker not ready after {timeout}s:\n{self.log_since_start()}")

    def log_since_start(self) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful path."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "BrokerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
