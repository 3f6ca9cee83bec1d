//! A seeded simulation of the controller's decisions: brokers that heartbeat, crash,
//! restart and send AlterPartition from their own (lagging) view of the metadata,
//! over a bus that drops, delays, duplicates and reorders messages, with controller
//! failovers that reset the heartbeat clocks. After every step the invariants below
//! are checked; at the end, with faults healed, the cluster must have recovered.
//!
//! `cargo test` runs a short simulation; `TROUPE_SIM_SEEDS=<n>` and
//! `TROUPE_SIM_STEPS=<n>` run longer ones, and `TROUPE_SIM_SEED=<seed>` replays one.
//! A failure names its seed and step.

use super::brokers::*;
use super::partitions::*;
use super::test_support::*;
use super::topics::*;
use crate::metadata::{MetadataImage, MetadataRecord};
use std::collections::{BTreeMap, HashMap};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

enum Msg {
    Heartbeat(Heartbeat),
    Alter(AlterPartition),
}

struct Broker {
    up: bool,
    incarnation: u8,
    /// Registered epoch as this broker knows it (None: must register).
    epoch: Option<i64>,
    /// The broker epoch its log dir recorded at its last registration: sent as the
    /// previous broker epoch after a restart. Survives crashes (sometimes lost, as a
    /// write the crash cut short, to keep the session rule exercised too).
    recorded: Option<i64>,
    /// The metadata this broker has applied (lags the controller's).
    view: MetadataImage,
}

struct Sim {
    rng: Rng,
    now: i64,
    cfg: super::ControllerConfig,
    image: MetadataImage,
    liveness: BrokerLiveness,
    brokers: BTreeMap<i32, Broker>,
    /// In flight to the controller: (deliver at, message).
    bus: Vec<(i64, Msg)>,
    /// Every (topic, partition, leader epoch) → leader ever seen.
    leaders: HashMap<(String, i32, i32), i32>,
    faults: bool,
    /// What happened, to show the run exercised something: fencings, leader changes,
    /// AlterPartitions accepted and refused.
    stats: [u64; 4],
}

impl Sim {
    fn commit(&mut self, records: Vec<MetadataRecord>, step: usize, seed: u64) {
        let before = self.image.clone();
        for r in &records {
            match r {
                MetadataRecord::FenceBroker { .. } => self.stats[0] += 1,
                MetadataRecord::Partition {
                    topic_id,
                    partition,
                    leader,
                    ..
                } => {
                    let old = before
                        .topic_by_id(&uuid::Uuid::from_bytes(*topic_id))
                        .and_then(|t| t.partitions.get(partition));
                    if old.is_some_and(|o| o.leader != *leader) {
                        self.stats[1] += 1;
                    }
                }
                _ => {}
            }
        }
        commit(&mut self.image, &records);
        self.check(&before, step, seed);
    }

