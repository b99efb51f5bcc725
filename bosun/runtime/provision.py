"""Create the streams and KV buckets of proto/streams.py, idempotently.

Missing: created. Present and equal on every field we declare: left alone. Present with a
different value: `ProvisionError` naming the stream (or bucket), the field, what we expect
and what the server has. We never update a live stream behind an operator's back."""

from __future__ import annotations

from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from proto.streams import BUCKETS, STREAMS, BucketSpec, StreamSpec


class ProvisionError(RuntimeError):
    pass


def _stream_fields(spec: StreamSpec) -> dict[str, tuple[str, Any]]:
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
    }


def _bucket_fields(spec: BucketSpec) -> dict[str, tuple[str, Any]]:
    return {
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


async def provision(js: JetStreamContext) -> None:
    problems: list[str] = []
    for spec in STREAMS:
        config = api.StreamConfig(
            name=spec.name, subjects=list(spec.subjects) or None,
            sources=[api.StreamSource(name=name) for name in spec.sources] or None, retention=api.RetentionPolicy.LIMITS,
            max_age=spec.max_age_s, max_bytes=spec.max_bytes, max_msgs=spec.max_msgs,
            max_msg_size=spec.max_msg_size, duplicate_window=spec.duplicate_window_s,
            storage=api.StorageType(spec.storage), discard=api.DiscardPolicy(spec.discard))
        problems += await _ensure(js, f"stream {spec.name}", spec.name, _stream_fields(spec),
                                  lambda config=config: js.add_stream(config))
    for bucket in BUCKETS:
        problems += await _ensure(
            js, f"KV bucket {bucket.name}", f"KV_{bucket.name}", _bucket_fields(bucket),
            lambda b=bucket: js.create_key_value(bucket=b.name, history=b.history, max_bytes=b.max_bytes,
                                                 max_value_size=b.max_value_size))
    if problems:
        raise ProvisionError("JetStream does not match proto/streams.py:\n  " + "\n  ".join(problems))
