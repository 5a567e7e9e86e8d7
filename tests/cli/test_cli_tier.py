"""`tierbroker tier` end to end: the CLI as a subprocess against a live broker whose
remote tier is a local directory, found through the broker's admin endpoint."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.support.broker import REPO, BrokerProcess, free_port

from .cli_support import cli, cli_json, consume_all, produce, wait_until

RECORDS = 400
VALUE = b"%05d" + b"x" * 95  # ~100 bytes a record: segments of ~20 records


def tiering_overrides(admin_port: int, **extra: str) -> dict[str, str]:
    return {"admin.http.port": str(admin_port), "remote.log.manager.task.interval.ms": "200", **extra}


def topic_configs(**extra: str) -> list[str]:
    configs = {"remote.storage.enable": "true", "segment.bytes": "2048", "local.retention.bytes": "4096", **extra}
    return [arg for k, v in configs.items() for arg in ("--config", f"{k}={v}")]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    admin_port = free_port()
    proc = BrokerProcess(tmp_path_factory.mktemp("cli-tier"), overrides=tiering_overrides(admin_port))
    proc.admin_port = admin_port
    proc.start()
    yield proc
    proc.kill()


def tier(broker: BrokerProcess, *args: str, **kw):
    return cli("tier", *args, "--bootstrap-server", broker.bootstrap, **kw)


def tier_json(broker: BrokerProcess, *args: str):
    return cli_json("tier", *args, "--bootstrap-server", broker.bootstrap)


def values(n: int) -> list[bytes]:
    return [VALUE % i for i in range(n)]


def create_tiered(broker: BrokerProcess, topic: str, partitions: int = 1, **extra: str) -> None:
    created = cli("topics", "create", topic, "--partitions", str(partitions), *topic_configs(**extra),
                  "--bootstrap-server", broker.bootstrap)
    assert created.returncode == 0, created.stderr


def wait_uploaded(broker: BrokerProcess, topic: str) -> list[dict]:
    """Status once every closed segment is in the bucket and local retention has run
    (two polls in a row agree)."""
    previous: list[list[dict]] = [[]]

    def settled():
        rows = tier_json(broker, "status", topic)
        done = all(r["remote_end"] and r["upload_lag_segments"] == 0 and r["local_start"] > 0 for r in rows)
        stable, previous[0] = rows == previous[0], rows
        return rows if done and stable else None
    return wait_until(settled, f"{topic} to be uploaded and trimmed locally", interval=0.5)


def test_status_shows_each_tier(broker):
    create_tiered(broker, "metrics-status", partitions=2)
    produce(broker.bootstrap, "metrics-status", values(RECORDS), partitions=2)
    rows = wait_uploaded(broker, "metrics-status")

    assert [(r["topic"], r["partition"]) for r in rows] == [("metrics-status", 0), ("metrics-status", 1)]
    for r in rows:
        assert r["tiered"] is True and r["rollback"] is None and r["last_error"] is None
        assert r["local_end"] == RECORDS // 2
        # The bucket holds the start of the log, the local disk its end; they overlap or meet.
        assert r["remote_start"] == 0 and r["local_start"] <= r["remote_end"] < r["local_end"]
        assert r["remote_bytes"] > r["local_bytes"] > 0
        assert r["last_upload_ms"] is not None

    table = tier(broker, "status", "metrics-status")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["TOPIC", "PARTITION", "TIERED", "LOCAL-OFFSETS", "REMOTE-OFFSETS", "LOCAL-BYTES",
                                "REMOTE-BYTES", "UPLOAD-LAG", "LAST-UPLOAD", "LAST-ERROR"]
    for line, r in zip(lines[1:], rows):
        cells = line.split()
        assert cells[:5] == ["metrics-status", str(r["partition"]), "yes",
                             f"{r['local_start']}..{r['local_end'] - 1}", f"0..{r['remote_end'] - 1}"]
        # Sizes take two cells ("4.9 KiB"). No upload lag, an upload some seconds ago, no error.
        assert cells[9] == "0" and cells[-2:] == ["ago", "-"]

    # Without a topic: every topic, this one included.
    everything = tier_json(broker, "status")
    assert {("metrics-status", 0), ("metrics-status", 1)} <= {(r["topic"], r["partition"]) for r in everything}


def test_rollback_restores_everything_locally(broker):
    create_tiered(broker, "metrics-rollback")
    produce(broker.bootstrap, "metrics-rollback", values(RECORDS))
    before = wait_uploaded(broker, "metrics-rollback")[0]

    result = tier(broker, "rollback", "metrics-rollback")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Not a terminal: a plain line per step, from the first to the last.
    assert all(line.startswith("rollback of metrics-rollback: ") for line in lines)
    assert lines[0].startswith("rollback of metrics-rollback: restoring: 0/")
    assert lines[-1].startswith("rollback of metrics-rollback: done: ")
    assert lines[-1].endswith("the remote copy is kept")
    assert "\x1b" not in result.stdout

    (after,) = tier_json(broker, "status", "metrics-rollback")
    assert after["tiered"] is False and after["rollback"] == "done"
    assert (after["local_start"], after["local_end"]) == (0, RECORDS)
    assert after["remote_start"] is None and after["remote_end"] is None
    assert after["local_bytes"] > before["local_bytes"]
    table = tier(broker, "status", "metrics-rollback").stdout.splitlines()
    assert table[0].split()[-1] == "ROLLBACK"
    assert table[1].split()[:5] == ["metrics-rollback", "0", "no", f"0..{RECORDS - 1}", "-"]
    assert table[1].split()[-1] == "done"

    described = cli_json("topics", "describe", "metrics-rollback", "--bootstrap-server", broker.bootstrap)
    assert described["tiered"] is False
    assert (described["partitions"][0]["earliest_local"], described["partitions"][0]["latest_tiered"]) == (0, None)
    assert consume_all(broker.bootstrap, "metrics-rollback", 0, RECORDS) == list(enumerate(values(RECORDS)))


def test_rollback_json_and_delete_remote(broker):
    create_tiered(broker, "metrics-json")
    produce(broker.bootstrap, "metrics-json", values(RECORDS))
    wait_uploaded(broker, "metrics-json")

    (final,) = tier_json(broker, "rollback", "metrics-json", "--delete-remote", "--rate", "1000000")
    assert final["topic"] == "metrics-json" and final["state"] == "done" and final["error"] is None
    assert final["delete_remote"] is True
    assert final["restored_segments"] == final["total_segments"] > 0
    assert final["restored_bytes"] == final["total_bytes"] > 0
    assert consume_all(broker.bootstrap, "metrics-json", 0, RECORDS) == list(enumerate(values(RECORDS)))


def test_rollback_no_wait_returns_at_once(broker):
    create_tiered(broker, "metrics-nowait")
    produce(broker.bootstrap, "metrics-nowait", values(RECORDS))
    wait_uploaded(broker, "metrics-nowait")

    result = tier(broker, "rollback", "metrics-nowait", "--no-wait")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rollback of metrics-nowait started: ")
    wait_until(lambda: tier_json(broker, "status", "metrics-nowait")[0]["rollback"] == "done",
               "the rollback to finish in the background")


def test_rollback_on_a_terminal_draws_a_bar(broker):
    create_tiered(broker, "metrics-tty")
    produce(broker.bootstrap, "metrics-tty", values(RECORDS))
    wait_uploaded(broker, "metrics-tty")

    output = run_on_terminal(["tier", "rollback", "metrics-tty", "--bootstrap-server", broker.bootstrap])
    assert "metrics-tty [" in output and "]" in output
    assert "\x1b[2K" in output  # each redraw clears its line
    assert "100%" in output and "done: " in output


def run_on_terminal(args: list[str]) -> str:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "broker.cli", *args], stdout=terminal, stderr=terminal,
                            cwd=REPO)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert proc.wait(60) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_refusals_print_the_brokers_message(broker):
    unknown = tier(broker, "rollback", "no-such-topic")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "tierbroker tier: no topic named no-such-topic on this broker"

    assert cli("topics", "create", "never-tiered", "--bootstrap-server", broker.bootstrap).returncode == 0
    untiered = tier(broker, "rollback", "never-tiered")
    assert untiered.returncode == 1 and "never-tiered is not tiered" in untiered.stderr

    status = tier(broker, "status", "no-such-topic")
    assert status.returncode == 1 and "no topic named no-such-topic" in status.stderr

    elsewhere = tier(broker, "recover", "--from", "s3://some-other-bucket/prefix")
    assert elsewhere.returncode == 1 and "remote.storage.url=s3://some-other-bucket/prefix" in elsewhere.stderr

    usage = tier(broker, "rollback")
    assert usage.returncode == 2 and "give a TOPIC or --all" in usage.stderr
    assert tier(broker, "rollback", "x", "--rate", "0").returncode == 2
    assert tier(broker, "rollback", "x", "--delete-remote", "--keep-remote").returncode == 2


def test_admin_endpoint_answers_json(broker):
    base = f"http://127.0.0.1:{broker.admin_port}"

    def call(method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(base + path, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert call("POST", "/v1/tier/rollback", b"not json")[0] == 400
    assert call("POST", "/v1/tier/rollback", b'{"topic": "a", "all": true}') == (
        400, {"error": 'give either "topic" or "all": true'})
    assert call("POST", "/v1/tier/rollback", b'{"topic": "a", "rate_bytes_per_s": "fast"}')[0] == 400
    assert call("POST", "/v1/tier/rollback", b'{"topic": "nowhere"}') == (
        409, {"error": "no topic named nowhere on this broker"})
    assert call("GET", "/v1/tier/rollback?topic=nowhere")[0] == 404
    assert call("GET", "/v1/tier/rollback")[0] == 400
    assert call("POST", "/v1/tier/recover", b"{}")[0] == 400
    assert call("GET", "/v1/tier/status?topic=nowhere")[0] == 404
    assert call("GET", "/v1/elsewhere") == (404, {"error": "Not Found: GET /v1/elsewhere"})
    status, body = call("GET", "/v1/tier/status")
    assert status == 200 and isinstance(body["partitions"], list)

    # --admin-url skips asking the broker where its endpoint is.
    direct = cli("tier", "status", "--admin-url", base, "--bootstrap-server", "127.0.0.1:1", "--json")
    assert direct.returncode == 0, direct.stderr


def test_cli_says_when_the_endpoint_is_off(tmp_path):
    with BrokerProcess(tmp_path) as broker:  # admin.http.port=-1
        result = tier(broker, "status")
    assert result.returncode == 1
    assert "admin endpoint turned off (admin.http.port=-1)" in result.stderr


def test_unreachable_broker():
    result = cli("tier", "status", "--bootstrap-server", "127.0.0.1:1")
    assert result.returncode == 1 and "cannot connect" in result.stderr
    gone = cli("tier", "status", "--admin-url", f"http://127.0.0.1:{free_port()}")
    assert gone.returncode == 1 and "cannot reach the admin endpoint" in gone.stderr


def test_recover_rebuilds_a_topic_from_the_bucket(tmp_path):
    bucket = tmp_path / "bucket"
    overrides = {"remote.storage.url": f"file://{bucket}"}
    first = BrokerProcess(tmp_path / "first", overrides=tiering_overrides(free_port(), **overrides)).start()
    try:
        create_tiered(first, "metrics-recover")
        produce(first.bootstrap, "metrics-recover", values(RECORDS))
        (uploaded,) = wait_uploaded(first, "metrics-recover")
    finally:
        first.stop()

    # A new broker with empty disks and the same bucket.
    second = BrokerProcess(tmp_path / "second", overrides=tiering_overrides(free_port(), **overrides)).start()
    try:
        result = tier(second, "recover", "--from", f"file://{bucket}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"recovered 1 topic from file://{bucket}: metrics-recover"
        (status,) = tier_json(second, "status", "metrics-recover")
        assert status["tiered"] is True
        assert (status["remote_start"], status["remote_end"]) == (0, uploaded["remote_end"])
        # What the bucket held is readable again.
        assert consume_all(second.bootstrap, "metrics-recover", 0, uploaded["remote_end"]) == \
            list(enumerate(values(uploaded["remote_end"])))
        # Nothing left to recover: the topic exists now.
        again = tier_json(second, "recover", "--from", f"file://{bucket}")
        assert again == {"from": f"file://{bucket}", "topics": []}
    finally:
        second.kill()