    fn check(&mut self, before: &MetadataImage, step: usize, seed: u64) {
        let at = format!("seed {seed} step {step}");
        let img = &self.image;
        for t in img.topics.values() {
            let unclean = self.cfg.unclean_allowed(t);
            for p in t.partitions.values() {
                assert!(!p.isr.is_empty(), "{at}: empty ISR {p:?}");
                assert!(
                    p.isr.iter().all(|b| p.replicas.contains(b)),
                    "{at}: ISR outside replicas {p:?}"
                );
                if p.leader != NO_LEADER {
                    assert!(p.isr.contains(&p.leader), "{at}: leader outside ISR {p:?}");
                    assert!(img.is_live(p.leader), "{at}: fenced leader {p:?}");
                }
                if p.isr.len() > 1 {
                    assert!(
                        p.isr.iter().all(|b| img.is_live(*b)),
                        "{at}: fenced broker in a shared ISR {p:?}"
                    );
                }
                let key = (t.name.clone(), p.partition, p.leader_epoch);
                if p.leader != NO_LEADER {
                    let first = *self.leaders.entry(key).or_insert(p.leader);
                    assert_eq!(
                        first, p.leader,
                        "{at}: two leaders in one leader epoch {p:?}"
                    );
                }
                if let Some(old) = before
                    .topics
                    .get(&t.name)
                    .and_then(|o| o.partitions.get(&p.partition))
                {
                    assert!(
                        p.leader_epoch >= old.leader_epoch,
                        "{at}: leader epoch went back {old:?} -> {p:?}"
                    );
                    assert!(
                        p.partition_epoch >= old.partition_epoch,
                        "{at}: partition epoch went back"
                    );
                    if p != old {
                        assert!(
                            p.partition_epoch > old.partition_epoch,
                            "{at}: change without a new partition epoch {old:?} -> {p:?}"
                        );
                    }
                    if p.leader != old.leader {
                        assert!(
                            p.leader_epoch > old.leader_epoch,
                            "{at}: new leader, same epoch {old:?} -> {p:?}"
                        );
                        if p.leader != NO_LEADER && !unclean {
                            assert!(
                                old.isr.contains(&p.leader),
                                "{at}: unclean election while disabled {old:?} -> {p:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    fn send(&mut self, msg: Msg) {
        if self.faults && self.rng.chance(10) {
            return; // dropped
        }
        let delay = if self.faults {
            self.rng.below(3000) as i64
        } else {
            50
        };
        let copies = if self.faults && self.rng.chance(5) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let m = match &msg {
                Msg::Heartbeat(h) => Msg::Heartbeat(h.clone()),
                Msg::Alter(a) => Msg::Alter(a.clone()),
            };
            self.bus.push((self.now + delay, m));
        }
    }

    fn step(&mut self, step: usize, seed: u64) {
        self.now += 100;
        let ids: Vec<i32> = self.brokers.keys().copied().collect();
        // Brokers: catch up (partly), register, heartbeat, ask for ISR changes.
        for id in &ids {
            let lag = self.faults && self.rng.chance(30);
            let b = self.brokers.get_mut(id).expect("id from keys");
            if !b.up {
                continue;
            }
            if !lag {
                b.view = self.image.clone();
            }
            if b.epoch.is_none() {
                let r = Registration {
                    node_id: *id,
                    incarnation_id: [b.incarnation; 16],
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    previous_broker_epoch: b.recorded,
                };
                // Registration is a synchronous RPC here (retried until it works).
                let incarnation = b.incarnation;
                if let Ok(records) =
                    register(&self.image, &mut self.liveness, &self.cfg, &r, self.now)
                {
                    self.commit(records, step, seed);
                    let reg = &self.image.brokers[id];
                    if reg.incarnation_id == [incarnation; 16] {
                        let b = self.brokers.get_mut(id).expect("known");
                        b.epoch = Some(reg.epoch);
                        b.recorded = Some(reg.epoch);
                        b.view = self.image.clone();
                    }
                }
                continue;
            }
            let b = &self.brokers[id];
            if self.now % 500 == 0 {
                let hb = Heartbeat {
                    node_id: *id,
                    broker_epoch: b.epoch.expect("registered"),
                    current_metadata_offset: b.view.last_offset,
                    want_fence: false,
                    want_shutdown: false,
                };
                self.send(Msg::Heartbeat(hb));
            }
            // A leader (in its own view) shrinks or expands its ISR now and then.
            if self.rng.chance(5) {
                let view = &self.brokers[id].view;
                let epoch = self.brokers[id].epoch.expect("registered");
                let led: Vec<(uuid::Uuid, crate::metadata::PartitionImage)> = view
                    .topics
                    .values()
                    .flat_map(|t| t.partitions.values().map(move |p| (t.topic_id, p.clone())))
                    .filter(|(_, p)| p.leader == *id)
                    .collect();
                if !led.is_empty() {
                    let (topic_id, p) = led[self.rng.below(led.len() as u64) as usize].clone();
                    let mut isr: Vec<i32> = p
                        .replicas
                        .iter()
                        .copied()
                        .filter(|r| *r == *id || self.rng.chance(60))
                        .collect();
                    isr.sort_unstable();
                    let req = AlterPartition {
                        broker_id: *id,
                        broker_epoch: epoch,
                        topic_id,
                        partition: p.partition,
                        leader_epoch: p.leader_epoch,
                        partition_epoch: p.partition_epoch,
                        new_isr: isr,
                    };
                    self.send(Msg::Alter(req));
                }
            }
        }
        // The controller: deliver due messages (in random order), then the fencing tick.
        let mut due: Vec<Msg> = Vec::new();
        let mut rest = Vec::new();
        for (at, m) in std::mem::take(&mut self.bus) {
            if at <= self.now {
                due.push(m);
            } else {
                rest.push((at, m));
            }
        }
        self.bus = rest;
        while !due.is_empty() {
            let i = self.rng.below(due.len() as u64) as usize;
            match due.swap_remove(i) {
                Msg::Heartbeat(h) => {
                    let (records, a) =
                        heartbeat(&self.image, &mut self.liveness, &self.cfg, &h, self.now);
                    self.commit(records, step, seed);
                    if a.error != 0 {
                        // A stale epoch: the broker learns it must register again.
                        if let Some(b) = self.brokers.get_mut(&h.node_id) {
                            if b.epoch == Some(h.broker_epoch) {
                                b.epoch = None;
                            }
                        }
                    }
                }
                Msg::Alter(a) => match alter_partition(&self.image, &a) {
                    Ok((records, _)) => {
                        self.stats[2] += 1;
                        self.commit(records, step, seed);
                    }
                    Err(_) => self.stats[3] += 1,
                },
            }
        }
        let records = fence_expired(&self.image, &self.liveness, &self.cfg, self.now);
        self.commit(records, step, seed);
        if !self.faults {
            return;
        }
        // Faults: crash, restart (new incarnation), controller failover.
        if self.rng.chance(2) {
            let id = ids[self.rng.below(ids.len() as u64) as usize];
            let b = self.brokers.get_mut(&id).expect("known");
            if b.up {
                b.up = false;
            } else {
                b.up = true;
                b.incarnation = b.incarnation.wrapping_add(1);
                b.epoch = None;
                if self.rng.chance(20) {
                    b.recorded = None;
                }
            }
        }
        if self.rng.chance(1) {
            self.liveness = BrokerLiveness::new_active(&self.image, self.now);
        }
    }
}

fn run(seed: u64, steps: usize, unclean: bool) {
    let mut cfg = cfg();
    cfg.topic_defaults.unclean_leader_election_enable = unclean;
    cfg.broker_session_timeout_ms = 3000;
    let mut image = cluster(&[(1, None), (2, None), (3, None), (4, None)]);
    for t in ["a", "b"] {
        let nt = NewTopic {
            name: t.into(),
            num_partitions: 4,
            replication_factor: 3,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        };
        let (records, _) =
            create_topic(&image, &cfg, &nt, crate::metadata::random_uuid(), seed).unwrap();
        commit(&mut image, &records);
    }
    let brokers = image
        .brokers
        .values()
        .map(|b| {
            (
                b.node_id,
                Broker {
                    up: true,
                    incarnation: b.incarnation_id[0],
                    epoch: Some(b.epoch),
                    recorded: Some(b.epoch),
                    view: image.clone(),
                },
            )
        })
        .collect();
    let mut sim = Sim {
        rng: Rng(seed),
        now: 0,
        liveness: BrokerLiveness::new_active(&image, 0),
        cfg,
        image,
        brokers,
        bus: Vec::new(),
        leaders: HashMap::new(),
        faults: true,
        stats: [0; 4],
    };
    for step in 0..steps {
        sim.step(step, seed);
    }
    // Heal: everyone up, no loss; within a few sessions every broker is unfenced and
    // every partition has a leader.
    sim.faults = false;
    for b in sim.brokers.values_mut() {
        if !b.up {
            b.up = true;
            b.incarnation = b.incarnation.wrapping_add(1);
            b.epoch = None;
        }
    }
    for step in steps..steps + 200 {
        sim.step(step, seed);
    }
    let [fenced, elections, altered, refused] = sim.stats;
    eprintln!("seed {seed}: {fenced} fencings, {elections} leader changes, {altered} ISR changes accepted, {refused} refused");
    assert!(
        fenced > 0 && elections > 0 && altered > 0 && refused > 0,
        "seed {seed}: the run exercised too little: {:?}",
        sim.stats
    );
    let fenced: Vec<i32> = sim
        .image
        .brokers
        .values()
        .filter(|b| b.fenced)
        .map(|b| b.node_id)
        .collect();
    assert!(
        fenced.is_empty(),
        "seed {seed}: brokers still fenced after healing: {fenced:?}"
    );
    for t in sim.image.topics.values() {
        for p in t.partitions.values() {
            assert_ne!(
                p.leader, NO_LEADER,
                "seed {seed}: {}-{} offline after healing: {p:?}",
                t.name, p.partition
            );
        }
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn seeded_controller_simulation_keeps_the_invariants() {
    let steps = env("TROUPE_SIM_STEPS", 2000) as usize;
    let seeds: Vec<u64> = match std::env::var("TROUPE_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(s) => vec![s],
        None => (1..=env("TROUPE_SIM_SEEDS", 12)).collect(),
    };
    for seed in seeds {
        run(seed, steps, seed % 3 == 0);
    }
}
