//! A seeded simulation of one partition replicated on three brokers: the controller's
//! decisions (registration, heartbeats, fencing, elections, AlterPartition) and each
//! replica's [`PartitionMachine`], with durable logs, crashes and restarts (memory
//! lost, log and high-watermark checkpoint kept), lost messages and lagging metadata.
//! A producer writes unique values with acks=all (min.insync.replicas 2).
//!
//! After every step: no acknowledged record is missing from (or different in) the log
//! of a serving leader, and any two replicas agree below both of their high
//! watermarks. At the end, with faults healed, the partition serves again and every
//! acknowledged record is on every replica.
//!
//! `TROUPE_SIM_SEEDS=<n>` / `TROUPE_SIM_STEPS=<n>` run longer; `TROUPE_SIM_SEED=<s>`
//! replays one seed.

use super::machine::{codes, Output, PartitionMachine, ReplicationConfig, Role};
use crate::controller::brokers::{
    fence_expired, heartbeat, register, BrokerLiveness, Heartbeat, Registration,
};
use crate::controller::partitions::{alter_partition, AlterPartition};
use crate::controller::test_support::{cfg, cluster, commit, with_topic};
use crate::metadata::{MetadataImage, PartitionImage};
use std::collections::BTreeMap;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const CONFIG: ReplicationConfig = ReplicationConfig {
    replica_lag_time_max_ms: 2000,
    min_insync_replicas: 2,
};

struct Node {
    id: i32,
    up: bool,
    incarnation: u8,
    epoch: Option<i64>,
    /// The broker epoch its log dir recorded at its last registration. Survives
    /// crashes: a restart sends it as its previous broker epoch.
    recorded_epoch: Option<i64>,
    /// The log: (leader epoch, value) by offset. Survives crashes.
    log: Vec<(i32, u64)>,
    /// The high-watermark checkpoint. Survives crashes.
    hw_checkpoint: i64,
    machine: PartitionMachine,
    /// The partition as this node last applied it (`None` after a restart).
    view: Option<PartitionImage>,
    /// Must ask the leader where to truncate before fetching in this leader epoch.
    truncate_for_epoch: Option<i32>,
}

impl Node {
    /// Kafka's endOffsetFor over this log's epochs.
    fn end_offset_for(&self, epoch: i32) -> Option<(i32, i64)> {
        let mut starts: Vec<(i32, i64)> = Vec::new();
        for (i, (e, _)) in self.log.iter().enumerate() {
            if starts.last().map(|s| s.0) != Some(*e) {
                starts.push((*e, i as i64));
            }
        }
        let &(latest, _) = starts.last()?;
        if epoch == latest {
            return Some((latest, self.log.len() as i64));
        }
        let next = starts.iter().position(|&(e, _)| e > epoch)?;
        let start = starts[next].1;
        Some(match next.checked_sub(1) {
            Some(f) => (starts[f].0, start),
            None => (epoch, start),
        })
    }
}

struct Sim {
    rng: Rng,
    now: i64,
    image: MetadataImage,
    liveness: BrokerLiveness,
    nodes: BTreeMap<i32, Node>,
    /// Acknowledged writes: offset → value.
    acked: BTreeMap<i64, u64>,
    /// Produces waiting: id → (offset, value).
    waiting: BTreeMap<u64, (i64, u64)>,
    next_value: u64,
    faults: bool,
    seed: u64,
}

impl Sim {
    fn part(&self) -> PartitionImage {
        self.image.topics["t"].partitions[&0].clone()
    }

    fn commit(&mut self, records: Vec<crate::metadata::MetadataRecord>) {
        commit(&mut self.image, &records);
    }

