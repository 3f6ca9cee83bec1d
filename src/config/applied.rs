//! Which settings take effect, and which are accepted but change nothing yet.
//!
//! A Kafka `server.properties` loads here unchanged, so the broker accepts keys it does
//! not act on; none of them may do so silently. [`NOT_APPLIED`] names each one with the
//! reason; the broker logs them at start-up in one line ([`not_applied_line`]), and
//! `config/server.properties` says "Not applied" next to each. The tests below walk
//! every key of the file and of `CONFIG_DEFS`: a key is either in this table, or the
//! code reads it (its field is used outside `src/config`), or the test fails; and a key
//! in the table that the runtime (`actors/src`) starts reading fails it too, so the
//! table cannot drift from the code in either direction.

use super::BrokerConfig;

/// Settings accepted but not applied: key and why.
pub static NOT_APPLIED: &[(&str, &str)] = &[
    (
        "controller.quorum.fetch.timeout.ms",
        "the Raft library times followers out by controller.quorum.election.timeout.ms",
    ),
    (
        "inter.broker.listener.name",
        "brokers have one client listener: followers fetch from the leader's advertised one",
    ),
    (
        "num.io.threads",
        "requests run in partition actors, not a handler pool",
    ),
    (
        "num.recovery.threads.per.data.dir",
        "each partition's log recovers on its own when its actor opens it",
    ),
    (
        "log.flush.offset.checkpoint.interval.ms",
        "the recovery point is checkpointed at every flush and when a log closes",
    ),
    (
        "log.segment.delete.delay.ms",
        "retired segments are deleted at once; reads in progress keep their open files",
    ),
    (
        "transactional.id.expiration.ms",
        "transactions are not implemented yet",
    ),
    (
        "transaction.max.timeout.ms",
        "transactions are not implemented yet",
    ),
    (
        "transaction.state.log.num.partitions",
        "transactions are not implemented yet",
    ),
    (
        "transaction.state.log.replication.factor",
        "transactions are not implemented yet",
    ),
    (
        "transaction.state.log.min.isr",
        "transactions are not implemented yet",
    ),
    (
        "metrics.sample.window.ms",
        "metrics are Prometheus counters and histograms: the scraper computes rates",
    ),
    (
        "metrics.num.samples",
        "metrics are Prometheus counters and histograms: the scraper computes rates",
    ),
    (
        "metrics.recording.level",
        "metrics are Prometheus counters and histograms: the scraper computes rates",
    ),
];

/// Whether `key` (canonical) is accepted but not applied.
pub fn is_applied(key: &str) -> bool {
    !NOT_APPLIED.iter().any(|(k, _)| *k == key)
}

