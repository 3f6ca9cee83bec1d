"""Admin APIs through confluent-kafka's AdminClient (librdkafka): Metadata,
CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, AlterConfigs,
IncrementalAlterConfigs, DescribeCluster."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)

from harness import create_topic, produce, topic_partitions, wait_for, watermarks

pytestmark = pytest.mark.confluent

TIMEOUT = 15


def error_code(exc_info) -> int:
    err = exc_info.value.args[0]
    assert isinstance(err, KafkaError), f"expected a KafkaError, got {err!r}"
    return err.code()


def source(entry) -> int:
    """A config entry's source as its protocol number (enum or int, by client version)."""
    return getattr(entry.source, "value", entry.source)


def describe_topic_configs(admin, name: str) -> dict:
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    return admin.describe_configs([res], request_timeout=TIMEOUT)[res].result(TIMEOUT)


def test_metadata_lists_broker_one_with_its_address(broker, admin):
    md = admin.list_topics(timeout=TIMEOUT)
    assert set(md.brokers) == {1}, md.brokers
    b = md.brokers[1]
    assert (b.id, b.host, b.port) == (1, broker.host, broker.port)
    assert md.controller_id in (1, -1)
    # librdkafka reports -1 when the answer came over the bootstrap connection.
    assert md.orig_broker_id in (1, -1)


def test_create_topic_with_partitions_and_configs(broker, admin, topic):
    fut = admin.create_topics(
        [NewTopic(topic, num_partitions=3, replication_factor=1, config={"retention.ms": "3600000", "cleanup.policy": "delete"})],
        request_timeout=TIMEOUT,
    )
    assert fut[topic].result(TIMEOUT) is None
    md = admin.list_topics(timeout=TIMEOUT)
    t = md.topics[topic]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2]
    for p in t.partitions.values():
        assert p.leader == 1
        assert p.replicas == [1]
        assert p.isrs == [1]
    cfg = describe_topic_configs(admin, topic)
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["cleanup.policy"].value == "delete"


def test_create_existing_topic_is_topic_already_exists(admin, topic):
    create_topic(admin, topic)
    fut = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as e:
        fut[topic].result(TIMEOUT)
    assert error_code(e) == KafkaError.TOPIC_ALREADY_EXISTS


@pytest.mark.parametrize("bad_name", ["bad/name", "spaces are bad", "x" * 250, ".."])
def test_create_topic_with_invalid_name_is_rejected(admin, bad_name):
    fut = admin.create_topics([NewTopic(bad_name, num_partitions=1, replication_factor=1)], request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as e:
        fut[bad_name].result(TIMEOUT)
    assert error_code(e) == KafkaError.TOPIC_EXCEPTION  # INVALID_TOPIC_EXCEPTION (17)
    assert bad_name not in admin.list_topics(timeout=TIMEOUT).topics


def test_create_topic_with_invalid_config_is_rejected(admin, topic):
    fut = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1, config={"retention.ms": "not-a-number"})],
        request_timeout=TIMEOUT,
    )
    with pytest.raises(KafkaException) as e:
        fut[topic].result(TIMEOUT)
    assert error_code(e) == KafkaError.INVALID_CONFIG
    assert topic not in admin.list_topics(timeout=TIMEOUT).topics


def test_describe_configs_shows_override_and_defaults(admin, topic):
    create_topic(admin, topic, config={"retention.ms": "123456789"})
    cfg = describe_topic_configs(admin, topic)
    over = cfg["retention.ms"]
    assert over.value == "123456789"
    assert over.is_default is False
    assert source(over) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # Defaults come back too, with Kafka's default values.
    for key, default in [("max.message.bytes", "1048588"), ("cleanup.policy", "delete"), ("segment.bytes", "1073741824")]:
        assert key in cfg, f"{key} missing from DescribeConfigs; got {sorted(cfg)}"
        assert cfg[key].value == default, (key, cfg[key].value)
        assert source(cfg[key]) != ConfigSource.DYNAMIC_TOPIC_CONFIG.value, key


