//! The KRaft rules that tie `process.roles` to the voter set and the listeners.
//!
//! Kafka checks these at start-up (`KafkaConfig` validation); so does Troupe, with the
//! same meaning: a controller-only node is a voter that serves only its CONTROLLER
//! listener, a broker-only node is not a voter and reaches the controllers through
//! `controller.listener.names`. A node with both roles and no voters is a single node
//! (its own controller), Troupe's default.
//!
//! [`check_roles`] is a plain function of the parsed values: the loader turns its
//! [`RoleError`] into a [`super::ConfigError`] naming the key and its value.

use super::broker::ProcessRole;
use super::listener::{Listener, QuorumVoter};

/// What the role rules look at, as parsed.
#[derive(Debug, Clone, Copy)]
pub struct RoleSettings<'a> {
    pub node_id: i32,
    pub roles: &'a [ProcessRole],
    pub voters: &'a [QuorumVoter],
    pub controller_listener_names: &'a [String],
    pub listeners: &'a [Listener],
    /// `advertised.listeners` when set explicitly.
    pub advertised_listeners: Option<&'a [Listener]>,
    /// `inter.broker.listener.name` when set explicitly (upper-cased).
    pub inter_broker_listener_name: Option<&'a str>,
}

/// The key whose value breaks a rule, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleError {
    pub key: &'static str,
    pub reason: String,
}

fn err(key: &'static str, reason: impl Into<String>) -> Result<(), RoleError> {
    Err(RoleError {
        key,
        reason: reason.into(),
    })
}

fn voter_list(voters: &[QuorumVoter]) -> String {
    voters
        .iter()
        .map(|v| format!("{}@{}:{}", v.id, v.host, v.port))
        .collect::<Vec<_>>()
        .join(",")
}

