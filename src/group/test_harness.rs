//! The test driver of the group state machine: it plays the actor's part (answers,
//! appends acknowledged or held, timers ticked at every deadline) and the clients'
//! (learning member ids and generations from answers, as a real client would).

use super::*;
use bytes::Bytes;
use std::collections::HashMap;

pub(super) const G: &str = "g";

/// Consumer protocol subscription metadata (version 0) for `topics`.
pub(super) fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0u8, 0];
    b.extend((topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend((t.len() as i16).to_be_bytes());
        b.extend(t.as_bytes());
    }
    b.extend((-1i32).to_be_bytes());
    Bytes::from(b)
}

pub(super) fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 100,
        min_session_timeout_ms: 1000,
        max_session_timeout_ms: 60_000,
        max_size: 10,
        offsets_retention_ms: 60_000,
        max_metadata_bytes: 16,
        commit_timeout_ms: 5000,
    }
}

#[derive(Default, Clone)]
pub(super) struct ClientView {
    pub member_id: String,
    pub generation: i32,
    pub join: Option<ReplyId>,
    pub sync: Option<ReplyId>,
}

/// Drives a [`GroupCoordinatorState`] like the actor does, recording every append
/// in `log` (acknowledged at once unless `fail_appends` is set).
pub(super) struct Harness {
    pub s: GroupCoordinatorState,
    pub now: i64,
    next: ReplyId,
    pub replies: HashMap<ReplyId, Reply>,
    pub clients: HashMap<&'static str, ClientView>,
    pub log: Vec<OffsetsRecord>,
    pub fail_appends: Option<i16>,
    /// Appends not acknowledged yet (when `hold_appends`).
    pub held: Vec<AppendToken>,
    pub hold_appends: bool,
}

impl Harness {
    pub fn new(config: GroupConfig) -> Harness {
        Harness {
            s: GroupCoordinatorState::with_member_ids(config, MemberIds::Sequential(0)),
            now: 1_000_000,
            next: 1,
            replies: HashMap::new(),
            clients: HashMap::new(),
            log: Vec::new(),
            fail_appends: None,
            held: Vec::new(),
            hold_appends: false,
        }
    }

    pub fn reply_id(&mut self) -> ReplyId {
        self.next += 1;
        self.next
    }

    pub fn run(&mut self, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Reply(id, r) => {
                    assert!(
                        self.replies.insert(id, r).is_none(),
                        "request {id} answered twice"
                    );
                }
                Output::Append { token, records } => {
                    if self.hold_appends {
                        self.held.push(token);
                        self.log.extend(records);
                        continue;
                    }
                    let result = match self.fail_appends {
                        Some(code) => Err(code),
                        None => {
                            self.log.extend(records);
                            Ok(())
                        }
                    };
                    let more = self.s.append_done(token, result, self.now);
                    self.run(more);
                }
            }
        }
    }

    pub fn release_held(&mut self) {
        self.hold_appends = false;
        for token in std::mem::take(&mut self.held) {
            let more = self.s.append_done(token, Ok(()), self.now);
            self.run(more);
        }
    }

    pub fn advance(&mut self, ms: i64) {
        // Tick at every deadline on the way, as the actor's timer would.
        let target = self.now + ms;
        while let Some(d) = self.s.next_deadline().filter(|d| *d <= target) {
            self.now = d.max(self.now);
            let outs = self.s.tick(self.now);
            self.run(outs);
        }
        self.now = target;
    }

    pub fn join_req(
        &self,
        who: &str,
        instance: Option<&str>,
        protocols: &[(&str, Bytes)],
    ) -> JoinRequest {
        JoinRequest {
            group_id: G.into(),
            member_id: self
                .clients
                .get(who)
                .map(|c| c.member_id.clone())
                .unwrap_or_default(),
            group_instance_id: instance.map(str::to_string),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 5_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|(n, m)| (n.to_string(), m.clone()))
                .collect(),
            client_id: who.into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: instance.is_none(),
            supports_skip_assignment: false,
        }
    }

    pub fn join_with(&mut self, who: &'static str, req: JoinRequest) {
        let id = self.reply_id();
        self.clients.entry(who).or_default().join = Some(id);
        let outs = self.s.join_group(req, id, self.now);
        self.run(outs);
    }

    /// The answer to `who`'s last JoinGroup, if it came; updates what it knows.
    pub fn join_answer(&mut self, who: &'static str) -> Option<JoinResponse> {
        let c = self.clients.get_mut(who)?;
        let Reply::Join(r) = self.replies.get(&c.join?)?.clone() else {
            panic!("not a join reply")
        };
        if !r.member_id.is_empty() {
            c.member_id = r.member_id.clone();
        }
        if r.error == codes::NONE {
            c.generation = r.generation_id;
        }
        Some(r)
    }

    pub fn sync(&mut self, who: &'static str, assignments: &[(&'static str, &str)]) {
        let c = self.clients[who].clone();
        let assignments = assignments
            .iter()
            .map(|(w, a)| {
                (
                    self.clients[w].member_id.clone(),
                    Bytes::from(a.to_string()),
                )
            })
            .collect();
        let req = SyncRequest {
            group_id: G.into(),
            generation_id: c.generation,
            member_id: c.member_id,
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: None,
            assignments,
        };
        let id = self.reply_id();
        self.clients.get_mut(who).expect("known").sync = Some(id);
        let outs = self.s.sync_group(req, id, self.now);
        self.run(outs);
    }

    pub fn sync_answer(&self, who: &str) -> Option<SyncResponse> {
        match self.replies.get(&self.clients[who].sync?)? {
            Reply::Sync(r) => Some(r.clone()),
            _ => panic!("not a sync reply"),
        }
    }

    pub fn heartbeat(&mut self, who: &str, instance: Option<&str>) -> i16 {
        let c = &self.clients[who];
        let req = HeartbeatRequest {
            group_id: G.into(),
            generation_id: c.generation,
            member_id: c.member_id.clone(),
            group_instance_id: instance.map(str::to_string),
        };
        self.s.heartbeat(&req, self.now)
    }

    pub fn state(&self) -> GroupState {
        self.s.group(G).map(|g| g.state).unwrap_or(GroupState::Dead)
    }
}

/// A new state machine that loads everything `h` appended, as after a restart.
pub(super) fn reload(h: &Harness) -> GroupCoordinatorState {
    let mut s = GroupCoordinatorState::new(h.s.config().clone());
    for r in &h.log {
        s.load_record(&r.key, r.value.as_deref(), h.now)
            .expect("our own records decode");
    }
    s
}