    fn carry_out(&mut self, id: i32, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Complete(pid, code) => {
                    if let Some((offset, value)) = self.waiting.remove(&pid) {
                        if code == codes::NONE {
                            self.acked.insert(offset, value);
                        }
                    }
                }
                Output::HighWatermark(hw) => {
                    self.nodes.get_mut(&id).expect("node").hw_checkpoint = hw;
                }
                Output::AlterIsr {
                    leader_epoch,
                    partition_epoch,
                    isr,
                } => {
                    let lost = self.faults && self.rng.chance(10);
                    let Some(broker_epoch) = self.nodes[&id].epoch else {
                        continue;
                    };
                    let req = AlterPartition {
                        broker_id: id,
                        broker_epoch,
                        topic_id: self.image.topics["t"].topic_id,
                        partition: 0,
                        leader_epoch,
                        partition_epoch,
                        new_isr: isr,
                    };
                    let result = if lost {
                        Err(-1)
                    } else {
                        alter_partition(&self.image, &req)
                    };
                    match result {
                        Ok((records, _)) => self.commit(records),
                        Err(_) => self
                            .nodes
                            .get_mut(&id)
                            .expect("node")
                            .machine
                            .on_alter_isr_failed(),
                    }
                }
            }
        }
    }

    fn step(&mut self, step: usize) {
        self.now += 100;
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids.clone() {
            if !self.nodes[&id].up {
                continue;
            }
            // Registration and heartbeats (some lost).
            let (node_epoch, incarnation) = (self.nodes[&id].epoch, self.nodes[&id].incarnation);
            match node_epoch {
                None => {
                    let reg = Registration {
                        node_id: id,
                        incarnation_id: [incarnation; 16],
                        host: "h".into(),
                        port: 1,
                        rack: None,
                        previous_broker_epoch: self.nodes[&id].recorded_epoch,
                    };
                    if let Ok(records) =
                        register(&self.image, &mut self.liveness, &cfg(), &reg, self.now)
                    {
                        self.commit(records);
                        let b = &self.image.brokers[&id];
                        if b.incarnation_id == [incarnation; 16] {
                            let e = b.epoch;
                            let n = self.nodes.get_mut(&id).expect("node");
                            n.epoch = Some(e);
                            n.recorded_epoch = Some(e);
                        }
                    }
                }
                Some(epoch) if self.now % 300 == 0 && !(self.faults && self.rng.chance(10)) => {
                    let hb = Heartbeat {
                        node_id: id,
                        broker_epoch: epoch,
                        current_metadata_offset: self.image.last_offset,
                        want_fence: false,
                        want_shutdown: false,
                    };
                    let (records, a) =
                        heartbeat(&self.image, &mut self.liveness, &cfg(), &hb, self.now);
                    self.commit(records);
                    if a.error != 0 {
                        self.nodes.get_mut(&id).expect("node").epoch = None;
                    }
                }
                Some(_) => {}
            }
            // Metadata reaches the node (sometimes late).
            if !(self.faults && self.rng.chance(20)) {
                let p = self.part();
                let now = self.now;
                let n = self.nodes.get_mut(&id).expect("node");
                let new_epoch = n
                    .view
                    .as_ref()
                    .is_none_or(|v| v.leader_epoch != p.leader_epoch);
                if new_epoch && p.leader != id {
                    n.truncate_for_epoch = Some(p.leader_epoch);
                }
                n.view = Some(p.clone());
                let outs = n.machine.apply(&p, now);
                self.carry_out(id, outs);
            }
        }
        // The leader (as it believes) takes a write now and then.
        for id in ids.clone() {
            let n = &self.nodes[&id];
            if !n.up || n.machine.role() != Role::Leader || !self.rng.chance(30) {
                continue;
            }
            if n.machine.check_produce(-1).is_err() {
                continue;
            }
            let value = self.next_value;
            self.next_value += 1;
            let now = self.now;
            let n = self.nodes.get_mut(&id).expect("node");
            let epoch = n.machine.leader_epoch();
            n.log.push((epoch, value));
            let offset = n.log.len() as i64 - 1;
            let leo = n.log.len() as i64;
            let mut outs = n.machine.on_local_append(leo, now);
            let pid = value;
            self.waiting.insert(pid, (offset, value));
            let n = self.nodes.get_mut(&id).expect("node");
            outs.extend(n.machine.wait_for_replication(pid, offset, now + 3000));
            self.carry_out(id, outs);
        }
        // Followers fetch from the leader they know.
        for id in ids.clone() {
            let n = &self.nodes[&id];
            let Role::Follower { leader } = n.machine.role() else {
                continue;
            };
            let Some(view) = n.view.clone() else { continue };
            if !n.up || leader < 0 || !self.nodes.get(&leader).is_some_and(|l| l.up) {
                continue;
            }
            if self.faults && self.rng.chance(15) {
                continue; // lost fetch
            }
            let leader_node = &self.nodes[&leader];
            if leader_node.machine.role() != Role::Leader
                || leader_node.machine.leader_epoch() != view.leader_epoch
            {
                continue; // the leader does not serve this epoch (fenced / unknown)
            }
            // First, truncate to where this log agrees with the new leader.
            if self.nodes[&id].truncate_for_epoch == Some(view.leader_epoch) {
                let follower = &self.nodes[&id];
                let latest = follower.log.last().map(|(e, _)| *e);
                let answer = latest.and_then(|e| leader_node.end_offset_for(e));
                let cut = match latest {
                    None => 0,
                    Some(_) => super::truncation_offset(
                        answer,
                        |e| follower.end_offset_for(e),
                        follower.log.len() as i64,
                        follower.hw_checkpoint,
                    ),
                };
                let f = self.nodes.get_mut(&id).expect("node");
                f.log.truncate(cut.max(0) as usize);
                f.machine.on_local_truncate(cut.max(0));
                f.hw_checkpoint = f.hw_checkpoint.min(cut.max(0));
                f.truncate_for_epoch = None;
            }
            let fetch_offset = self.nodes[&id].log.len() as i64;
            let now = self.now;
            let mut outs = Vec::new();
            let l = self.nodes.get_mut(&leader).expect("leader");
            if l.machine
                .on_follower_fetch(id, fetch_offset, view.leader_epoch, now, &mut outs)
                .is_err()
            {
                continue;
            }
            let batch: Vec<(i32, u64)> = l
                .log
                .iter()
                .skip(fetch_offset as usize)
                .take(5)
                .copied()
                .collect();
            let leader_hw = l.machine.high_watermark();
            self.carry_out(leader, outs);
            let f = self.nodes.get_mut(&id).expect("node");
            f.log.extend(batch);
            let leo = f.log.len() as i64;
            let mut outs = f.machine.on_local_append(leo, now);
            outs.extend(f.machine.on_leader_high_watermark(leader_hw));
            self.carry_out(id, outs);
        }
        // Clocks: replica ticks, controller fencing.
        for id in ids.clone() {
            if self.nodes[&id].up {
                let now = self.now;
                let outs = self.nodes.get_mut(&id).expect("node").machine.tick(now);
                self.carry_out(id, outs);
            }
        }
        let records = fence_expired(&self.image, &self.liveness, &cfg(), self.now);
        self.commit(records);
        // Faults: crash or restart a node.
        if self.faults && self.rng.chance(3) {
            let id = ids[(self.rng.next() % ids.len() as u64) as usize];
            let n = self.nodes.get_mut(&id).expect("node");
            if n.up {
                n.up = false;
            } else {
                restart(n);
            }
        }
        self.check(step);
    }

    fn check(&self, step: usize) {
        let at = format!("seed {} step {step}", self.seed);
        let p = self.part();
        if let Some(l) = self.nodes.get(&p.leader) {
            if l.up
                && l.machine.role() == Role::Leader
                && l.machine.leader_epoch() == p.leader_epoch
            {
                for (offset, value) in &self.acked {
                    let got = l.log.get(*offset as usize).map(|(_, v)| *v);
                    assert_eq!(
                        got,
                        Some(*value),
                        "{at}: acknowledged offset {offset} lost or changed on leader {}",
                        l.id
                    );
                }
            }
        }
        let nodes: Vec<&Node> = self.nodes.values().collect();
        for a in &nodes {
            for b in &nodes {
                if a.id >= b.id {
                    continue;
                }
                let below = a.hw_checkpoint.min(b.hw_checkpoint).max(0) as usize;
                for o in 0..below.min(a.log.len()).min(b.log.len()) {
                    assert_eq!(
                        a.log[o], b.log[o],
                        "{at}: replicas {} and {} differ at {o}, below their high watermarks",
                        a.id, b.id
                    );
                }
            }
        }
    }
}