/// The start-up line naming every setting that changes nothing, and whether one of
/// them was set explicitly (the caller then logs it as a warning).
pub fn not_applied_line(config: &BrokerConfig) -> (String, bool) {
    let keys: Vec<&str> = NOT_APPLIED.iter().map(|(k, _)| *k).collect();
    let set: Vec<&str> = keys.iter().copied().filter(|k| config.is_set(k)).collect();
    let mut line = format!(
        "settings accepted but not applied (they change nothing yet): {}",
        keys.join(", ")
    );
    if !set.is_empty() {
        line.push_str(&format!("; set in this configuration: {}", set.join(", ")));
    }
    (line, !set.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defs::{broker_def, topic_defs, CONFIG_DEFS};
    use std::path::{Path, PathBuf};

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// Every `.rs` file under `dir`.
    fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }

    /// Code that acts on settings: the runtime and the core, but not the config module
    /// itself (which declares, loads and describes every setting).
    fn code() -> Vec<(PathBuf, String)> {
        let mut all = Vec::new();
        sources(&root().join("src"), &mut all);
        sources(&root().join("actors/src"), &mut all);
        let config = root().join("src/config");
        all.into_iter()
            .filter(|(p, _)| !p.starts_with(&config))
            .collect()
    }

    /// What the code reads when a key takes effect: its typed field (`.name_with_underscores`),
    /// or for a few keys a method or check named here.
    fn needles(key: &str) -> Vec<String> {
        let special: &[(&str, &str)] = &[
            ("process.roles", ".is_controller("),
            ("offsets.retention.minutes", ".offsets_retention_ms"),
            ("replica.selector.class", ".rack_aware_replica_selector"),
            (
                "listener.security.protocol.map",
                "self.check_security_protocols(",
            ),
        ];
        if let Some((_, n)) = special.iter().find(|(k, _)| *k == key) {
            return vec![n.to_string()];
        }
        let def = broker_def(key).unwrap();
        // A topic default (or a fallback of one) acts through the topic-level field.
        let topic = def.topic.or_else(|| {
            topic_defs()
                .find(|t| t.fallbacks.contains(&def.name))
                .and_then(|t| t.topic)
        });
        let mut n = vec![
            format!(".{}", def.name.replace('.', "_")),
            // Read by name from the raw values (BrokerConfig::get).
            format!("get(\"{}\")", def.name),
        ];
        if let Some(t) = topic {
            n.push(format!(".{}", t.replace('.', "_")));
        }
        n
    }

    fn used(code: &[(PathBuf, String)], needle: &str) -> Option<PathBuf> {
        let loader = std::fs::read_to_string(root().join("src/config/load.rs")).unwrap();
        if needle.starts_with("self.") && loader.contains(needle) {
            return Some(root().join("src/config/load.rs"));
        }
        code.iter()
            .find(|(_, text)| {
                text.match_indices(needle).any(|(i, _)| {
                    let after = text[i + needle.len()..].chars().next();
                    !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                })
            })
            .map(|(p, _)| p.clone())
    }

    /// Keys of the shipped file, set or commented out (`#key=`), with the comment lines
    /// just above each.
    fn file_keys() -> Vec<(String, String)> {
        let text = std::fs::read_to_string(root().join("config/server.properties")).unwrap();
        let mut out = Vec::new();
        let mut comment = String::new();
        for line in text.lines() {
            let l = line.trim();
            let candidate = l.strip_prefix('#').unwrap_or(l);
            let is_key = candidate
                .split_once('=')
                .is_some_and(|(k, _)| !k.is_empty() && !k.contains(' ') && k.contains('.'));
            if is_key {
                let key = candidate.split_once('=').unwrap().0.to_string();
                out.push((key, comment.clone()));
            } else if l.starts_with('#') {
                comment.push_str(l);
                comment.push('\n');
            } else if l.is_empty() {
                comment.clear();
            }
        }
        out
    }

    #[test]
    fn every_key_is_applied_or_listed_as_not_applied() {
        let code = code();
        let mut keys: Vec<String> = file_keys().into_iter().map(|(k, _)| k).collect();
        keys.extend(CONFIG_DEFS.iter().map(|d| d.name.to_string()));
        keys.sort();
        keys.dedup();
        let mut problems = Vec::new();
        for key in &keys {
            let Some(def) = broker_def(key) else {
                problems.push(format!(
                    "{key}: in server.properties but not in CONFIG_DEFS"
                ));
                continue;
            };
            let found = needles(def.name).iter().find_map(|n| used(&code, n));
            match (is_applied(def.name), found) {
                (true, None) => problems.push(format!(
                    "{key}: no code reads it ({:?}); apply it or add it to NOT_APPLIED",
                    needles(def.name)
                )),
                // Only the runtime is searched here: core state machines have fields
                // of the same names (replication's replica_lag_time_max_ms) that are
                // not the broker's setting until the runtime passes it on.
                (false, Some(p)) if p.starts_with(root().join("actors")) => problems.push(format!(
                    "{key}: listed in NOT_APPLIED but read by {}; remove it from the list (and the file's note)",
                    p.display()
                )),
                _ => {}
            }
        }
        for (k, _) in NOT_APPLIED {
            if broker_def(k).is_none() {
                problems.push(format!("{k}: in NOT_APPLIED but not a known setting"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_file_says_not_applied_next_to_those_keys_only() {
        let mut problems = Vec::new();
        let keys = file_keys();
        for (key, comment) in &keys {
            let says = comment.contains("Not applied");
            let name = broker_def(key).map_or(key.as_str(), |d| d.name);
            if says == is_applied(name) {
                problems.push(format!(
                    "{key}: comment {} \"Not applied\" but the key is {}",
                    if says { "says" } else { "does not say" },
                    if is_applied(name) {
                        "applied"
                    } else {
                        "not applied"
                    }
                ));
            }
        }
        for (k, _) in NOT_APPLIED {
            if !keys.iter().any(|(f, _)| f == k) {
                problems.push(format!("{k}: not in server.properties"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_start_up_line_names_them_and_what_was_set() {
        let (line, set) = not_applied_line(&BrokerConfig::default());
        assert!(!set);
        for (k, _) in NOT_APPLIED {
            assert!(line.contains(k), "{k}");
        }
        let (c, _) = BrokerConfig::load_str("num.io.threads=4\n", "t", &[]).unwrap();
        let (line, set) = not_applied_line(&c);
        assert!(set);
        assert!(
            line.ends_with("set in this configuration: num.io.threads"),
            "{line}"
        );
    }
}
