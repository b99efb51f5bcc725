"""What every config struct stands on: a frozen msgspec Struct that rejects unknown fields,
decoding with errors that name the file, the field's path and what was expected, e.g.
`bosun.toml: Expected `int`, got `str` - at `$.clients[0].capital``, and secrets from the
environment. Each service declares its own structs (`services/<name>/config.py`); the
composition root (bosun.apps.config) assembles them into the one file a person writes."""

from __future__ import annotations

import os
import re
import types
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import msgspec

T = TypeVar("T")


class ConfigError(ValueError):
    pass


class ConfigStruct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config struct."""


def decode(data: bytes | str, kind: type[T], source: str = "<config>") -> T:
    """TOML; JSON when `source` ends in .json (the effective config `bosun up` hands its children)."""
    decoder = msgspec.json.decode if source.endswith(".json") else msgspec.toml.decode
    try:
        return decoder(data, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        message = str(exc)
        if message.startswith("Invalid enum value") and " - at `" in message:
            choices = _choices_at(kind, message.rsplit(" - at `", 1)[1].rstrip("`"))
            message += f" (expected one of: {', '.join(map(repr, choices))})" if choices else ""
        raise ConfigError(f"{source}: {message}") from None


def _choices_at(root: Any, path: str) -> tuple[str, ...]:
    """The allowed values of the Literal field at a msgspec error path like `$.clients[0].venues[...].kind`."""
    kind: Any = root
    for token in re.findall(r"\.(\w+)|\[[^\]]*\]", path):
        while get_origin(kind) in (Union, types.UnionType):
            kind = next(a for a in get_args(kind) if a is not type(None))
        if token:  # a field of a struct
            kind = get_type_hints(kind).get(token)
        elif get_origin(kind) in (list, dict):  # an item of a list or a value of a table
            kind = get_args(kind)[-1]
    options = get_args(kind) if get_origin(kind) in (Union, types.UnionType) else (kind,)  # `Literal[...] | UnsetType`
    return next((get_args(k) for k in options if get_origin(k) is Literal), ())


def secret(name: str) -> str:
    """A secret from the environment, or a clear error naming the variable."""
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set (secrets come only from the environment)")
    return value
