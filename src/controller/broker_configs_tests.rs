//! Dynamic broker config decisions, as tables.

use super::api::{handle, ControllerRequest, ControllerResponse, Entropy};
use super::broker_configs::alter_broker_configs;
use super::codes::*;
use super::test_support::*;
use super::topics::ConfigOp;
use super::BrokerLiveness;
use crate::config::DynamicLayers;
use crate::metadata::MetadataRecord;
use uuid::Uuid;

fn set(k: &str, v: &str) -> (String, ConfigOp) {
    (k.to_string(), ConfigOp::Set(v.to_string()))
}

#[test]
fn refused_changes_name_the_reason() {
    let img = cluster(&[(1, None)]);
    let table: &[(&str, (String, ConfigOp), i16, &str)] = &[
        (
            "",
            set("log.dirs", "/x"),
            INVALID_REQUEST,
            "Cannot update these configs dynamically: Set(log.dirs)",
        ),
        (
            "1",
            set("listeners", "PLAINTEXT://:1"),
            INVALID_REQUEST,
            "Set(listeners)",
        ),
        (
            "1",
            set("log.cleaner.backoff.ms", "10"),
            INVALID_REQUEST,
            "start-up",
        ),
        (
            "",
            set("no.such.config", "1"),
            INVALID_CONFIG,
            "Unknown broker config no.such.config",
        ),
        (
            "",
            set("log.retention.ms", "soon"),
            INVALID_CONFIG,
            "log.retention.ms",
        ),
        (
            "",
            set("log.segment.bytes", "10"),
            INVALID_CONFIG,
            "log.segment.bytes",
        ),
        (
            "x",
            set("log.retention.ms", "1000"),
            INVALID_REQUEST,
            "Invalid broker name",
        ),
        (
            "-1",
            set("log.retention.ms", "1000"),
            INVALID_REQUEST,
            "Invalid broker name",
        ),
    ];
    for (resource, op, code, msg) in table {
        let err = alter_broker_configs(&img, resource, std::slice::from_ref(op), false)
            .expect_err(&format!("{resource:?} {op:?}"));
        assert_eq!(err.0, *code, "{resource:?} {op:?}: {}", err.1);
        assert!(err.1.contains(msg), "{resource:?} {op:?}: {}", err.1);
    }
}

#[test]
fn changes_become_records_and_layers() {
    let mut img = cluster(&[(1, None), (2, None)]);
    let r = alter_broker_configs(
        &img,
        "",
        &[
            set("log.retention.ms", "1000"),
            set("log.segment.bytes", "1048576"),
        ],
        false,
    )
    .unwrap();
    assert_eq!(r.len(), 2);
    commit(&mut img, &r);
    let r = alter_broker_configs(&img, "1", &[set("log.segment.bytes", "2097152")], false).unwrap();
    commit(&mut img, &r);
    // The same value again: nothing to commit.
    assert!(
        alter_broker_configs(&img, "1", &[set("log.segment.bytes", "2097152")], false)
            .unwrap()
            .is_empty()
    );
    let broker = crate::config::BrokerConfig::default();
    let one = DynamicLayers::of(&img.broker_configs, 1)
        .topic_defaults(&broker)
        .unwrap();
    let two = DynamicLayers::of(&img.broker_configs, 2)
        .topic_defaults(&broker)
        .unwrap();
    assert_eq!((one.retention_ms, one.segment_bytes), (1000, 2_097_152));
    assert_eq!((two.retention_ms, two.segment_bytes), (1000, 1_048_576));

    // Delete on the default, replace_all on the broker (AlterConfigs): keys not named
    // are reset.
    let r = alter_broker_configs(
        &img,
        "",
        &[("log.retention.ms".into(), ConfigOp::Delete)],
        false,
    )
    .unwrap();
    assert_eq!(
        r,
        vec![MetadataRecord::BrokerConfig {
            resource: "".into(),
            key: "log.retention.ms".into(),
            value: None
        }]
    );
    commit(&mut img, &r);
    let r = alter_broker_configs(&img, "1", &[set("message.max.bytes", "5000")], true).unwrap();
    commit(&mut img, &r);
    assert_eq!(
        img.broker_configs["1"].keys().collect::<Vec<_>>(),
        vec!["message.max.bytes"]
    );
    assert_eq!(
        img.broker_configs[""].keys().collect::<Vec<_>>(),
        vec!["log.segment.bytes"]
    );
    // Removing the last key removes the layer.
    let r = alter_broker_configs(&img, "1", &[], true).unwrap();
    commit(&mut img, &r);
    assert!(!img.broker_configs.contains_key("1"));
}

struct Fixed;
impl Entropy for Fixed {
    fn topic_id(&mut self) -> Uuid {
        Uuid::from_bytes([1; 16])
    }
    fn placement_start(&mut self) -> u64 {
        0
    }
}

#[test]
fn validate_only_commits_nothing() {
    let img = cluster(&[(1, None)]);
    let mut liveness = BrokerLiveness::default();
    let req = |validate_only| ControllerRequest::AlterBrokerConfigs {
        resource: "".into(),
        ops: vec![set("log.retention.ms", "1000")],
        replace_all: false,
        validate_only,
    };
    let (records, answer) = handle(&img, &mut liveness, &cfg(), &req(true), 0, &mut Fixed);
    assert!(records.is_empty());
    assert!(matches!(
        answer,
        ControllerResponse::AlterBrokerConfigs(Ok(()))
    ));
    let (records, answer) = handle(&img, &mut liveness, &cfg(), &req(false), 0, &mut Fixed);
    assert_eq!(records.len(), 1);
    assert!(matches!(
        answer,
        ControllerResponse::AlterBrokerConfigs(Ok(()))
    ));
}
