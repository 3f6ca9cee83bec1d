//! Replica placement for new partitions: leaders spread evenly over the brokers,
//! followers shifted so that no two brokers always follow each other, and with
//! `broker.rack` set, each partition's replicas spread over as many racks as there are.
//!
//! The rule is Kafka's classic one (a start index and a follower shift that grows
//! each time the partitions wrap around the broker list), applied to a broker list
//! that alternates racks. The start comes from the caller, so the shell can pick it
//! at random (spreading topics) while tests fix it.

use super::{codes, ApiError};
use std::collections::{BTreeMap, BTreeSet};

/// A broker placement can use: node id and rack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub node_id: i32,
    pub rack: Option<String>,
}

/// Order brokers so that consecutive ones are in different racks where possible:
/// rack A's first, rack B's first, ..., rack A's second, ... (racks and brokers sorted).
/// Brokers without a rack form a rack of their own.
fn rack_alternated(brokers: &[Candidate]) -> Vec<Candidate> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<&Candidate>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.as_deref()).or_default().push(b);
    }
    for list in by_rack.values_mut() {
        list.sort_by_key(|b| b.node_id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| by_rack.values().filter_map(move |l| l.get(i)))
        .map(|b| (*b).clone())
        .collect()
}

/// Replicas for `partitions` (leader first) with replication factor `rf` over
/// `brokers` (registered and unfenced). `start` picks the first leader and the first
/// follower shift; any value is valid.
pub fn place(
    brokers: &[Candidate],
    partitions: std::ops::Range<i32>,
    rf: i16,
    start: u64,
) -> Result<BTreeMap<i32, Vec<i32>>, ApiError> {
    if rf <= 0 {
        return Err((
            codes::INVALID_REPLICATION_FACTOR,
            format!("Replication factor must be larger than 0, got {rf}."),
        ));
    }
    let rf = rf as usize;
    if rf > brokers.len() {
        return Err((
            codes::INVALID_REPLICATION_FACTOR,
            format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
                brokers.len()
            ),
        ));
    }
    let list = rack_alternated(brokers);
    let n = list.len();
    let racks: BTreeSet<Option<&str>> = list.iter().map(|b| b.rack.as_deref()).collect();
    let start_index = (start % n as u64) as usize;
    let mut shift = ((start / n as u64) % n as u64) as usize;
    let mut out = BTreeMap::new();
    for p in partitions.clone() {
        let k = (p - partitions.start) as usize;
        if k > 0 && k % n == 0 {
            shift += 1;
        }
        let first = (k + start_index) % n;
        let mut replicas = vec![list[first].node_id];
        let mut used_racks = BTreeSet::from([list[first].rack.as_deref()]);
        // Followers: walk the shifted positions, skipping brokers already chosen and,
        // while some rack has no replica yet, brokers of racks that have one.
        let order: Vec<usize> = if n > 1 {
            (0..n - 1)
                .map(|j| (first + 1 + (shift + j) % (n - 1)) % n)
                .collect()
        } else {
            Vec::new()
        };
        while replicas.len() < rf {
            let all_racks_used = used_racks.len() == racks.len();
            let pick = order
                .iter()
                .map(|i| &list[*i])
                .find(|b| {
                    !replicas.contains(&b.node_id)
                        && (all_racks_used || !used_racks.contains(&b.rack.as_deref()))
                })
                .or_else(|| {
                    order
                        .iter()
                        .map(|i| &list[*i])
                        .find(|b| !replicas.contains(&b.node_id))
                })
                .expect("rf <= number of brokers");
            replicas.push(pick.node_id);
            used_racks.insert(pick.rack.as_deref());
        }
        out.insert(p, replicas);
    }
    Ok(out)
}

/// The brokers placement may use in `image`: registered and unfenced.
pub fn candidates(image: &crate::metadata::MetadataImage) -> Vec<Candidate> {
    image
        .live_brokers()
        .map(|b| Candidate {
            node_id: b.node_id,
            rack: b.rack.clone(),
        })
        .collect()
}
