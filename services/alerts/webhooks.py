"""Alerts out to Discord/Slack webhooks over HTTP, without ever holding up the service.

`notify()` only enqueues on a bounded queue (full: the alert is dropped and counted).
One worker, `run()`, posts each alert to every target at once; each post has a timeout
and at most `max_attempts` tries, retrying connection errors, timeouts, 5xx and 429 with
exponential backoff and jitter (a Retry-After is honoured up to `max_backoff_s`). So a
dead target delays the next alert by a bounded time and never the other targets.

Webhook URLs are secrets: they are read from the environment, never logged (logs name
the kind and the environment variable), and hidden from httpx's own request log."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal, NamedTuple

import httpx
import msgspec

from bosun.runtime.config import ConfigError, secret
from services.alerts.config import AlertsConfig
from services.alerts.alerts import Alert, discord_payload, slack_payload

log = logging.getLogger("bosun.alerts")

Kind = Literal["discord", "slack"]
PAYLOADS: dict[str, Callable[[Alert], dict[str, Any]]] = {"discord": discord_payload, "slack": slack_payload}
_HEADERS = {"Content-Type": "application/json"}
_json = msgspec.json.Encoder()


class Target(NamedTuple):
    kind: Kind
    url: str
    label: str = ""  # how logs name it: the environment variable, never the URL


def backoff_delay(attempt: int, base_s: float, cap_s: float, retry_after_s: float | None = None,
                  jitter: float | None = None) -> float:
    """Seconds to wait after failed try number `attempt` (1-based): base * 2^(attempt-1),
    scaled by a jitter in [0.5, 1) so that senders spread out, at least a Retry-After,
    never more than `cap_s`."""
    scale = random.uniform(0.5, 1.0) if jitter is None else jitter
    delay = base_s * 2 ** (attempt - 1) * scale
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return max(0.0, min(cap_s, delay))


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header: seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


class _HideUrls(logging.Filter):
    """httpx logs every request with its URL at INFO; a webhook URL must not reach a log."""

    def __init__(self, targets: Iterable[Target]) -> None:
        super().__init__()
        # Both spellings: httpx logs the URL as it normalised it.
        self._names = {url: t.label for t in targets for url in (t.url, str(httpx.URL(t.url)))}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = message
        for url, label in self._names.items():
            hidden = hidden.replace(url, f"<webhook {label}>")
        if hidden != message:
            record.msg, record.args = hidden, ()
        return True


class WebhookNotifier:
    def __init__(self, targets: Iterable[tuple[str, str] | Target], *, timeout_s: float = 5.0,
                 max_attempts: int = 3, max_queue: int = 1000, backoff_s: float = 0.5,
                 max_backoff_s: float = 10.0) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if backoff_s < 0 or max_backoff_s < 0:
            raise ValueError(f"backoff_s and max_backoff_s must be >= 0, got {backoff_s}, {max_backoff_s}")
        self.targets = [_checked(Target(*t), i) for i, t in enumerate(targets)]
        self.timeout_s, self.max_attempts, self.max_queue = timeout_s, max_attempts, max_queue
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        # One slot beyond max_queue is kept for the stop marker that aclose() puts.
        self._queue: asyncio.Queue[Alert | None] = asyncio.Queue(max_queue + 1)
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self._hide_urls = _HideUrls(self.targets)
        logging.getLogger("httpx").addFilter(self._hide_urls)
        self._closed = False
        self._drain_deadline: float | None = None
        self._running = False
        self._stopped = asyncio.Event()
        self.delivered = 0  # successful posts (one per alert per target)
        self.retries = 0
        self.failed = 0  # posts given up: attempts exhausted, or refused with a 4xx
        self.dropped = 0  # alerts never attempted: queue full, or closed

    # --- Notifier

    def notify(self, alert: Alert) -> None:
        if self._closed or self._queue.qsize() >= self.max_queue:
            self.dropped += 1
            log.warning("alert dropped (%s): %s [%s] (%d dropped so far)",
                        "notifier closed" if self._closed else f"queue full at {self.max_queue}",
                        alert.title, alert.key, self.dropped)
            return
        self._queue.put_nowait(alert)

    # --- worker

    async def run(self) -> None:
        """Deliver queued alerts until aclose(); nothing but cancellation leaves it."""
        self._running = True
        try:
            while (alert := await self._queue.get()) is not None:
                try:
                    if self._drain_deadline is not None and time.monotonic() > self._drain_deadline:
                        self.dropped += 1
                        log.warning("alert dropped (shutting down): %s [%s]", alert.title, alert.key)
                    else:
                        await asyncio.gather(*(self._deliver(t, alert) for t in self.targets))
                finally:
                    self._queue.task_done()
            self._queue.task_done()
        finally:
            self._running = False
            self._stopped.set()

    async def join(self) -> None:
        """Wait until every alert queued so far has been delivered or given up."""
        await self._queue.join()

    async def aclose(self, drain_s: float = 5.0) -> None:
        """Take no more alerts; deliver what is queued for up to `drain_s` (plus the
        bounded time of a post in flight), count the rest as dropped; close the client."""
        if not self._closed:
            self._closed = True
            self._drain_deadline = time.monotonic() + drain_s
            self._queue.put_nowait(None)
            if self._running:
                await self._stopped.wait()
            await self._client.aclose()
            logging.getLogger("httpx").removeFilter(self._hide_urls)

    def status(self) -> dict[str, int]:
        return {"queued": self._queue.qsize(), "delivered": self.delivered, "retries": self.retries,
                "failed": self.failed, "dropped": self.dropped}

    async def _deliver(self, target: Target, alert: Alert) -> None:
        try:
            body = _json.encode(PAYLOADS[target.kind](alert))
            for attempt in range(1, self.max_attempts + 1):
                wait_hint: float | None = None
                try:
                    async with asyncio.timeout(self.timeout_s):  # a hard bound over all httpx phases
                        response = await self._client.post(target.url, content=body, headers=_HEADERS)
                except (httpx.TransportError, TimeoutError) as exc:
                    reason = f"timed out after {self.timeout_s}s" if isinstance(
                        exc, (TimeoutError, httpx.TimeoutException)) else type(exc).__name__
                else:
                    status = response.status_code
                    if 200 <= status < 300:
                        self.delivered += 1
                        return
                    if status != 429 and status < 500:
                        self.failed += 1
                        log.error("webhook %s (%s) refused alert %s with HTTP %d; not retried",
                                  target.label, target.kind, alert.key, status)
                        return
                    reason = f"HTTP {status}"
                    wait_hint = retry_after_s(response.headers.get("Retry-After"))
                if attempt == self.max_attempts:
                    break
                delay = backoff_delay(attempt, self.backoff_s, self.max_backoff_s, wait_hint)
                log.warning("webhook %s (%s) attempt %d/%d for alert %s failed: %s; retrying in %.2fs",
                            target.label, target.kind, attempt, self.max_attempts, alert.key, reason, delay)
                self.retries += 1
                await asyncio.sleep(delay)
            self.failed += 1
            log.error("webhook %s (%s) gave up on alert %s after %d attempts: %s",
                      target.label, target.kind, alert.key, self.max_attempts, reason)
        except Exception as exc:  # noqa: BLE001 - a broken target must never stop the worker
            self.failed += 1
            # The type only: an exception's text may carry the URL.
            log.error("webhook %s (%s) failed on alert %s: %s", target.label, target.kind,
                      alert.key, type(exc).__name__)


def _checked(target: Target, index: int) -> Target:
    label = target.label or f"{target.kind}#{index}"
    if target.kind not in PAYLOADS:
        raise ConfigError(f"webhook {label}: kind {target.kind!r} is not one of {', '.join(PAYLOADS)}")
    try:
        scheme = httpx.URL(target.url).scheme
    except httpx.InvalidURL:
        scheme = ""
    if scheme not in ("http", "https"):
        raise ConfigError(f"webhook {label} ({target.kind}): the URL is not an http(s) URL")
    return target._replace(label=label)


def from_config(alerts_cfg: AlertsConfig) -> WebhookNotifier:
    """A notifier for the configured webhooks; each URL read now from its environment
    variable, so a missing one fails at start naming the variable."""
    targets = [Target(w.kind, secret(w.url_env), w.url_env) for w in alerts_cfg.webhooks]
    return WebhookNotifier(targets, timeout_s=alerts_cfg.timeout_s, max_attempts=alerts_cfg.max_attempts,
                           max_queue=alerts_cfg.max_queue)
