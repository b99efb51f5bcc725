"""The alerts service's configuration: where alerts go and how often."""

from __future__ import annotations

from typing import Literal

from bosun.runtime.config import ConfigStruct


class WebhookConfig(ConfigStruct):
    kind: Literal["discord", "slack"]
    url_env: str  # the environment variable that holds the URL: webhook URLs are secrets


class AlertsConfig(ConfigStruct):
    webhooks: list[WebhookConfig] = []
    timeout_s: float = 5.0
    max_attempts: int = 3
    max_per_minute: int = 20
    dedup_window_s: float = 300.0
    max_queue: int = 1000
