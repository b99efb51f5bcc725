"""Which OTEL_* settings make spans at all: none means no cost on the hot path."""

from __future__ import annotations

import pytest

from bosun.runtime import telemetry
from bosun.runtime.config import ConfigError


@pytest.fixture(autouse=True)
def not_tracing(monkeypatch) -> None:
    """Whatever an earlier test in this process installed (OpenTelemetry keeps the first provider)."""
    monkeypatch.setattr(telemetry, "_tracing", False)


@pytest.mark.parametrize("exporter", [None, "", "none"])
def test_no_exporter_makes_no_span(exporter) -> None:
    telemetry.setup_tracing("risk", exporter)
    assert telemetry.tracing() is False


@pytest.mark.parametrize("sampler", ["always_off", "ALWAYS_OFF "])
def test_a_sampler_that_never_samples_makes_no_span_whatever_the_exporter(monkeypatch, sampler) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    telemetry.setup_tracing("risk", "otlp")
    assert telemetry.tracing() is False


def test_an_unknown_exporter_is_refused_by_name(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER='jaeger'"):
        telemetry.setup_tracing("risk", "jaeger")
    assert telemetry.tracing() is False
