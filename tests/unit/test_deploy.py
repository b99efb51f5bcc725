"""infra/compose.yaml and the Nomad jobs, checked without a Docker or Nomad engine: the compose
file against the Compose Specification's schema; everything either names exists; both run the
same services with the same commands, NATS users, metrics ports and health checks."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from bosun.apps.child_env import DATABASE_USERS  # the same services as under `bosun up`
from tests.datafiles import schema_file
from tests.infra import INFRA, REPO, SERVICES, compose, metrics_ports, nomad_groups, nomad_text, port_of

TOOLS = "tools"  # the compose profile of services started by hand (`run --rm admin ...`)


def long_running() -> dict[str, dict]:
    return {name: s for name, s in compose()["services"].items() if TOOLS not in s.get("profiles", [])}


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(schema_file("compose-spec.json").read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft202012Validator(schema).iter_errors(compose())]
    assert errors == []


def test_everything_compose_names_exists() -> None:
    doc = compose()
    services, volumes = doc["services"], doc.get("volumes", {})
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on {dependency}, which is no service"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (INFRA / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in volumes, f"{name} mounts volume {source}, which is not declared"
        if "build" in service:
            context = INFRA / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), f"{name}: no Dockerfile in {context}"
    used = {source.split(":")[0] for s in services.values() for source in s.get("volumes", [])}
    assert set(volumes) <= used, f"declared but unused volumes: {set(volumes) - used}"
    assert "secrets" not in doc  # secrets come from infra/.env, interpolated below


def test_every_variable_compose_interpolates_is_in_env_example_and_env_is_not_committed() -> None:
    wanted = set(re.findall(r"\$\{(\w+)", (INFRA / "compose.yaml").read_text()))
    example = {line.split("=", 1)[0] for line in (INFRA / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert wanted and wanted <= example, f"missing from infra/.env.example: {wanted - example}"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_long_running_services_restart_and_report_health() -> None:
    for name, service in long_running().items():
        assert service.get("restart") == "unless-stopped", name
        if name != "otel-collector":  # its image has no shell: its health extension serves Nomad's check
            assert service["healthcheck"]["test"][0] == "CMD", name


def test_each_bosun_service_runs_as_its_own_nats_user_and_is_checked_on_its_metrics_port() -> None:
    services, ports = compose()["services"], metrics_ports()
    users = set(re.findall(r"\$BOSUN_NATS_(\w+)_PASS", (INFRA / "nats" / "users.conf").read_text()))
    for name in SERVICES:
        service = services[name]
        assert service["command"] == ["run", name, "--config", "/etc/bosun/bosun.toml"]
        env = service["environment"]
        nats_urls = {k: v for k, v in env.items() if k.startswith("BOSUN_NATS_URL")}
        assert list(nats_urls) == [f"BOSUN_NATS_URL_{name.upper()}"], name
        assert nats_urls[f"BOSUN_NATS_URL_{name.upper()}"].startswith(f"nats://{name}:${{BOSUN_NATS_{name.upper()}_PASS")
        assert name.upper() in users
        assert ("BOSUN_DATABASE_URL" in env) == (name in DATABASE_USERS), name
        check = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{ports[name]}/metrics" in check, name
    nats_env = services["nats"]["environment"]
    assert {f"BOSUN_NATS_{u}_PASS" for u in users} <= set(nats_env)


def test_prometheus_scrapes_every_service_on_its_metrics_port() -> None:
    import yaml

    config = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {t for group in jobs["bosun"]["static_configs"] for t in group["targets"]}
    assert targets == {f"{name}:{port}" for name, port in metrics_ports().items()}
    assert set(metrics_ports()) == set(SERVICES)


def test_the_image_copies_only_what_exists_and_dockerignore_lets_through() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ") and "--from" not in line]
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    for source in copied:
        assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert any(line.startswith("!") and source.startswith(line[1:].rstrip("/")) for line in ignore), source


def test_nomad_runs_the_same_services_commands_ports_and_checks_as_compose() -> None:
    groups, services, ports = nomad_groups(), compose()["services"], metrics_ports()
    assert set(groups) == set(long_running())
    for name in SERVICES:
        group = groups[name]
        assert group["network"][0]["port"][0]["metrics"]["static"] == ports[name]
        check = group["service"][0]["check"][0]
        assert (check["type"], check["path"]) == ("http", "/metrics")
        assert port_of(" ".join(services[name]["healthcheck"]["test"])) == ports[name]
        task = group["task"][0][name]
        assert task["config"][0]["args"] == services[name]["command"]
        rendered = " ".join(t["data"] for t in task["template"])
        nats_urls = re.findall(r"BOSUN_NATS_URL\w*=nats://\w+", rendered)
        assert nats_urls == [f"BOSUN_NATS_URL_{name.upper()}=nats://{name}"], name
        assert ("BOSUN_DATABASE_URL" in rendered) == (name in DATABASE_USERS), name
    for name in set(long_running()) - set(SERVICES):
        images = [t["config"][0]["image"] for t in (next(iter(x.values())) for x in groups[name]["task"])]
        assert images == [services[name]["image"]], name


def test_nomad_files_and_secrets_it_names_exist() -> None:
    text = nomad_text()
    for path in re.findall(r'file\("([^"]+)"\)', text):
        assert (REPO / path).is_file(), f"the Nomad job reads {path}, which does not exist"
    secrets = json.loads((INFRA / "nomad" / "secrets.example.json").read_text())["Items"]
    used = set(re.findall(r"\$v\.(\w+)|\{\{ \.(\w+_pass(?:word)?) \}\}", text))
    names = {a or b for a, b in used}
    assert names and names <= set(secrets), f"missing from secrets.example.json: {names - set(secrets)}"


def test_readme_shows_both_deployments_and_keeps_its_first_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```\n(.*?)```", readme, re.S)
    assert blocks[0].startswith("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/bosun up --replay")
    assert blocks[1].strip() == ("python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && "
                                 ".venv/bin/python -m pytest")
    assert "docker compose -f infra/compose.yaml up" in readme
    assert re.search(r"^nomad job run .*infra/nomad/bosun.nomad.hcl$", readme, re.M)


@pytest.mark.parametrize("service", SERVICES)
def test_the_deployment_config_opens_each_metrics_port_to_its_network(service: str) -> None:
    from bosun.apps.config import load

    own = load(INFRA / "bosun.toml").service(service)
    assert own.metrics_addr == "0.0.0.0" and own.metrics_port == metrics_ports()[service]


def test_grafana_provisioning_finds_the_dashboards_and_the_datasource_they_name() -> None:
    import yaml

    from tests.dashboards import DASHBOARDS, generator

    grafana = compose()["services"]["grafana"]
    mounts = dict(m.split(":")[:2] for m in grafana["volumes"])
    provider = yaml.safe_load((INFRA / "grafana/provisioning/dashboards/bosun.yaml").read_text())["providers"][0]
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    datasource = yaml.safe_load((INFRA / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert datasource["datasources"][0]["uid"] == generator().PROMETHEUS.uid
    assert "BOSUN_PROMETHEUS_URL" in grafana["environment"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS / home.removeprefix(provider["options"]["path"] + "/")).is_file()


def nomad_ports(group: dict) -> dict[str, int]:
    return {name: port["static"] for network in group["network"] for each in network["port"]
            for name, port in each.items()}


def test_nomad_and_compose_publish_the_same_ports_and_check_every_group() -> None:
    import yaml

    groups, services = nomad_groups(), long_running()
    for name, service in services.items():
        published = {int(p.rsplit(":", 1)[1]) for p in service.get("ports", [])}
        assert published <= set(nomad_ports(groups[name]).values()), f"{name}: compose publishes {published}"
        checks = [c for s in groups[name]["service"] for c in s.get("check", [])]
        assert checks, f"Nomad checks nothing of {name}"
        assert name == "otel-collector" or "healthcheck" in service, f"compose checks nothing of {name}"
    # the collector: where the services send spans, where Prometheus scrapes it, where its health answers
    collector = yaml.safe_load((INFRA / "otel" / "collector.yaml").read_text())
    otlp = int(collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1])
    metrics = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["port"]
    health = int(collector["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1])
    assert nomad_ports(groups["otel-collector"]) == {"otlp": otlp, "metrics": metrics, "health": health}
    assert compose()["x-bosun-env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-collector:{otlp}"
    scraped = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    assert [f"otel-collector:{metrics}"] == [t for job in scraped if job["job_name"] == "otel-collector"
                                             for group in job["static_configs"] for t in group["targets"]]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_exports_traces_over_otlp_and_takes_its_replicas_in_both_deployments(service: str) -> None:
    env = compose()["services"][service]["environment"]
    assert env["OTEL_TRACES_EXPORTER"] == "otlp" and env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://")
    assert env["BOSUN_REPLICAS"] == "${BOSUN_REPLICAS:-1}"
    task = nomad_groups()[service]["task"][0][service]
    assert task["env"][0]["OTEL_TRACES_EXPORTER"] == "otlp"
    assert task["env"][0]["BOSUN_REPLICAS"] == "${var.replicas}"
    rendered = " ".join(t["data"] for t in task["template"])
    assert 'nomadService "bosun-otel-collector" }}OTEL_EXPORTER_OTLP_ENDPOINT=http://' in rendered


def test_compose_checks_nats_where_its_config_serves_monitoring_and_gives_it_its_store() -> None:
    conf = (INFRA / "nats" / "bosun.conf").read_text()
    [monitoring] = re.findall(r"^http:\s*[\d.]+:(\d+)", conf, re.M)
    nats = compose()["services"]["nats"]
    assert f"127.0.0.1:{monitoring}/healthz" in " ".join(nats["healthcheck"]["test"])
    assert "$BOSUN_NATS_STORE_DIR" in conf and nats["environment"]["BOSUN_NATS_STORE_DIR"].startswith("/data/")
    assert "nats-data:/data" in nats["volumes"]  # the JetStream store outlives the container
