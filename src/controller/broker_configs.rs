//! Dynamic broker configs: AlterConfigs / IncrementalAlterConfigs on Kafka's BROKER
//! resource, for one broker (`"<id>"`) or the cluster-wide default (`""`). The change
//! is validated as a whole and committed as `BrokerConfig` records, which every broker
//! applies from the metadata log (see `crate::config::dynamic` for how they are read).

use super::topics::{apply_config_ops, ConfigOp};
use super::{codes, ApiError};
use crate::config::dynamic::{validate_dynamic_layer, DynamicConfigError};
use crate::metadata::{MetadataImage, MetadataRecord};
use std::collections::BTreeMap;

/// The records that take `resource`'s dynamic configs to their new set.
pub fn alter_broker_configs(
    image: &MetadataImage,
    resource: &str,
    ops: &[(String, ConfigOp)],
    replace_all: bool,
) -> Result<Vec<MetadataRecord>, ApiError> {
    // Kafka accepts any broker id here (a broker may be added later); only the form
    // of the name is checked.
    if !resource.is_empty() && resource.parse::<i32>().map_or(true, |id| id < 0) {
        return Err((
            codes::INVALID_REQUEST,
            format!(
                "Invalid broker name {resource:?}: a broker id or empty for the cluster default."
            ),
        ));
    }
    let empty = BTreeMap::new();
    let stored = image.broker_configs.get(resource).unwrap_or(&empty);
    let next = apply_config_ops(stored, ops, replace_all);
    validate_dynamic_layer(&next).map_err(|e| {
        let code = match e {
            DynamicConfigError::NotDynamic(_) | DynamicConfigError::StartupOnly(_) => {
                codes::INVALID_REQUEST
            }
            DynamicConfigError::Unknown(_) | DynamicConfigError::Invalid { .. } => {
                codes::INVALID_CONFIG
            }
        };
        (code, e.to_string())
    })?;
    let mut records: Vec<MetadataRecord> = next
        .iter()
        .filter(|(k, v)| stored.get(*k) != Some(*v))
        .map(|(k, v)| MetadataRecord::BrokerConfig {
            resource: resource.to_string(),
            key: k.clone(),
            value: Some(v.clone()),
        })
        .collect();
    records.extend(stored.keys().filter(|k| !next.contains_key(*k)).map(|k| {
        MetadataRecord::BrokerConfig {
            resource: resource.to_string(),
            key: k.clone(),
            value: None,
        }
    }));
    Ok(records)
}
