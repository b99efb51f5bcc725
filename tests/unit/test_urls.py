"""How a process finds its servers: the environment, a service's own URL, the recorded URLs."""

from __future__ import annotations

import pytest

from bosun.runtime.config import ConfigError
from bosun.runtime.urls import nats_servers, require_urls, urls_from_env_or_state, write_urls


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("BOSUN_NATS_URL", "BOSUN_DATABASE_URL", "BOSUN_NATS_URL_RISK"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_recorded_urls_are_found_and_the_environment_wins(tmp_path, clean_env):
    write_urls(tmp_path, nats_url="nats://127.0.0.1:1", database_url="postgresql://x@127.0.0.1:2/bosun")
    assert urls_from_env_or_state(tmp_path) == ("nats://127.0.0.1:1", "postgresql://x@127.0.0.1:2/bosun")
    clean_env.setenv("BOSUN_NATS_URL", "nats://127.0.0.1:3")
    assert require_urls(tmp_path) == ("nats://127.0.0.1:3", "postgresql://x@127.0.0.1:2/bosun")


def test_a_service_takes_its_own_url_first(tmp_path, clean_env):
    clean_env.setenv("BOSUN_NATS_URL", "nats://admin:a@127.0.0.1:3")
    clean_env.setenv("BOSUN_NATS_URL_RISK", "nats://risk:r@127.0.0.1:3")
    assert require_urls(tmp_path, "risk")[0] == "nats://risk:r@127.0.0.1:3"
    assert require_urls(tmp_path, "signal")[0] == "nats://admin:a@127.0.0.1:3"


def test_no_url_at_all_says_how_to_get_one(tmp_path, clean_env):
    with pytest.raises(ConfigError, match="set BOSUN_NATS_URL, or start `bosun up`"):
        require_urls(tmp_path)


def test_a_cluster_url_is_a_list_of_servers():
    assert nats_servers("nats://u:p@127.0.0.1:4222, nats://u:p@127.0.0.1:4223") == [
        "nats://u:p@127.0.0.1:4222", "nats://u:p@127.0.0.1:4223"]
