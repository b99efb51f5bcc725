"""`bosun halt`, `bosun resume` and `bosun status` from another terminal: they find NATS
through BOSUN_NATS_URL or the URLs `bosun up` recorded."""

from __future__ import annotations

import json
import subprocess

from bosun.runtime.urls import write_urls
from proto import codec
from proto import subjects as sj
from tests.processes import bosun_argv, server_env


def bosun(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bosun_argv(*args), env=env, capture_output=True, text=True, timeout=60)


async def trading_enabled(js) -> bool:
    kv = await js.key_value(sj.CONTROL_BUCKET)
    return codec.decode_trading_enabled((await kv.get(sj.TRADING_ENABLED_KEY)).value)


async def test_halt_and_resume_flip_the_switch_and_status_shows_it(nats_url, js, tmp_path):
    env = server_env(nats_url)
    assert bosun("resume", "--state-dir", str(tmp_path), env=env).stdout.strip() == "trading ON"
    assert await trading_enabled(js) is True
    status = json.loads(bosun("status", "--json", "--state-dir", str(tmp_path), env=env).stdout)
    assert status["trading_enabled"] is True
    assert bosun("halt", "--state-dir", str(tmp_path), env=env).stdout.strip() == "trading OFF"
    assert await trading_enabled(js) is False
    assert "trading      OFF" in bosun("status", "--state-dir", str(tmp_path), env=env).stdout


async def test_the_recorded_urls_are_found_without_the_environment(nats_url, js, tmp_path):
    write_urls(tmp_path, nats_url=nats_url, database_url="postgresql://unused")
    env = {k: v for k, v in server_env(nats_url).items() if k != "BOSUN_NATS_URL"}
    assert bosun("halt", "--state-dir", str(tmp_path), env=env).returncode == 0
    assert await trading_enabled(js) is False


def test_without_a_server_it_says_how_to_get_one(tmp_path):
    env = {k: v for k, v in server_env("unused").items() if k != "BOSUN_NATS_URL"}
    done = bosun("status", "--state-dir", str(tmp_path), env=env)
    assert done.returncode == 2
    assert "set BOSUN_NATS_URL, or start `bosun up`" in done.stderr
