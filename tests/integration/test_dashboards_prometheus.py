"""Every query of every dashboard panel returns data from a real Prometheus (Debian's
`prometheus` package) scraping a running `bosun up --replay` with the scrape jobs of
infra/prometheus/prometheus.yml: a panel over a metric no service exports fails here. Then a
person's `bosun reduce --client demo` shows on the overview's trading state per scope."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from bosun.runtime.embedded import free_port, terminate
from tests.datafiles import BTC_1M, data_file, write_slice
from tests.dashboards import concrete, queries
from tests.infra import INFRA, SERVICES, metrics_ports
from tests.processes import bosun_argv

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")
DATA_TIMEOUT_S = 120.0
BARS = 400  # enough for the demo strategy to trade and for risk to refuse
SPEED = "3000"  # 400 minutes in 8 s: the services keep running (and scraped) after the replay


def prometheus_config(ports: dict[str, int]) -> dict:
    """infra/prometheus/prometheus.yml with each service's target on this machine's loopback,
    scraped every second; the collector's job dropped (no collector runs here)."""
    config = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] == "bosun"]
    for group in config["scrape_configs"][0]["static_configs"]:
        group["targets"] = [f"127.0.0.1:{ports[target.split(':')[0]]}" for target in group["targets"]]
    return config


def bosun_config(ports: dict[str, int]) -> str:
    """infra/bosun.toml's shape on free loopback ports."""
    assert set(metrics_ports()) == set(SERVICES)
    return "\n".join(f"[services.{name}]\nmetrics_port = {port}\n" for name, port in ports.items())


def query(url: str, expr: str) -> list:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def until(url: str, expr: str, value: str, deadline: float) -> list:
    """Poll `expr` until a series of it has `value`; the last result."""
    while True:
        result = query(url, expr)
        if any(series["value"][1] == value for series in result) or time.monotonic() > deadline:
            return result
        time.sleep(1.0)  # polling scrapes with a deadline: there is no event to wait on


def has_data(result: list) -> bool:
    """A series with a number: a quantile of no traffic is NaN, which a panel shows as nothing."""
    return any(series["value"][1] != "NaN" for series in result)


@pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary: Debian's package is not installed "
                    "(`apt-get install -y prometheus`, which .ci/run does as root)")
def test_every_dashboard_query_returns_data_from_a_running_replay(searchable_tmp_path: Path) -> None:
    ports = {name: free_port() for name in SERVICES}
    (searchable_tmp_path / "bosun.toml").write_text(bosun_config(ports))
    (searchable_tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(ports)))
    replay = write_slice(data_file(BTC_1M), searchable_tmp_path / "BTCUSDT_1m.csv", BARS)
    env = {k: v for k, v in os.environ.items() if k not in ("BOSUN_NATS_URL", "BOSUN_DATABASE_URL")}
    web = f"127.0.0.1:{free_port()}"
    with open(searchable_tmp_path / "up.out", "wb") as up_out, open(searchable_tmp_path / "prom.out", "wb") as prom_out:
        up = subprocess.Popen(bosun_argv("up", "--config", str(searchable_tmp_path / "bosun.toml"), "--state-dir",
                                         str(searchable_tmp_path / "state"), "--replay", str(replay), "--speed", SPEED),
                              env=env, stdout=up_out, stderr=up_out)
        prometheus = subprocess.Popen([PROMETHEUS, f"--config.file={searchable_tmp_path / 'prometheus.yml'}",
                                       f"--storage.tsdb.path={searchable_tmp_path / 'tsdb'}",
                                       f"--web.listen-address={web}"], stdout=prom_out, stderr=prom_out)
        try:
            pending = {(d, title, concrete(expr)) for d, title, expr in queries()}
            deadline = time.monotonic() + DATA_TIMEOUT_S
            while pending and time.monotonic() < deadline:
                assert up.poll() is None, (searchable_tmp_path / "up.out").read_text()
                assert prometheus.poll() is None, (searchable_tmp_path / "prom.out").read_text()
                try:
                    pending = {q for q in pending if not has_data(query(f"http://{web}", q[2]))}
                except OSError:  # Prometheus not listening yet
                    pass
                time.sleep(1.0)  # polling scrapes with a deadline: there is no event to wait on
            assert not pending, "no data in %ds for:\n  %s" % (
                DATA_TIMEOUT_S, "\n  ".join(f"{d} / {title}: {expr}" for d, title, expr in sorted(pending)))

            [scopes] = [expr for d, title, expr in queries() if (d, title) == ("overview", "Trading state per scope")]
            shown = {s["metric"]["scope"]: s["value"][1] for s in query(f"http://{web}", scopes)}
            assert shown["global"] == "0" and shown["client.demo"] == "0", shown  # trading: resumed by `bosun up`
            reduce = subprocess.run(bosun_argv("reduce", "--client", "demo", "--config",
                                               str(searchable_tmp_path / "bosun.toml"), "--state-dir",
                                               str(searchable_tmp_path / "state")),
                                    env=env, capture_output=True, text=True, timeout=60)
            assert reduce.returncode == 0, reduce.stdout + reduce.stderr
            result = until(f"http://{web}", 'bosun_scope_state{scope="client.demo"}', "1",
                           time.monotonic() + DATA_TIMEOUT_S)
            assert [s["value"][1] for s in result] == ["1"], result  # REDUCING
        finally:
            terminate(prometheus, signal.SIGTERM, timeout_s=15)
            terminate(up, signal.SIGINT, timeout_s=30)