/// Kafka's rules for `process.roles`, checked in the order an operator fixes them.
pub fn check_roles(s: &RoleSettings) -> Result<(), RoleError> {
    let broker = s.roles.contains(&ProcessRole::Broker);
    let controller = s.roles.contains(&ProcessRole::Controller);
    if s.roles.len() != usize::from(broker) + usize::from(controller) {
        return err("process.roles", "a role is named twice");
    }
    let is_controller_listener = |name: &str| s.controller_listener_names.iter().any(|n| n == name);
    if s.voters.is_empty() {
        return match (broker, controller) {
            // The single node: its own controller, nothing more to check.
            (true, true) => Ok(()),
            (false, true) => err(
                "controller.quorum.voters",
                "process.roles=controller needs the voter set this controller belongs to",
            ),
            _ => err(
                "controller.quorum.voters",
                "a node without the controller role needs the voters it registers with",
            ),
        };
    }
    let in_voters = s.voters.iter().any(|v| v.id == s.node_id);
    if controller && !in_voters {
        return err(
            "node.id",
            format!(
                "a node with the controller role must be one of controller.quorum.voters={}",
                voter_list(s.voters)
            ),
        );
    }
    if !controller && in_voters {
        return err(
            "node.id",
            format!(
                "process.roles=broker: a broker-only node must not be one of \
                 controller.quorum.voters={}",
                voter_list(s.voters)
            ),
        );
    }
    if s.controller_listener_names.is_empty() {
        return err(
            "controller.listener.names",
            "required with controller.quorum.voters: it names the listener (and so the \
             protocol) controllers are reached on",
        );
    }
    if controller {
        let first = &s.controller_listener_names[0];
        if !s.listeners.iter().any(|l| &l.name == first) {
            return err(
                "controller.listener.names",
                format!(
                    "a controller listens on the first of these, {first}, but listeners has no \
                     {first} listener"
                ),
            );
        }
    } else if let Some(l) = s.listeners.iter().find(|l| is_controller_listener(&l.name)) {
        return err(
            "controller.listener.names",
            format!(
                "process.roles=broker: a broker-only node must not listen on a controller \
                 listener, and listeners has {l}"
            ),
        );
    }
    if !broker {
        if let Some(l) = s
            .listeners
            .iter()
            .find(|l| !is_controller_listener(&l.name))
        {
            return err(
                "listeners",
                format!(
                    "process.roles=controller: a controller-only node serves no clients, so \
                     every listener must be in controller.listener.names, and {l} is not"
                ),
            );
        }
        if let Some(l) = s
            .advertised_listeners
            .and_then(|a| a.iter().find(|l| !is_controller_listener(&l.name)))
        {
            return err(
                "advertised.listeners",
                format!("process.roles=controller: {l} is not a controller listener"),
            );
        }
        return Ok(());
    }
    if !s.listeners.iter().any(|l| !is_controller_listener(&l.name)) {
        return err(
            "listeners",
            "a broker needs a listener for clients outside controller.listener.names",
        );
    }
    if let Some(name) = s
        .inter_broker_listener_name
        .filter(|n| is_controller_listener(n))
    {
        return err(
            "inter.broker.listener.name",
            format!("{name} is a controller listener; brokers replicate on a broker listener"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        roles: &'static str,
        node: i32,
        voters: &'static str,
        names: &'static str,
        listeners: &'static str,
        advertised: Option<&'static str>,
        inter_broker: Option<&'static str>,
    }

    const SPLIT_VOTERS: &str = "1@h:9093,2@h:9193,3@h:9293";

    fn base() -> Case {
        Case {
            roles: "broker,controller",
            node: 1,
            voters: SPLIT_VOTERS,
            names: "CONTROLLER",
            listeners: "PLAINTEXT://h:9092,CONTROLLER://h:9093",
            advertised: None,
            inter_broker: None,
        }
    }

    fn list<T>(s: &str, parse: fn(&str) -> Result<T, String>) -> Vec<T> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(|x| parse(x).unwrap())
            .collect()
    }

    fn check(c: &Case) -> Result<(), RoleError> {
        let roles: Vec<ProcessRole> = c
            .roles
            .split(',')
            .map(|r| match r {
                "controller" => ProcessRole::Controller,
                _ => ProcessRole::Broker,
            })
            .collect();
        let voters = list(c.voters, QuorumVoter::parse);
        let names: Vec<String> = list(c.names, |n| Ok(n.to_string()));
        let listeners = list(c.listeners, Listener::parse);
        let advertised = c.advertised.map(|a| list(a, Listener::parse));
        check_roles(&RoleSettings {
            node_id: c.node,
            roles: &roles,
            voters: &voters,
            controller_listener_names: &names,
            listeners: &listeners,
            advertised_listeners: advertised.as_deref(),
            inter_broker_listener_name: c.inter_broker,
        })
    }

    #[test]
    fn valid_role_layouts() {
        let cases = [
            // Combined voter, Troupe's config/cluster.
            base(),
            // Single node: both roles, no voters, no controller listener.
            Case {
                voters: "",
                names: "",
                listeners: "PLAINTEXT://h:9092",
                ..base()
            },
            // Controller-only voter.
            Case {
                roles: "controller",
                listeners: "CONTROLLER://h:9093",
                ..base()
            },
            Case {
                roles: "controller",
                listeners: "CONTROLLER://h:9093",
                advertised: Some("CONTROLLER://c1.example:9093"),
                ..base()
            },
            // Broker-only, outside the voter set.
            Case {
                roles: "broker",
                node: 4,
                listeners: "PLAINTEXT://h:9092",
                inter_broker: Some("PLAINTEXT"),
                ..base()
            },
        ];
        for c in &cases {
            assert_eq!(check(c), Ok(()), "{} node {}", c.roles, c.node);
        }
    }

    #[test]
    fn broken_role_layouts_name_the_key() {
        let cases: Vec<(Case, &str, &str)> = vec![
            (
                Case {
                    roles: "broker,broker",
                    ..base()
                },
                "process.roles",
                "twice",
            ),
            (
                Case {
                    roles: "controller",
                    voters: "",
                    listeners: "CONTROLLER://h:9093",
                    ..base()
                },
                "controller.quorum.voters",
                "process.roles=controller",
            ),
            (
                Case {
                    roles: "broker",
                    voters: "",
                    node: 4,
                    ..base()
                },
                "controller.quorum.voters",
                "registers with",
            ),
            (
                Case {
                    names: "",
                    ..base()
                },
                "controller.listener.names",
                "required",
            ),
            (
                Case { node: 4, ..base() },
                "node.id",
                "1@h:9093,2@h:9193,3@h:9293",
            ),
            (
                Case {
                    roles: "controller",
                    node: 4,
                    listeners: "CONTROLLER://h:9093",
                    ..base()
                },
                "node.id",
                "must be one of",
            ),
            (
                Case {
                    roles: "broker",
                    node: 2,
                    listeners: "PLAINTEXT://h:9092",
                    ..base()
                },
                "node.id",
                "must not be one of",
            ),
            (
                Case {
                    listeners: "PLAINTEXT://h:9092",
                    ..base()
                },
                "controller.listener.names",
                "no CONTROLLER listener",
            ),
            (
                Case {
                    roles: "broker",
                    node: 4,
                    ..base()
                },
                "controller.listener.names",
                "CONTROLLER://h:9093",
            ),
            (
                Case {
                    roles: "controller",
                    ..base()
                },
                "listeners",
                "PLAINTEXT://h:9092",
            ),
            (
                Case {
                    roles: "controller",
                    listeners: "CONTROLLER://h:9093",
                    advertised: Some("PLAINTEXT://h:9092"),
                    ..base()
                },
                "advertised.listeners",
                "PLAINTEXT://h:9092",
            ),
            (
                Case {
                    listeners: "CONTROLLER://h:9093",
                    ..base()
                },
                "listeners",
                "for clients",
            ),
            (
                Case {
                    inter_broker: Some("CONTROLLER"),
                    ..base()
                },
                "inter.broker.listener.name",
                "controller listener",
            ),
        ];
        for (c, key, words) in &cases {
            match check(c) {
                Err(e) => {
                    assert_eq!(e.key, *key, "{}: {}", c.roles, e.reason);
                    assert!(e.reason.contains(words), "{key}: {}", e.reason);
                }
                Ok(()) => panic!("{} node {} on {}: accepted", c.roles, c.node, c.listeners),
            }
        }
    }
}
