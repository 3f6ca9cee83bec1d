//! Decisions behind the operations endpoints (`troupe-actors`' `metrics` module): when
//! a node is ready to serve (`/health/ready`), as a plain function of what it knows.
//! Brokers and controller-only nodes share it; the parts only a broker has are in
//! [`BrokerState`].

/// A broker's standing in the metadata image it applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// No registration of this node in the image.
    Unregistered,
    /// Registered, but fenced by the controller (missed heartbeats, or shut down).
    Fenced,
    Live,
}

/// What only a broker adds to readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerState {
    /// Cluster mode: this node's registration; `None` on a single node (it registers
    /// nothing: it is its own controller).
    pub registration: Option<Registration>,
    /// Partition replicas this broker hosts, and how many of them are not open yet.
    pub hosted: usize,
    pub loading: usize,
}

/// What a node knows when asked whether it is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeState {
    pub node_id: i32,
    /// Offset of the last metadata record this node applied (-1: none yet).
    pub applied_offset: i64,
    /// Cluster mode: the offset of the latest committed metadata this node received
    /// from the quorum (its state machine's image); `None` on a single node, where the
    /// controller applies each record before answering.
    pub committed_offset: Option<i64>,
    /// The active controller as this node knows it.
    pub controller: Option<i32>,
    /// `None` on a controller-only node.
    pub broker: Option<BrokerState>,
}

/// `Ok(one line)` when the node is ready, else every reason it is not.
///
/// * every node: it knows the active controller, and has applied the committed
///   metadata it received;
/// * a broker also: it has applied some metadata at all, is registered and unfenced
///   (cluster mode), and every partition it hosts is open.
pub fn readiness(s: &NodeState) -> Result<String, Vec<String>> {
    let mut missing = Vec::new();
    if s.broker.is_some() && s.applied_offset < 0 {
        missing.push("no metadata applied yet".to_string());
    }
    if let Some(committed) = s.committed_offset {
        if s.applied_offset < committed {
            missing.push(format!(
                "metadata applied up to offset {} of {committed}",
                s.applied_offset
            ));
        }
    }
    if let Some(BrokerState {
        registration: Some(r),
        ..
    }) = s.broker
    {
        match r {
            Registration::Unregistered => {
                missing.push(format!("broker {} is not registered", s.node_id))
            }
            Registration::Fenced => missing.push(format!("broker {} is fenced", s.node_id)),
            Registration::Live => {}
        }
    }
    if s.controller.is_none() {
        missing.push("no active controller known".to_string());
    }
    if let Some(b) = s.broker {
        if b.loading > 0 {
            missing.push(format!(
                "{} of {} partitions not serving yet",
                b.loading, b.hosted
            ));
        }
    }
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(match (s.broker, s.controller) {
        (Some(b), _) => format!(
            "ready: metadata offset {}, {} partitions serving",
            s.applied_offset, b.hosted
        ),
        (None, Some(c)) if c == s.node_id => format!(
            "ready: metadata offset {}, this node is the active controller",
            s.applied_offset
        ),
        (None, c) => format!(
            "ready: metadata offset {}, following active controller {}",
            s.applied_offset,
            c.unwrap_or(-1)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(registration: Option<Registration>, hosted: usize, loading: usize) -> BrokerState {
        BrokerState {
            registration,
            hosted,
            loading,
        }
    }

    /// (applied, committed, controller, broker part) -> the Ok line or the reasons.
    type Case = (
        i64,
        Option<i64>,
        Option<i32>,
        Option<BrokerState>,
        Result<&'static str, Vec<&'static str>>,
    );

    #[test]
    fn readiness_table() {
        use Registration::*;
        let live = Some(broker(Some(Live), 3, 0));
        let cases: Vec<Case> = vec![
            // Single node: no quorum, no registration.
            (
                5,
                None,
                Some(1),
                Some(broker(None, 2, 0)),
                Ok("ready: metadata offset 5, 2 partitions serving"),
            ),
            (
                -1,
                None,
                Some(1),
                Some(broker(None, 0, 0)),
                Err(vec!["no metadata applied yet"]),
            ),
            (
                5,
                None,
                Some(1),
                Some(broker(None, 4, 1)),
                Err(vec!["1 of 4 partitions not serving yet"]),
            ),
            // Broker of a cluster.
            (
                9,
                Some(9),
                Some(2),
                live,
                Ok("ready: metadata offset 9, 3 partitions serving"),
            ),
            (
                7,
                Some(9),
                Some(2),
                live,
                Err(vec!["metadata applied up to offset 7 of 9"]),
            ),
            (
                9,
                Some(9),
                Some(2),
                Some(broker(Some(Unregistered), 0, 0)),
                Err(vec!["broker 1 is not registered"]),
            ),
            (
                9,
                Some(9),
                Some(2),
                Some(broker(Some(Fenced), 3, 0)),
                Err(vec!["broker 1 is fenced"]),
            ),
            (
                9,
                Some(9),
                None,
                live,
                Err(vec!["no active controller known"]),
            ),
            // Controller-only node: leader known and committed metadata applied; an
            // empty metadata log is no reason to wait.
            (
                -1,
                Some(-1),
                Some(1),
                None,
                Ok("ready: metadata offset -1, this node is the active controller"),
            ),
            (
                12,
                Some(12),
                Some(3),
                None,
                Ok("ready: metadata offset 12, following active controller 3"),
            ),
            (
                10,
                Some(12),
                Some(3),
                None,
                Err(vec!["metadata applied up to offset 10 of 12"]),
            ),
            (
                12,
                Some(12),
                None,
                None,
                Err(vec!["no active controller known"]),
            ),
            (
                3,
                Some(12),
                None,
                None,
                Err(vec![
                    "metadata applied up to offset 3 of 12",
                    "no active controller known",
                ]),
            ),
        ];
        for (i, (applied, committed, controller, b, want)) in cases.into_iter().enumerate() {
            let s = NodeState {
                node_id: 1,
                applied_offset: applied,
                committed_offset: committed,
                controller,
                broker: b,
            };
            let got = readiness(&s);
            let want = want
                .map(str::to_string)
                .map_err(|v| v.into_iter().map(str::to_string).collect::<Vec<_>>());
            assert_eq!(got, want, "case {i}: {s:?}");
        }
    }
}
