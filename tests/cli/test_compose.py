"""compose.yaml, the Dockerfile and deploy/ checked by structure: there is no
container engine here, so these tests read the files and check that the pieces
agree with each other and with the code (bucket, endpoint, credentials, ports,
metric names)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import CollectorRegistry

from broker.config import BrokerConfig
from broker.config.broker_config import settings_from_environ
from broker.metrics import BrokerMetrics
from remote_index.read_metrics import ReadMetrics
from tests.support.broker import REPO
from tiering.metrics import TieringMetrics

SERVICES = {"minio", "createbucket", "tierbroker", "prometheus", "grafana"}
MINIO_S3_PORT = 9000  # `minio server` listens here unless --address says otherwise


# -- reading the files -------------------------------------------------------------------


def interpolate(value):
    """Compose's variable interpolation, with every variable unset: `${NAME:-default}`
    is its default, `$$` a literal `$`."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(3)
        assert default is not None, f"${{{name}}} has no default: compose.yaml must run without a .env file"
        return default

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}", one, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return interpolate(yaml.safe_load((REPO / "compose.yaml").read_text()))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def broker_settings(services) -> dict[str, str]:
    """The broker's config keys as its environment sets them."""
    env = {k: str(v) for k, v in services["tierbroker"]["environment"].items()}
    return settings_from_environ(env)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def published(service: dict) -> dict[int, tuple[str | None, int]]:
    """container port -> (host address or None, host port), from the short port syntax."""
    out = {}
    for spec in service.get("ports", []):
        parts = str(spec).split("/")[0].split(":")
        host_ip = parts[0] if len(parts) == 3 else None
        out[int(parts[-1])] = (host_ip, int(parts[-2]) if len(parts) > 1 else int(parts[-1]))
    return out


def command_text(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def mc_invocations(service: dict) -> list[list[str]]:
    """The `mc ...` commands of the createbucket service's shell line, split into words."""
    script = command_text(service)
    return [shlex.split(part) for part in re.split(r"&&|;", script) if part.strip().startswith("mc ")]


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


# -- compose.yaml ---------------------------------------------------------------------------


def test_services(services):
    assert set(services) == SERVICES
    assert services["minio"]["image"].startswith("minio/minio")
    assert services["createbucket"]["image"].startswith("minio/mc")
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    assert services["grafana"]["image"].startswith("grafana/grafana")
    assert services["tierbroker"]["build"] in (".", {"context": "."})


def test_minio(services):
    minio = services["minio"]
    command = command_text(minio).split()
    assert command[:2] == ["server", "/data"]
    assert command[command.index("--console-address") + 1] == ":9001"
    assert "--address" not in command  # so the S3 API is on MINIO_S3_PORT
    ports = published(minio)
    assert ports[MINIO_S3_PORT][1] == 9000 and ports[9001][1] == 9001
    assert minio["healthcheck"]["test"]
    assert any(v.split(":")[1] == "/data" for v in minio["volumes"])
    env = environment(minio)
    assert env["MINIO_ROOT_USER"] and len(env["MINIO_ROOT_PASSWORD"]) >= 8  # MinIO refuses shorter


def test_createbucket_makes_the_bucket_on_minio(services):
    create = services["createbucket"]
    assert create["depends_on"]["minio"]["condition"] == "service_healthy"
    env, minio_env = environment(create), environment(services["minio"])
    (alias_set, make_bucket) = mc_invocations(create)
    assert alias_set[:3] == ["mc", "alias", "set"]
    alias, url, user, password = alias_set[3:7]
    assert host_port(url) == ("minio", MINIO_S3_PORT)

    def expand(word: str) -> str:
        """What the shell makes of $NAME and ${NAME}: the service's environment."""
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m.group(1) or m.group(2)], word)

    assert (expand(user), expand(password)) == (minio_env["MINIO_ROOT_USER"], minio_env["MINIO_ROOT_PASSWORD"])
    assert make_bucket[:3] == ["mc", "mb", "--ignore-existing"]
    assert make_bucket[3].split("/")[0] == alias


def created_bucket(services) -> str:
    (_, make_bucket) = mc_invocations(services["createbucket"])
    return make_bucket[3].split("/", 1)[1]


def test_broker_settings_are_valid(broker_settings):
    config = BrokerConfig.load(None, {}, {f"TIERBROKER_{k.upper().replace('.', '_')}": v
                                          for k, v in broker_settings.items()})
    assert config.listeners() == [("PLAINTEXT", "0.0.0.0", 9092)]
    assert config.advertised_listeners() == [("PLAINTEXT", "localhost", 9092)]
    assert [str(d) for d in config.log_dirs()] == ["/data"]
    assert config.get("remote.storage.enable") is True
    assert config.get("metrics.host") == "0.0.0.0" and config.get("admin.http.host") == "0.0.0.0"


def test_broker_uses_the_bucket_createbucket_makes(services, broker_settings):
    url = urlsplit(broker_settings["remote.storage.url"])
    assert url.scheme == "s3"
    assert url.netloc == created_bucket(services)


def test_broker_talks_to_minio_with_its_credentials(services, broker_settings):
    assert host_port(broker_settings["remote.storage.s3.endpoint.url"]) == ("minio", MINIO_S3_PORT)
    assert broker_settings["remote.storage.s3.region"] == "us-east-1"
    assert broker_settings["remote.storage.s3.path.style.access"] == "true"
    minio_env = environment(services["minio"])
    assert broker_settings["remote.storage.s3.access.key.id"] == minio_env["MINIO_ROOT_USER"]
    assert broker_settings["remote.storage.s3.secret.access.key"] == minio_env["MINIO_ROOT_PASSWORD"]