def test_describe_broker_configs(admin):
    res = ConfigResource(ConfigResource.Type.BROKER, "1")
    cfg = admin.describe_configs([res], request_timeout=TIMEOUT)[res].result(TIMEOUT)
    assert "log.retention.hours" in cfg or "log.retention.ms" in cfg, sorted(cfg)[:30]
    assert cfg["num.partitions"].value == "1"


def test_incremental_alter_configs_changes_retention(admin, topic):
    create_topic(admin, topic)
    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)],
    )
    admin.incremental_alter_configs([res], request_timeout=TIMEOUT)[res].result(TIMEOUT)
    assert describe_topic_configs(admin, topic)["retention.ms"].value == "7200000"

    # DELETE returns the key to its default.
    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)],
    )
    admin.incremental_alter_configs([res], request_timeout=TIMEOUT)[res].result(TIMEOUT)
    entry = describe_topic_configs(admin, topic)["retention.ms"]
    assert entry.value == "604800000"
    assert source(entry) != ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def test_incremental_alter_configs_rejects_invalid_value(admin, topic):
    create_topic(admin, topic, config={"retention.ms": "5000000"})
    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("retention.ms", "banana", incremental_operation=AlterConfigOpType.SET)],
    )
    with pytest.raises(KafkaException) as e:
        admin.incremental_alter_configs([res], request_timeout=TIMEOUT)[res].result(TIMEOUT)
    assert error_code(e) == KafkaError.INVALID_CONFIG
    assert describe_topic_configs(admin, topic)["retention.ms"].value == "5000000"


def test_alter_configs_changes_retention_and_rejects_invalid(admin, topic):
    create_topic(admin, topic)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "86400000"})
    admin.alter_configs([res], request_timeout=TIMEOUT)[res].result(TIMEOUT)
    assert describe_topic_configs(admin, topic)["retention.ms"].value == "86400000"

    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "-5x"})
    with pytest.raises(KafkaException) as e:
        admin.alter_configs([bad], request_timeout=TIMEOUT)[bad].result(TIMEOUT)
    assert error_code(e) == KafkaError.INVALID_CONFIG
    assert describe_topic_configs(admin, topic)["retention.ms"].value == "86400000"


def test_create_partitions_grows_one_to_three(broker, admin, topic):
    create_topic(admin, topic, partitions=1)
    fut = admin.create_partitions([NewPartitions(topic, 3)], request_timeout=TIMEOUT)
    fut[topic].result(TIMEOUT)
    wait_for(lambda: topic_partitions(admin, topic) == 3, 10, "3 partitions in metadata")
    # The new partitions take writes.
    reports = produce(broker.bootstrap, topic, [(None, b"to-p2")], partition=2)
    assert (reports[0][1], reports[0][2]) == (2, 0)


