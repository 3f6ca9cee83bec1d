"""aiokafka (asyncio, pure Python, older non-flexible protocol versions): admin,
idempotent gzip produce, group consume with manual commit, end offsets and offsets by
time."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.aiokafka

BROKER_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}


def test_aiokafka_produce_group_consume_commit_and_offsets(broker, topic):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 3, 1)])
        finally:
            await admin.close()

        before = int(time.time() * 1000)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, compression_type="gzip")
        await p.start()
        try:
            sent = []
            for i in range(300):
                md = await p.send_and_wait(topic, b"v%03d" % i, partition=i % 3)
                sent.append((md.partition, md.offset))
        finally:
            await p.stop()
        for part in range(3):
            assert [o for q, o in sent if q == part] == list(range(100)), f"offsets of partition {part}"

        c = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id=topic + "-g",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await c.start()
        try:
            got = {}
            deadline = time.monotonic() + 30
            while sum(len(v) for v in got.values()) < 300 and time.monotonic() < deadline:
                for tp, msgs in (await c.getmany(timeout_ms=500)).items():
                    got.setdefault(tp.partition, []).extend(m.value for m in msgs)
            for part in range(3):
                assert got.get(part) == [b"v%03d" % i for i in range(part, 300, 3)], f"partition {part}"
            await c.commit()
            tps = [TopicPartition(topic, part) for part in range(3)]
            assert [await c.committed(tp) for tp in tps] == [100, 100, 100]
            assert await c.end_offsets(tps) == {tp: 100 for tp in tps}
            found = await c.offsets_for_times({tps[0]: before - 60_000})
            assert found[tps[0]].offset == 0
        finally:
            await c.stop()

    asyncio.run(run())