def test_broker_starts_after_the_bucket_exists(services):
    assert services["tierbroker"]["depends_on"]["createbucket"]["condition"] == "service_completed_successfully"


def test_broker_ports_and_data(services, broker_settings):
    config = BrokerConfig(broker_settings)
    ports = published(services["tierbroker"])
    kafka_port = config.listeners()[0][2]
    # Clients are told localhost:9092, so that is where the host must reach the listener.
    assert ports[kafka_port][1] == config.advertised_listeners()[0][2] == 9092
    assert ports[config.get("metrics.port")][1] == 9464
    # The CLI finds the admin endpoint at the bootstrap host and the configured port.
    assert ports[config.get("admin.http.port")][1] == config.get("admin.http.port") == 9465
    assert any(v.split(":")[1] == str(config.log_dirs()[0]) for v in services["tierbroker"]["volumes"])


# -- Prometheus and Grafana ----------------------------------------------------------------------


def mounted(service: dict, target: str) -> Path:
    """The repository file or directory a service mounts at `target`."""
    for volume in service["volumes"]:
        source, container_path = volume.split(":")[:2]
        if container_path == target:
            assert source.startswith("./"), volume
            path = REPO / source
            assert path.exists(), f"{volume}: {path} is missing"
            return path
    raise AssertionError(f"nothing is mounted at {target}")


def test_prometheus_scrapes_the_brokers_metrics_port(services, broker_settings):
    config = yaml.safe_load(mounted(services["prometheus"], "/etc/prometheus/prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert f"tierbroker:{BrokerConfig(broker_settings).get('metrics.port')}" in targets
    job = next(j for j in config["scrape_configs"] if "tierbroker:9464" in j["static_configs"][0]["targets"])
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_grafana_provisions_prometheus_and_the_dashboard(services):
    grafana = services["grafana"]
    provisioning = mounted(grafana, "/etc/grafana/provisioning")
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus"
    prometheus_port = published(services["prometheus"])
    assert host_port(source["url"]) == ("prometheus", 9090) and 9090 in prometheus_port
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "tierbroker.yml").read_text())["providers"]
    dashboards = mounted(grafana, provider["options"]["path"])
    dashboard = json.loads((dashboards / "tierbroker.json").read_text())
    home = environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home is None or home == provider["options"]["path"] + "/tierbroker.json"
    used = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert used == {source["uid"]}


def exposed_metric_names() -> set[str]:
    """Every series name the broker's metrics expose (counters as name_total,
    histograms as _bucket/_sum/_count), from the classes that define them."""
    broker = BrokerMetrics()
    registry: CollectorRegistry = broker.registry
    TieringMetrics(registry)
    ReadMetrics(registry)
    names = set()
    for family in registry.collect():
        suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
                    "gauge": [""], "summary": ["", "_sum", "_count"]}[family.type]
        names.update(family.name + s for s in suffixes)
    return names


def dashboard_metrics() -> dict[str, set[str]]:
    """metric name -> titles of the panels that query it."""
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/tierbroker.json").read_text())
    out: dict[str, set[str]] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for name in re.findall(r"\btierbroker_[a-z0-9_]+", target["expr"]):
                out.setdefault(name, set()).add(panel["title"])
    return out


def test_every_metric_the_dashboard_queries_exists():
    queried = dashboard_metrics()
    missing = {name: sorted(panels) for name, panels in queried.items() if name not in exposed_metric_names()}
    assert not missing, f"the dashboard queries metrics the broker does not expose: {missing}"


def test_the_dashboard_covers_the_tier_metrics():
    queried = set(dashboard_metrics())
    for wanted in ("tierbroker_remote_upload_bytes_total", "tierbroker_remote_upload_segments_total",
                   "tierbroker_remote_copy_lag_bytes", "tierbroker_remote_log_size_bytes",
                   "tierbroker_remote_fetch_bytes_total", "tierbroker_remote_fetch_latency_seconds_bucket",
                   "tierbroker_remote_pool_bytes_in_use", "tierbroker_remote_prefetch_hits_total",
                   "tierbroker_remote_prefetch_misses_total", "tierbroker_remote_prefetch_wasted_total",
                   "tierbroker_rollback_restored_bytes", "tierbroker_rollback_total_bytes",
                   "tierbroker_remote_store_unavailable"):
        assert wanted in queried, wanted


# -- the image -------------------------------------------------------------------------------------


def test_dockerfile():
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert any(line.startswith("RUN pip install .") for line in lines)
    (cmd,) = [line for line in lines if line.startswith("CMD ")]
    assert json.loads(cmd[4:]) == ["tierbroker", "serve"]
    (expose,) = [line for line in lines if line.startswith("EXPOSE ")]
    assert set(expose.split()[1:]) == {"9092", "9464", "9465"}
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    assert {"broker", "tiering", "remote_index"} <= copied


def test_dockerignore_keeps_what_the_build_needs():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not ignored & {"broker", "tiering", "remote_index", "pyproject.toml", "README.md"}
    assert {".git", "tests"} <= ignored
