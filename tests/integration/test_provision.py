"""Provisioning against a real nats-server: create what is missing, leave what matches,
refuse what conflicts, naming the stream (or bucket) and the field."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from bosun.runtime.embedded import EmbeddedNats
from bosun.runtime.provision import ProvisionError, provision
from proto.streams import BUCKETS, STREAMS

pytestmark = pytest.mark.integration

ALL = [s.name for s in STREAMS] + [f"KV_{b.name}" for b in BUCKETS]


async def _snapshot(js: JetStreamContext) -> dict[str, tuple[object, object]]:
    infos = {name: await js.stream_info(name) for name in ALL}
    return {name: (info.config, info.created) for name, info in infos.items()}


async def test_a_fresh_server_gets_every_stream_and_bucket_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path) as server:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await provision(js)
            first = await _snapshot(js)
            market = first["MARKET"][0]
            assert market.subjects == ["md.>"] and market.max_age == 2 * 86_400 and market.max_bytes == 2 << 30
            assert first["KV_control"][0].max_msgs_per_subject == 16
            await provision(js)
            assert await _snapshot(js) == first
        finally:
            await nc.close()


async def test_provisioning_the_session_server_again_changes_nothing(js: JetStreamContext) -> None:
    before = await _snapshot(js)
    await provision(js)
    assert await _snapshot(js) == before


async def test_conflicting_stream_and_bucket_are_refused_naming_them_and_the_field(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path) as server:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await js.add_stream(name="MARKET", subjects=["md.>"], max_age=3600, max_bytes=2 << 30,
                                max_msg_size=1 << 20, duplicate_window=120)
            await js.create_key_value(bucket="control", history=1, max_bytes=16 << 20, max_value_size=64 * 1024)
            with pytest.raises(ProvisionError) as raised:
                await provision(js)
            message = str(raised.value)
            assert "stream MARKET: max_age_s is 3600.0 on the server, expected 172800" in message
            assert "KV bucket control: history is 1 on the server, expected 16" in message
            assert "max_bytes" not in message  # only the fields that differ
            assert (await js.stream_info("MARKET")).config.max_age == 3600  # left as it was
            assert (await js.stream_info("ORDERS")).config.subjects == ["order.>"]  # the rest was created
        finally:
            await nc.close()


async def test_every_decision_is_copied_into_the_audit_stream(js: JetStreamContext) -> None:
    subject = f"risk.breach.audit{time.time_ns()}.binance.BTCUSDT"
    await js.publish(subject, b"a decision")
    deadline = time.monotonic() + 5
    while not (await js.stream_info("AUDIT", subjects_filter=subject)).state.subjects:
        assert time.monotonic() < deadline, "the AUDIT stream did not receive the copy within 5 s"
        await asyncio.sleep(0.01)  # the server copies asynchronously: poll the stored state
    message = await js.get_last_msg("AUDIT", subject)
    assert message.data == b"a decision"
