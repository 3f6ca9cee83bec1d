//! The status page at `/`: plain HTML rendered on the server from this broker's
//! metadata image, partition states and group coordinators, refreshing itself every
//! few seconds (`<meta http-equiv="refresh">`, no JavaScript).
//!
//! Sections: cluster (brokers, controller, the controller quorum as this node sees
//! it), topics (one row per partition: leader, replicas, ISR, offsets when hosted here;
//! under-replicated and offline rows highlighted), consumer groups coordinated here
//! (state, members, lag per partition). A controller-only node renders the same page
//! from its metadata image, with "not a broker" where a broker's own data would be.

use super::scrape::{self, Ops};
use std::fmt::Write;

/// Seconds between refreshes.
const REFRESH_S: u32 = 5;

/// `s` with the five HTML special characters escaped (topic and group names are
/// client-chosen).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ids(v: &[i32]) -> String {
    v.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin-bottom:1.5em}\
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left}\
th{background:#eee}\
tr.under-replicated td{background:#ffe0b2}\
tr.offline td{background:#ffcdd2}\
tr.lagging td.lag{font-weight:bold;color:#b71c1c}\
.ok{color:#2e7d32}.bad{color:#b71c1c}";

pub async fn render(ops: &Ops) -> String {
    let routes = ops.routes();
    let image = &routes.image;
    let node = ops.node_id();
    let controller = ops.active_controller();
    let raft = ops.raft();
    let ready = scrape::readiness(ops);
    let kind = if ops.broker.is_some() {
        "broker"
    } else {
        "controller"
    };

    let mut h = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <title>Troupe {kind} {node}</title><style>{STYLE}</style></head><body>\
         <h1>Troupe {kind} {node}</h1>"
    );
    let _ = write!(
        h,
        "<section id=\"cluster\"><h2>Cluster</h2><p>Cluster id <code>{}</code>; \
         controller: <span id=\"controller\">{}</span>; metadata offset {}; this {kind}: {}</p>",
        esc(&ops.cluster_id),
        match controller {
            // Dedicated controllers are not brokers: say which kind of node leads.
            Some(c) if image.brokers.contains_key(&c) => format!("broker {c}"),
            Some(c) => format!("controller {c}"),
            None => "none".into(),
        },
        image.last_offset,
        match &ready {
            Ok(_) => "<span class=\"ok\">ready</span>".to_string(),
            Err(why) => format!(
                "<span class=\"bad\">not ready: {}</span>",
                esc(&why.join("; "))
            ),
        }
    );
    h.push_str(
        "<table id=\"brokers\"><tr><th>Broker</th><th>Address</th><th>Rack</th><th>State</th><th>Role</th></tr>",
    );
    for b in image.brokers.values() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}:{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            b.node_id,
            esc(&b.host),
            b.port,
            esc(b.rack.as_deref().unwrap_or("")),
            if b.fenced { "fenced" } else { "live" },
            match (Some(b.node_id) == controller, b.node_id == node) {
                (true, true) => "controller (this broker)",
                (true, false) => "controller",
                (false, true) => "this broker",
                (false, false) => "",
            }
        );
    }
    h.push_str("</table>");
    if image.brokers.is_empty() {
        h.push_str("<p>No broker registered.</p>");
    }
    if let Some(r) = &raft {
        let _ = write!(
            h,
            "<table id=\"quorum\"><tr><th>Controller quorum</th><th></th></tr>\
             <tr><td>This node</td><td id=\"raft-state\">{} {}</td></tr>\
             <tr><td>Leader</td><td>{}</td></tr><tr><td>Epoch</td><td>{}</td></tr>\
             <tr><td>Voters</td><td>{}</td></tr>\
             <tr><td>Metadata log</td><td>{} entries, {} applied</td></tr></table>",
            node,
            r.state,
            if r.leader >= 0 {
                r.leader.to_string()
            } else {
                "none".into()
            },
            r.epoch,
            r.voters
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            r.log_end_offset,
            r.high_watermark,
        );
    }
    h.push_str("</section>");

    h.push_str("<section id=\"topics\"><h2>Topics</h2>");
    let partitions: usize = image.topics.values().map(|t| t.partitions.len()).sum();
    let urp = image
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.isr.len() < p.replicas.len())
        .count();
    let _ = write!(
        h,
        "<p>{} topics, {partitions} partitions, <span id=\"under-replicated-count\">{urp}</span> under-replicated</p>",
        image.topics.len()
    );
    // Topics clients made first; the internal ones (`__consumer_offsets`, 50
    // partitions by default) folded away, with their own count in the summary.
    let (internal, user): (Vec<_>, Vec<_>) = image
        .topics
        .values()
        .map(|t| &**t)
        .partition(|t| t.name.starts_with("__"));
    h.push_str(&partition_table("partitions", &user, image, &routes));
    if !internal.is_empty() {
        let parts: Vec<_> = internal
            .iter()
            .flat_map(|t| t.partitions.values())
            .collect();
        let urp = parts
            .iter()
            .filter(|p| p.isr.len() < p.replicas.len())
            .count();
        let _ = write!(
            h,
            "<details><summary>Internal topics: {} partitions, {urp} under-replicated</summary>{}</details>",
            parts.len(),
            partition_table("internal-partitions", &internal, image, &routes)
        );
    }
    h.push_str("</section>");

    h.push_str("<section id=\"groups\"><h2>Consumer groups</h2>");
    let Some(ctx) = &ops.broker else {
        h.push_str(
            "<p id=\"not-a-broker\">Not a broker: consumer groups, their lag and partition \
             offsets are served by the brokers' status pages.</p></section>",
        );
        footer(&mut h);
        return h;
    };
    let groups = scrape::groups(ctx).await;
    if groups.is_empty() {
        h.push_str("<p>No groups coordinated by this broker.</p>");
    }
    for g in &groups {
        let total: i64 = g.partitions.iter().filter_map(|p| p.lag()).sum();
        let _ = write!(
            h,
            "<h3>{}</h3><p>State {}, {} members, total lag <span class=\"total-lag\">{total}</span></p>\
             <table class=\"group\" data-group=\"{}\"><tr><th>Topic</th><th>Partition</th>\
             <th>Committed</th><th>High watermark</th><th>Lag</th></tr>",
            esc(&g.group_id),
            g.state,
            g.members,
            esc(&g.group_id),
        );
        for p in &g.partitions {
            let lag = p.lag();
            let _ =
                write!(
                h,
                "<tr class=\"{}\" data-topic=\"{}\" data-partition=\"{}\"><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td class=\"lag\">{}</td></tr>",
                if lag.unwrap_or(0) > 0 { "lagging" } else { "caught-up" },
                esc(&p.topic),
                p.partition,
                esc(&p.topic),
                p.partition,
                p.committed,
                p.high_watermark.map(|v| v.to_string()).unwrap_or("?".into()),
                lag.map(|v| v.to_string()).unwrap_or("?".into()),
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");
    footer(&mut h);
    h
}

fn footer(h: &mut String) {
    let _ = write!(
        h,
        "<footer><p>Refreshes every {REFRESH_S} s. Metrics: <a href=\"/metrics\">/metrics</a>; \
         health: <a href=\"/health/ready\">/health/ready</a>.</p></footer></body></html>"
    );
}

/// One row per partition of `topics`: leader, replicas, ISR and, when hosted here,
/// offsets; the row's class says whether it is in sync, under-replicated or offline.
fn partition_table(
    id: &str,
    topics: &[&troupe::metadata::TopicImage],
    image: &troupe::metadata::MetadataImage,
    routes: &crate::supervisor::RoutingTable,
) -> String {
    let mut h = format!(
        "<table id=\"{id}\"><tr><th>Topic</th><th>Partition</th><th>Leader</th>\
         <th>Replicas</th><th>ISR</th><th>Log start</th><th>High watermark</th><th>Log end</th></tr>"
    );
    for t in topics {
        for p in t.partitions.values() {
            let offline = p.leader < 0 || !image.is_live(p.leader);
            let class = if offline {
                "offline"
            } else if p.isr.len() < p.replicas.len() {
                "under-replicated"
            } else {
                "in-sync"
            };
            let state = routes
                .partition(&t.name, p.partition)
                .map(|r| *r.state.borrow())
                .filter(|s| s.online);
            let offset = |f: fn(&crate::partition::PartitionState) -> i64| {
                state.as_ref().map(|s| f(s).to_string()).unwrap_or_default()
            };
            let _ = write!(
                h,
                "<tr class=\"{class}\" data-topic=\"{}\" data-partition=\"{}\"><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&t.name),
                p.partition,
                esc(&t.name),
                p.partition,
                if p.leader >= 0 {
                    p.leader.to_string()
                } else {
                    "none".into()
                },
                ids(&p.replicas),
                ids(&p.isr),
                offset(|s| s.log_start_offset),
                offset(|s| s.high_watermark),
                offset(|s| s.log_end_offset),
            );
        }
    }
    h.push_str("</table>");
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_client_chosen_names() {
        assert_eq!(
            super::esc("<b a=\"1\">&'"),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;"
        );
    }
}
