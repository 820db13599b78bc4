//! What nodes say about the cluster: `CLUSTER NODES` lines and `INFO` fields.

use std::ops::RangeInclusive;

use anyhow::{Context, bail};

/// One line of `CLUSTER NODES`: a node as another node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// The node's cluster id.
    pub id: String,
    /// Its client port.
    pub port: u16,
    /// A master (else a replica).
    pub master: bool,
    /// Flagged `fail` or `fail?`: unreachable.
    pub failing: bool,
    /// For a replica, its master's id.
    pub master_id: Option<String>,
    /// The slots it serves (a master's).
    pub slots: Vec<RangeInclusive<u16>>,
}

impl NodeView {
    /// A master with `slot` among its slots.
    pub fn serves(&self, slot: u16) -> bool {
        self.master && self.slots.iter().any(|range| range.contains(&slot))
    }
}

/// The value of `name` in an `INFO`-like reply (`name:value` lines).
pub(super) fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// One `CLUSTER NODES` line: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot>...`.
pub(super) fn parse_node_line(line: &str) -> anyhow::Result<NodeView> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        bail!("unexpected CLUSTER NODES line: {line}");
    }
    let address = fields[1].split(['@', ',']).next().unwrap_or_default();
    let port = address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no port in CLUSTER NODES line: {line}"))?;
    let flags: Vec<&str> = fields[2].split(',').collect();
    let mut slots = Vec::new();
    // Migrating/importing markers (`[slot->-id]`) are not served slots.
    for token in fields[8..].iter().filter(|t| !t.starts_with('[')) {
        let range = match token.split_once('-') {
            Some((first, last)) => first.parse()?..=last.parse()?,
            None => {
                let slot = token.parse()?;
                slot..=slot
            }
        };
        slots.push(range);
    }
    Ok(NodeView {
        id: fields[0].to_owned(),
        port,
        master: flags.contains(&"master"),
        failing: flags.contains(&"fail") || flags.contains(&"fail?"),
        master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_nodes_line_is_parsed() {
        let master = parse_node_line(
            "d868fc 127.0.0.1:7000@17000 myself,master - 0 1796314446000 1 connected 0-5460 5462",
        )
        .unwrap();
        assert_eq!(master.port, 7000);
        assert!(master.master && !master.failing);
        assert_eq!(master.master_id, None);
        assert_eq!(master.slots, vec![0..=5460, 5462..=5462]);
        assert!(master.serves(0) && master.serves(5460) && master.serves(5462));
        assert!(!master.serves(5461));
        let replica = parse_node_line(
            "f8d4dc 127.0.0.1:7003@17003,host slave,fail? 62e740 0 1796314448000 3 connected",
        )
        .unwrap();
        assert_eq!(replica.port, 7003);
        assert!(!replica.master && replica.failing);
        assert_eq!(replica.master_id.as_deref(), Some("62e740"));
        assert!(replica.slots.is_empty());
        assert!(!replica.serves(0));
    }

    #[test]
    fn a_field_of_an_info_reply_is_found_by_its_whole_name() {
        let text = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n";
        assert_eq!(field(text, "role"), Some("slave"));
        assert_eq!(field(text, "master_link_status"), Some("up"));
        assert_eq!(field(text, "master_link"), None);
    }
}
