"""WebhookNotifier against a real local HTTP server that answers as each test scripts it."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bosun.runtime.config import ConfigError
from services.alerts.config import AlertsConfig, WebhookConfig
from services.alerts.alerts import Alert
from services.alerts.webhooks import WebhookNotifier, backoff_delay, from_config, retry_after_s

WAIT_S = 10.0  # an upper bound for waits, never a synchronisation delay
FAST = {"timeout_s": 2.0, "backoff_s": 0.01, "max_backoff_s": 0.05}  # a loaded machine answers slowly, not never


class ScriptedServer:
    """Answers request n with script[n] (the last entry repeats): a status code, a
    (status, headers) pair, or "hang" (holds the request until the test ends)."""

    def __init__(self, *script: int | tuple[int, dict[str, str]] | str) -> None:
        self.script = list(script)
        self.requests: list[tuple[str, dict]] = []
        self.release = threading.Event()
        self.received = threading.Event()  # set on every request
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append((self.path, body))
                    server.received.set()
                    action = server.script[min(len(server.requests), len(server.script)) - 1]
                if action == "hang":
                    server.release.wait(WAIT_S)
                    return
                status, headers = action if isinstance(action, tuple) else (action, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/webhooks/123/s3cr3t-token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def contents(self) -> list[str]:
        with self._lock:
            return [body.get("content") or body.get("text") for _, body in self.requests]


def alert(n: int) -> Alert:
    return Alert(key=f"k{n}", severity="warning", title=f"alert {n}", text="detail", ts_event=0)


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    """Start scripted servers; all are stopped when the test ends."""
    started: list[ScriptedServer] = []

    def start(*script: int | tuple[int, dict[str, str]] | str) -> ScriptedServer:
        started.append(ScriptedServer(*script).__enter__())
        return started[-1]

    yield start
    for server in started:
        server.__exit__()


async def running(notifier: WebhookNotifier) -> asyncio.Task[None]:
    return asyncio.create_task(notifier.run())


async def settle(notifier: WebhookNotifier) -> None:
    await asyncio.wait_for(notifier.join(), WAIT_S)


async def test_two_500s_then_204_is_delivered_on_the_third_attempt(serve) -> None:
    server = serve(500, 500, 204)
    notifier = WebhookNotifier([("discord", server.url)], max_attempts=3, **FAST)
    worker = await running(notifier)
    notifier.notify(alert(1))
    await settle(notifier)
    assert len(server.requests) == 3
    assert all("alert 1" in c for c in server.contents())
    assert server.requests[0][0] == "/api/webhooks/123/s3cr3t-token"
    assert notifier.status() == {"queued": 0, "delivered": 1, "retries": 2, "failed": 0, "dropped": 0}
    await notifier.aclose()
    await asyncio.wait_for(worker, WAIT_S)


async def test_always_500_gives_up_after_max_attempts_and_the_next_alert_still_goes(serve) -> None:
    server = serve(500, 500, 500, 204)
    notifier = WebhookNotifier([("slack", server.url)], max_attempts=3, **FAST)
    worker = await running(notifier)
    notifier.notify(alert(1))
    await settle(notifier)
    assert len(server.requests) == 3
    assert notifier.failed == 1 and notifier.delivered == 0
    notifier.notify(alert(2))
    await settle(notifier)
    assert len(server.requests) == 4 and "alert 2" in server.contents()[-1]
    assert notifier.delivered == 1
    assert not worker.done()
    await notifier.aclose()


async def test_a_hanging_server_times_out_and_the_next_alert_still_goes(serve) -> None:
    server = serve("hang", 204)
    notifier = WebhookNotifier([("discord", server.url)], max_attempts=1, **FAST)
    worker = await running(notifier)
    loop = asyncio.get_running_loop()
    started = loop.time()
    notifier.notify(alert(1))
    notifier.notify(alert(2))
    await settle(notifier)
    assert loop.time() - started < WAIT_S / 2  # the hang was cut by the timeout, not released
    assert notifier.failed == 1 and notifier.delivered == 1
    assert "alert 2" in server.contents()[-1]
    await notifier.aclose()
    await asyncio.wait_for(worker, WAIT_S)


async def test_a_full_queue_drops_with_a_count_and_keeps_what_fits(serve, caplog) -> None:
    server = serve(204)
    notifier = WebhookNotifier([("discord", server.url)], max_queue=2, **FAST)
    for n in range(5):
        notifier.notify(alert(n))  # the worker is not running yet: the queue fills
    assert notifier.dropped == 3
    assert "queue full" in caplog.text
    worker = await running(notifier)
    await settle(notifier)
    assert [c.splitlines()[0] for c in server.contents()] == ["⚠️ **alert 0**", "⚠️ **alert 1**"]
    await notifier.aclose()
    notifier.notify(alert(9))
    assert notifier.dropped == 4
    assert worker.done()


async def test_a_4xx_is_not_retried_and_429_honours_retry_after(serve) -> None:
    refused = serve(400)
    throttled = serve((429, {"Retry-After": "0"}), 204)
    notifier = WebhookNotifier([("discord", refused.url), ("slack", throttled.url)], max_attempts=3, **FAST)
    worker = await running(notifier)
    notifier.notify(alert(1))
    await settle(notifier)
    assert len(refused.requests) == 1
    assert len(throttled.requests) == 2
    assert notifier.status() == {"queued": 0, "delivered": 1, "retries": 1, "failed": 1, "dropped": 0}
    await notifier.aclose()
    await asyncio.wait_for(worker, WAIT_S)


async def test_a_dead_target_does_not_hold_up_a_live_one(serve) -> None:
    dead = serve("hang")
    live = serve(204)
    notifier = WebhookNotifier([("discord", dead.url), ("slack", live.url)], max_attempts=2,
                               timeout_s=WAIT_S, backoff_s=0.01, max_backoff_s=0.05)
    worker = await running(notifier)
    notifier.notify(alert(1))
    # Posted in turn, the live target would wait for the dead one's timeout (WAIT_S) first.
    assert await asyncio.to_thread(live.received.wait, WAIT_S / 2), "the live target waited for the dead one"
    assert await asyncio.to_thread(dead.received.wait, WAIT_S / 2)
    assert notifier.failed == 0  # the dead one is still in its first, hanging attempt
    assert live.contents() == ["⚠️ *alert 1*\ndetail"]
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    await notifier.aclose()


async def test_the_url_never_reaches_a_log(serve, caplog) -> None:
    server = serve(500, 204)
    caplog.set_level(logging.DEBUG)
    notifier = from_config_with(server.url, max_attempts=2)
    worker = await running(notifier)
    notifier.notify(alert(1))
    await settle(notifier)
    assert notifier.delivered == 1
    assert "DISCORD_HOOK" in caplog.text  # logs name the variable...
    assert "HTTP Request" in caplog.text  # ...httpx logged its requests...
    assert "s3cr3t-token" not in caplog.text  # ...and the secret is in none of it
    await notifier.aclose()
    await asyncio.wait_for(worker, WAIT_S)


def from_config_with(url: str, **overrides: object) -> WebhookNotifier:
    mp = pytest.MonkeyPatch()
    mp.setenv("DISCORD_HOOK", url)
    try:
        cfg = AlertsConfig(webhooks=[WebhookConfig(kind="discord", url_env="DISCORD_HOOK")], timeout_s=0.3,
                           **overrides)  # type: ignore[arg-type]
        return from_config(cfg)
    finally:
        mp.undo()


def test_from_config_names_a_missing_variable_and_never_echoes_a_bad_url(monkeypatch) -> None:
    monkeypatch.delenv("SLACK_HOOK", raising=False)
    cfg = AlertsConfig(webhooks=[WebhookConfig(kind="slack", url_env="SLACK_HOOK")])
    with pytest.raises(ConfigError, match="SLACK_HOOK"):
        from_config(cfg)
    monkeypatch.setenv("SLACK_HOOK", "ftp://hooks.example/secret-part")
    with pytest.raises(ConfigError, match="SLACK_HOOK") as info:
        from_config(cfg)
    assert "secret-part" not in str(info.value)


def test_backoff_grows_exponentially_with_jitter_and_stays_bounded() -> None:
    assert backoff_delay(1, 0.5, 10.0, jitter=1.0) == 0.5
    assert backoff_delay(3, 0.5, 10.0, jitter=1.0) == 2.0
    assert backoff_delay(3, 0.5, 10.0, jitter=0.5) == 1.0
    assert backoff_delay(10, 0.5, 10.0, jitter=1.0) == 10.0
    assert backoff_delay(1, 0.5, 10.0, retry_after_s=4.0, jitter=1.0) == 4.0
    assert backoff_delay(1, 0.5, 10.0, retry_after_s=3600.0) == 10.0  # Retry-After is bounded too
    assert all(0.25 <= backoff_delay(1, 0.5, 10.0) < 0.5 for _ in range(100))
    assert retry_after_s("2") == 2.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2065 07:28:00 GMT") > 0  # an HTTP date, in the future