def test_create_partitions_cannot_shrink(admin, topic):
    create_topic(admin, topic, partitions=3)
    fut = admin.create_partitions([NewPartitions(topic, 2)], request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as e:
        fut[topic].result(TIMEOUT)
    assert error_code(e) == KafkaError.INVALID_PARTITIONS
    assert topic_partitions(admin, topic) == 3


def test_delete_topic_then_recreate_is_empty(broker, admin, topic):
    create_topic(admin, topic)
    produce(broker.bootstrap, topic, [(None, b"m%d" % i) for i in range(10)])
    assert watermarks(broker.bootstrap, topic) == (0, 10)

    admin.delete_topics([topic], request_timeout=TIMEOUT)[topic].result(TIMEOUT)
    wait_for(lambda: topic not in admin.list_topics(timeout=TIMEOUT).topics, 10, f"{topic} gone from metadata")

    create_topic(admin, topic)
    assert watermarks(broker.bootstrap, topic) == (0, 0)


def test_deleted_topic_fires_no_timer_and_logs_no_error(make_broker, topic):
    """A deleted topic's partitions stop for good: no retention or cleaner tick of theirs
    fires on the closed logs afterwards (that logged `storage IO error, restarting log
    ... log is offline (closed)` at ERROR and restarted the log, once per tick)."""
    from confluent_kafka.admin import AdminClient

    b = make_broker({"log.retention.check.interval.ms": "100", "log.cleaner.backoff.ms": "100"})
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    compacted = topic + "-c"
    create_topic(admin, topic, partitions=3)
    create_topic(admin, compacted, partitions=2, config={"cleanup.policy": "compact"})
    produce(b.bootstrap, topic, [(None, b"m%d" % i) for i in range(30)])
    produce(b.bootstrap, compacted, [(b"k%d" % (i % 3), b"m%d" % i) for i in range(30)])
    mark = len(b.log_text())
    futures = admin.delete_topics([topic, compacted], request_timeout=TIMEOUT)
    for f in futures.values():
        f.result(TIMEOUT)
    wait_for(
        lambda: not {topic, compacted} & set(admin.list_topics(timeout=TIMEOUT).topics),
        10,
        "deleted topics gone from metadata",
    )
    # Absence can only be shown over a window: 2 s is 20 ticks of each timer.
    time.sleep(2.0)
    assert b.is_running()
    after = b.log_text()[mark:]
    assert "stopping partition" in after, after
    bad = [line for line in after.splitlines() if " ERROR " in line or "restarting" in line]
    assert not bad, "after the delete:\n" + "\n".join(bad[:10])


def test_delete_unknown_topic_is_unknown_topic_or_partition(admin, topic):
    fut = admin.delete_topics([topic], request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as e:
        fut[topic].result(TIMEOUT)
    assert error_code(e) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_cluster(broker, admin):
    if not hasattr(admin, "describe_cluster"):
        pytest.skip("this confluent-kafka has no describe_cluster")
    desc = admin.describe_cluster(request_timeout=TIMEOUT).result(TIMEOUT)
    assert [(n.id, n.host, n.port) for n in desc.nodes] == [(1, broker.host, broker.port)]
    assert desc.controller is not None and desc.controller.id == 1
    assert desc.cluster_id


# Kafka's operations per resource type (AclEntry.supportedOperations): with no ACLs,
# a caller that asks is told it may perform all of them.
TOPIC_OPERATIONS = {"READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"}
CLUSTER_OPERATIONS = {"CREATE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "ALTER", "DESCRIBE"}


def operation_names(ops) -> set[str] | None:
    return None if ops is None else {op.name for op in ops}


def test_describe_cluster_authorized_operations(admin):
    if not hasattr(admin, "describe_cluster"):
        pytest.skip("this confluent-kafka has no describe_cluster")
    asked = admin.describe_cluster(include_authorized_operations=True, request_timeout=TIMEOUT).result(TIMEOUT)
    assert operation_names(asked.authorized_operations) == CLUSTER_OPERATIONS
    # Not asked: Kafka's sentinel, which the client shows as no list at all.
    plain = admin.describe_cluster(request_timeout=TIMEOUT).result(TIMEOUT)
    assert plain.authorized_operations is None


def test_describe_topics_authorized_operations(admin, topic):
    from confluent_kafka import TopicCollection

    if not hasattr(admin, "describe_topics"):
        pytest.skip("this confluent-kafka has no describe_topics")
    create_topic(admin, topic, partitions=2)
    asked = admin.describe_topics(
        TopicCollection([topic]), include_authorized_operations=True, request_timeout=TIMEOUT
    )[topic].result(TIMEOUT)
    assert len(asked.partitions) == 2
    assert operation_names(asked.authorized_operations) == TOPIC_OPERATIONS
    plain = admin.describe_topics(TopicCollection([topic]), request_timeout=TIMEOUT)[topic].result(TIMEOUT)
    assert plain.authorized_operations is None
