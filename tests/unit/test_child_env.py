"""What each child of `bosun up` sees of the environment: an allow-list, secrets only where used."""

from __future__ import annotations

from bosun.apps.child_env import service_env

ENVIRON = {
    "PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC",
    "PYTHONPATH": "/src", "OTEL_TRACES_EXPORTER": "otlp", "BOSUN_DATA_DIR": "/data",
    "BOSUN_BINANCE_API_KEY": "k", "BOSUN_BINANCE_API_SECRET": "s", "BOSUN_OKX_API_PASSWORD": "p",
    "BOSUN_NATS_URL_RISK": "nats://risk:r@h:1", "BOSUN_NATS_ADMIN_PASS": "a", "BOSUN_GITHUB_TOKEN": "t",
    "DISCORD_URL": "https://discord/hook", "BOSUN_SLACK_WEBHOOK": "https://slack/hook",
    "AWS_SECRET_ACCESS_KEY": "x", "SOMETHING_ELSE": "y", "BOSUN_DATABASE_URL": "postgresql://old",
}
WEBHOOKS = {"DISCORD_URL", "BOSUN_SLACK_WEBHOOK"}
PLAIN = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "OTEL_TRACES_EXPORTER", "BOSUN_DATA_DIR", "BOSUN_NATS_URL"}


def env(service: str) -> dict[str, str]:
    return service_env(service, ENVIRON, nats_url="nats://h:1", database_url="postgresql://h:2/bosun",
                       webhook_envs=WEBHOOKS)


def test_a_service_without_secrets_sees_only_the_plain_settings():
    assert set(env("signal")) == PLAIN
    assert env("signal")["BOSUN_NATS_URL"] == "nats://h:1"
    assert set(env("ingest")) == PLAIN


def test_execution_alone_gets_the_venue_credentials():
    assert set(env("execution")) == PLAIN | {"BOSUN_BINANCE_API_KEY", "BOSUN_BINANCE_API_SECRET",
                                             "BOSUN_OKX_API_PASSWORD", "BOSUN_DATABASE_URL"}


def test_alerts_alone_gets_its_webhook_urls():
    assert set(env("alerts")) == PLAIN | WEBHOOKS


def test_a_service_gets_its_own_nats_url_and_portfolio_and_execution_the_database():
    assert set(env("risk")) == PLAIN | {"BOSUN_NATS_URL_RISK"}
    assert env("execution")["BOSUN_DATABASE_URL"] == "postgresql://h:2/bosun"
    assert env("portfolio")["BOSUN_DATABASE_URL"] == "postgresql://h:2/bosun"
    assert set(env("portfolio")) == PLAIN | {"BOSUN_DATABASE_URL"}
