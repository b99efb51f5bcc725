"""Create the streams and KV buckets of proto/streams.py, idempotently.

Missing: created. Present and equal on every field we declare: left alone. Present with a
different value: `ProvisionError` naming the stream (or bucket), the field, what we expect
and what the server has. We never update a live stream behind an operator's back.

How many copies each keeps is the deployment's choice, not the declaration's: BOSUN_REPLICAS
(1 by default; 3 on the three-node cluster of infra/nats/cluster) applies to every stream and
bucket alike, so that no part of the state has fewer copies than the rest."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from bosun.runtime.config import ConfigError
from proto.streams import BUCKETS, STREAMS, BucketSpec, StreamSpec

REPLICAS_ENV = "BOSUN_REPLICAS"
MAX_REPLICAS = 5  # JetStream's own limit


class ProvisionError(RuntimeError):
    pass


def replicas_from_env(environ: Mapping[str, str] = os.environ) -> int:
    """BOSUN_REPLICAS: copies of every stream and KV bucket, 1 to 5 (1 when unset)."""
    raw = environ.get(REPLICAS_ENV, "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_REPLICAS:
        raise ConfigError(f"{REPLICAS_ENV}={raw!r}: expected a whole number of replicas from 1 to {MAX_REPLICAS}")
    return int(raw)


def stream_config(spec: StreamSpec, replicas: int) -> api.StreamConfig:
    return api.StreamConfig(
        name=spec.name, subjects=list(spec.subjects) or None,
        sources=[api.StreamSource(name=name) for name in spec.sources] or None, retention=api.RetentionPolicy.LIMITS,
        max_age=spec.max_age_s, max_bytes=spec.max_bytes, max_msgs=spec.max_msgs,
        max_msg_size=spec.max_msg_size, duplicate_window=spec.duplicate_window_s,
        storage=api.StorageType(spec.storage), discard=api.DiscardPolicy(spec.discard), num_replicas=replicas)


def _stream_fields(spec: StreamSpec, replicas: int) -> dict[str, tuple[str, Any]]:
    """Our field name -> (StreamConfig attribute, expected value)."""
    return {
        "subjects": ("subjects", sorted(spec.subjects)),
        "max_age_s": ("max_age", spec.max_age_s),
        "max_bytes": ("max_bytes", spec.max_bytes),
        "max_msgs": ("max_msgs", spec.max_msgs),
        "max_msg_size": ("max_msg_size", spec.max_msg_size),
        "duplicate_window_s": ("duplicate_window", spec.duplicate_window_s),
        "storage": ("storage", spec.storage),
        "discard": ("discard", spec.discard),
        "sources": ("sources", sorted(spec.sources)),
        "replicas": ("num_replicas", replicas),
    }


def _bucket_fields(spec: BucketSpec, replicas: int) -> dict[str, tuple[str, Any]]:
    return {
        "replicas": ("num_replicas", replicas),
        "history": ("max_msgs_per_subject", spec.history),
        "max_bytes": ("max_bytes", spec.max_bytes),
        "max_value_size": ("max_msg_size", spec.max_value_size),
    }


def _found(config: api.StreamConfig, attr: str) -> Any:
    value = getattr(config, attr)
    if attr == "subjects":
        return sorted(value or ())
    if attr == "sources":
        return sorted(source.name for source in value or ())
    if isinstance(value, (api.StorageType, api.DiscardPolicy)):
        return value.value
    return value


def _conflicts(what: str, config: api.StreamConfig, fields: dict[str, tuple[str, Any]]) -> list[str]:
    return [f"{what}: {name} is {_found(config, attr)!r} on the server, expected {want!r} (proto/streams.py)"
            for name, (attr, want) in fields.items() if _found(config, attr) != want]


async def _ensure(js: JetStreamContext, what: str, stream: str, fields: dict[str, tuple[str, Any]],
                  create: Any) -> list[str]:
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        try:
            await create()
            return []
        except APIError as exc:
            # another service may have created it a moment ago: then compare with that
            try:
                info = await js.stream_info(stream)
            except NotFoundError:
                raise ProvisionError(f"{what}: cannot create it: {exc.description or exc}") from None
    return _conflicts(what, info.config, fields)


async def provision(js: JetStreamContext, replicas: int | None = None) -> None:
    """`replicas` None: BOSUN_REPLICAS (`replicas_from_env`)."""
    n = replicas_from_env() if replicas is None else replicas
    problems: list[str] = []
    for spec in STREAMS:
        problems += await _ensure(js, f"stream {spec.name}", spec.name, _stream_fields(spec, n),
                                  lambda spec=spec: js.add_stream(stream_config(spec, n)))
    for bucket in BUCKETS:
        problems += await _ensure(
            js, f"KV bucket {bucket.name}", f"KV_{bucket.name}", _bucket_fields(bucket, n),
            lambda b=bucket: js.create_key_value(bucket=b.name, history=b.history, max_bytes=b.max_bytes,
                                                 max_value_size=b.max_value_size, replicas=n))
    if problems:
        raise ProvisionError("JetStream does not match proto/streams.py:\n  " + "\n  ".join(problems))
