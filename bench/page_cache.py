"""Page-cache isolation: inside a memory-limited cgroup, a hot topic's segment files
stay resident while another topic is replayed cold from the bucket.

    python bench/page_cache.py [--limit-mib 512] [--hot-mib 192] [--cold-mib 1024]

Method. The broker runs in a fresh memory cgroup (v1 `memory.limit_in_bytes`
or v2 `memory.max`, created under this process's own cgroup; `systemd-run
--scope` is not used: it needs systemd as PID 1). Everything the broker
allocates and every page it writes is charged there. moto (the bucket) and this
driver stay outside. In order:

1. a cold topic (`local.retention.bytes=0`) is produced and left until every
   closed segment is uploaded and deleted locally: only the bucket holds it;
2. a hot topic (not tiered) is produced: its segment files are in the page
   cache, charged to the cgroup;
3. residency of the hot topic's segment files (mincore(2) on an untouched
   mmap of each, through ctypes) before, during (sampled every 0.5 s; the
   minimum counts) and after a confluent-kafka consumer replays the whole cold
   topic from offset 0 to its local log start;
4. control: a 1 GiB file is written from inside the same cgroup, and the hot
   residency measured again. It must drop, or the setup could not have seen an
   eviction (the result is then inconclusive, exit 2).

Target: hot residency >= 99% throughout the cold replay. Exits 2 without
measuring if no memory-limited cgroup can be created here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _support import (
    MotoProcess,
    create_topic,
    local_log_start_offsets,
    print_table,
    produce_bytes,
    replay,
    start_broker,
    wait_remote_only,
    warm_memory,
)

from tests.support.broker import free_port
from tests.support.page_cache import resident_pages

TARGET = 0.99


# -- residency ------------------------------------------------------------------------


def residency(files: list[Path]) -> float:
    resident = total = 0
    for path in files:
        found = resident_pages(path)
        if found is None:
            raise FileNotFoundError(f"{path} vanished while its residency was measured")
        _, r, t = found
        resident, total = resident + r, total + t
    return resident / total if total else float("nan")


# -- the cgroup -----------------------------------------------------------------------


class MemoryCgroup:
    """A child memory cgroup with a hard limit (v1 or v2, whichever controls memory here)."""

    def __init__(self, limit_bytes: int):
        self.path, self.version = _create_cgroup(f"tierbroker-bench-{os.getpid()}")
        self.home = _own_cgroup_dir(self.version)
        try:
            limit_file = "memory.limit_in_bytes" if self.version == 1 else "memory.max"
            (self.path / limit_file).write_text(str(limit_bytes))
            self.limit = int((self.path / limit_file).read_text())
            if self.limit > limit_bytes:
                raise OSError(f"{limit_file} reads back {self.limit}, not {limit_bytes}")
        except BaseException:
            self.path.rmdir()
            raise

    def enter(self, pid: int = 0) -> None:
        (self.path / "cgroup.procs").write_text(str(pid or os.getpid()))

    def leave(self) -> None:
        """Move this process back where it came from."""
        (self.home / "cgroup.procs").write_text(str(os.getpid()))

    def usage(self) -> int:
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        return int((self.path / name).read_text())

    def stat(self) -> dict[str, int]:
        fields = dict(line.split() for line in (self.path / "memory.stat").read_text().splitlines())
        return {k: int(v) for k, v in fields.items()}

    def page_cache_and_anon(self) -> tuple[int, int]:
        stat = self.stat()
        if self.version == 1:
            return stat.get("cache", 0), stat.get("rss", 0)
        return stat.get("file", 0), stat.get("anon", 0)

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)  # its last process is still exiting
        print(f"warning: could not remove {self.path}", file=sys.stderr)


def _own_cgroup_dir(version: int) -> Path:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if version == 1 and "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
        if version == 2 and controllers == "":
            return Path("/sys/fs/cgroup") / path.lstrip("/")
    raise OSError(f"this process is in no cgroup v{version} memory hierarchy")


def _create_cgroup(name: str) -> tuple[Path, int]:
    """A new child of this process's cgroup: v2 if the unified hierarchy at
    /sys/fs/cgroup controls memory, else v1's memory controller."""
    errors = []
    v2_root = Path("/sys/fs/cgroup/cgroup.controllers")
    if v2_root.exists() and "memory" in v2_root.read_text().split():
        try:
            parent = _own_cgroup_dir(2)
            if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
                (parent / "cgroup.subtree_control").write_text("+memory")
            child = parent / name
            child.mkdir()
            return child, 2
        except OSError as exc:
            errors.append(f"cgroup v2: {exc}")
    if Path("/sys/fs/cgroup/memory").is_dir():
        try:
            child = _own_cgroup_dir(1) / name
            child.mkdir()
            return child, 1
        except OSError as exc:
            errors.append(f"cgroup v1: {exc}")
    else:
        errors.append("cgroup v1: no memory controller mounted at /sys/fs/cgroup/memory")
    raise OSError("; ".join(errors))


