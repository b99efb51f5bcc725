"""BOSUN_REPLICAS: one number of copies for every stream and KV bucket, checked at start."""

from __future__ import annotations

import pytest

from bosun.runtime.config import ConfigError
from bosun.runtime.provision import _bucket_fields, _stream_fields, replicas_from_env, stream_config
from proto.streams import BUCKETS, STREAMS


def test_unset_or_blank_is_one_replica() -> None:
    assert replicas_from_env({}) == 1
    assert replicas_from_env({"BOSUN_REPLICAS": " "}) == 1


def test_three_replicas_reach_every_stream_and_bucket_and_are_compared_on_start() -> None:
    n = replicas_from_env({"BOSUN_REPLICAS": "3"})
    assert n == 3
    assert {stream_config(spec, n).num_replicas for spec in STREAMS} == {3}
    assert all(_stream_fields(spec, n)["replicas"] == ("num_replicas", 3) for spec in STREAMS)
    assert all(_bucket_fields(bucket, n)["replicas"] == ("num_replicas", 3) for bucket in BUCKETS)


@pytest.mark.parametrize("raw", ["0", "6", "three", "-1", "2.5"])
def test_a_bad_count_names_the_variable_and_the_range(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"BOSUN_REPLICAS=.*from 1 to 5"):
        replicas_from_env({"BOSUN_REPLICAS": raw})