fn restart(n: &mut Node) {
    n.up = true;
    n.incarnation = n.incarnation.wrapping_add(1);
    n.epoch = None;
    n.view = None;
    n.truncate_for_epoch = None;
    n.machine = PartitionMachine::new(n.id, CONFIG, n.log.len() as i64, n.hw_checkpoint);
}

fn run(seed: u64, steps: usize) -> (usize, usize) {
    let mut image = cluster(&[(1, None), (2, None), (3, None)]);
    with_topic(&mut image, "t", &[(&[1, 2, 3], &[1, 2, 3], 1)]);
    let nodes = (1..=3)
        .map(|id| {
            let b = &image.brokers[&id];
            (
                id,
                Node {
                    id,
                    up: true,
                    incarnation: b.incarnation_id[0],
                    epoch: Some(b.epoch),
                    recorded_epoch: Some(b.epoch),
                    log: Vec::new(),
                    hw_checkpoint: 0,
                    machine: PartitionMachine::new(id, CONFIG, 0, 0),
                    view: None,
                    truncate_for_epoch: None,
                },
            )
        })
        .collect();
    let mut sim = Sim {
        rng: Rng(seed),
        now: 0,
        liveness: BrokerLiveness::new_active(&image, 0),
        image,
        nodes,
        acked: BTreeMap::new(),
        waiting: BTreeMap::new(),
        next_value: 1,
        faults: true,
        seed,
    };
    for step in 0..steps {
        sim.step(step);
    }
    sim.faults = false;
    for n in sim.nodes.values_mut() {
        if !n.up {
            restart(n);
        }
    }
    for step in steps..steps + 400 {
        sim.step(step);
    }
    let p = sim.part();
    assert_ne!(p.leader, -1, "seed {seed}: no leader after healing: {p:?}");
    let leader_log = &sim.nodes[&p.leader].log;
    for n in sim.nodes.values() {
        for (offset, value) in &sim.acked {
            assert_eq!(
                n.log.get(*offset as usize).map(|(_, v)| *v),
                Some(*value),
                "seed {seed}: node {} lacks acknowledged offset {offset} after healing",
                n.id
            );
        }
        assert_eq!(
            &n.log, leader_log,
            "seed {seed}: node {} differs from the leader after healing",
            n.id
        );
    }
    (sim.acked.len(), (sim.next_value - 1) as usize)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn seeded_replication_simulation_loses_no_acknowledged_record() {
    let steps = env("TROUPE_SIM_STEPS", 1500) as usize;
    let seeds: Vec<u64> = match std::env::var("TROUPE_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(s) => vec![s],
        None => (1..=env("TROUPE_SIM_SEEDS", 10)).collect(),
    };
    for seed in seeds {
        let (acked, written) = run(seed, steps);
        eprintln!("seed {seed}: {acked} of {written} writes acknowledged");
        assert!(
            acked > 10,
            "seed {seed}: the run made too little progress ({acked} acknowledged)"
        );
    }
}