# -- the run -----------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-mib", type=int, default=512, help="the cgroup's memory limit, MiB")
    parser.add_argument("--hot-mib", type=int, default=192, help="hot topic data, MiB")
    parser.add_argument("--cold-mib", type=int, default=1024, help="cold topic data replayed, MiB")
    parser.add_argument("--control-mib", type=int, default=1024, help="file written by the control, MiB")
    args = parser.parse_args()

    try:
        cgroup = MemoryCgroup(args.limit_mib << 20)
    except OSError as exc:
        print(f"page_cache: cannot create a memory-limited cgroup on this machine ({exc}); "
              "nothing was measured", file=sys.stderr)
        return 2
    print(f"memory cgroup v{cgroup.version} {cgroup.path}, limit {cgroup.limit >> 20} MiB")

    moto = MotoProcess().start()  # outside the cgroup, as a remote bucket would be
    broker = None
    rows, samples = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="tierbroker-warm-") as warm_dir:
            warm_memory(Path(warm_dir), 2 * (args.cold_mib << 20))
        bucket = moto.create_bucket("bench-page-cache")
        metrics_port = free_port()
        overrides = {**moto.broker_overrides(bucket, f"bench-{time.time_ns()}"),
                     "metrics.port": str(metrics_port), "remote.log.manager.task.interval.ms": "200"}
        # The broker is forked from inside the cgroup, so all it ever allocates is charged there.
        cgroup.enter()
        try:
            broker = start_broker(overrides)
        finally:
            cgroup.leave()

        create_topic(broker.bootstrap, "cold", 4, {
            "remote.storage.enable": "true", "segment.bytes": str(16 << 20),
            "local.retention.bytes": "0", "file.delete.delay.ms": "0"})
        produce_bytes(broker.bootstrap, "cold", 4, args.cold_mib << 20)
        wait_remote_only("cold", metrics_port)
        ends = local_log_start_offsets(broker.bootstrap, "cold", 4)

        create_topic(broker.bootstrap, "hot", 2, {"segment.bytes": str(32 << 20)})
        produce_bytes(broker.bootstrap, "hot", 2, args.hot_mib << 20)
        hot_files = sorted((broker.data_dir / "logs").glob("hot-*/*.log"))
        if not hot_files:
            raise RuntimeError("found no segment files of the hot topic")
        hot_bytes = sum(f.stat().st_size for f in hot_files)

        def snapshot(label: str) -> None:
            cache, anon = cgroup.page_cache_and_anon()
            rows.append([label, f"{100 * residency(hot_files):.2f}%", f"{cgroup.usage() >> 20}",
                         f"{cache >> 20}", f"{anon >> 20}", f"{rss_bytes(broker.proc.pid) >> 20}"])

        snapshot("before the cold replay")
        before = residency(hot_files)
        outcome: dict = {}

        def run_replay() -> None:
            try:
                outcome["result"] = replay(broker.bootstrap, "cold", ends)
            except Exception as exc:  # reported in the main thread
                outcome["error"] = exc

        thread = threading.Thread(target=run_replay)
        thread.start()
        while thread.is_alive():
            samples.append(residency(hot_files))
            thread.join(0.5)
        if "error" in outcome:
            raise outcome["error"]
        records, seconds = outcome["result"]
        samples.append(residency(hot_files))
        snapshot("after the cold replay")
        lowest = min([before, *samples])

        # Control: the same cgroup, but bytes that do go through the page cache.
        with tempfile.TemporaryDirectory(prefix="tierbroker-control-", dir=broker.data_dir) as control_dir:
            subprocess.run(["dd", "if=/dev/zero", f"of={control_dir}/control", "bs=1M",
                            f"count={args.control_mib}", "status=none"],
                           check=True, preexec_fn=lambda: cgroup.enter(os.getpid()))
            snapshot(f"control: {args.control_mib} MiB written in the cgroup")
            control = residency(hot_files)
    finally:
        if broker is not None:
            broker.stop()
            shutil.rmtree(broker.data_dir, ignore_errors=True)
        moto.stop()
        cgroup.remove()

    print_table(f"hot topic residency ({len(hot_files)} segment files, {hot_bytes >> 20} MiB) in a "
                f"{cgroup.limit >> 20} MiB memory cgroup (v{cgroup.version}) while {args.cold_mib} MiB of a "
                f"remote-only topic is replayed cold ({records} records in {seconds:.1f} s)",
                ["moment", "hot resident", "cgroup MiB", "page cache MiB", "anon MiB", "broker RSS MiB"], rows)
    print(f"during the replay: {len(samples)} samples, lowest {100 * min(samples):.2f}%")
    sensitive = control < TARGET
    passed = lowest >= TARGET
    verdict = ("INCONCLUSIVE (the control did not evict: the setup cannot see an eviction)" if not sensitive
               else "PASS" if passed else "FAIL")
    print_table("target", ["check", "measured", "target", "result"], [
        ["hot residency, lowest of before/during/after", f"{100 * lowest:.2f}%", f">= {100 * TARGET:.0f}%",
         verdict],
        ["control (page-cache writes in the cgroup)", f"{100 * control:.2f}%", "< 99% (evicts)",
         "ok" if sensitive else "NOT SENSITIVE"],
    ])
    if not sensitive:
        return 2
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
