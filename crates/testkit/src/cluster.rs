//! A private Redis Cluster for a test: 3 masters with one replica each, on free loopback ports.
//!
//! What [`crate::servers::RedisServer`] is for one server, [`RedisCluster`] is for a cluster a
//! test may crash: [`RedisCluster::kill_master_of_slot`] SIGKILLs a master,
//! [`RedisCluster::wait_for_failover`] waits until its replica has taken over, and
//! [`RedisCluster::restart`] brings the killed node back (it rejoins as a replica).
//!
//! Each node is a Debian `redis-server` (scripts/setup installs it) with the durability settings
//! rushline ships (AOF, `appendfsync always`, `noeviction`) and a `cluster-node-timeout` of
//! [`NODE_TIMEOUT`], so a failover takes about two seconds. The cluster is created by
//! `redis-cli --cluster create`, as `scripts/cluster` does for a developer's machine.
//!
//! Nodes die with the test process even when it is killed: each runs under the shell watchdog of
//! [`crate::process_redis`], and another watchdog deletes the cluster's temporary directory.
//! Admin commands go over single-node connections (the workspace's `redis` has no cluster
//! client); a test that wants to route by slot asks [`RedisCluster::master_of_slot`].
//!
//! `node` starts and asks one node; `view` reads `CLUSTER NODES` and `INFO` replies.

mod node;
mod view;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use uuid::Uuid;

use crate::process_redis::Watched;
use node::{NodeProcess, connect, free_ports, info, info_field, node_url};
pub use view::NodeView;
use view::{field, parse_node_line};

/// Masters in the cluster; each gets one replica.
pub const MASTERS: usize = 3;

/// Nodes in the cluster: the masters and one replica each.
pub const NODES: usize = 2 * MASTERS;

/// `cluster-node-timeout`: how long a master may be unreachable before it is failed over.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// The number of hash slots of every Redis Cluster.
pub const SLOTS: u16 = 16384;

/// How long a node may take to answer once started.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a created or restarted cluster may take to settle (slots assigned, replicas in sync).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Sets of ports tried before giving up (a port found free can be taken before a node binds it).
const START_ATTEMPTS: usize = 3;

/// How often a condition on the nodes is asked again; each poll is a few cheap commands.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// A test's own Redis Cluster; dropping it kills every node and deletes its data.
pub struct RedisCluster {
    /// Dropped first (fields drop in order): every node is SIGKILLed before its data goes.
    nodes: Vec<NodeProcess>,
    /// Held, never used: deletes the cluster's directory when the test process ends.
    _directory: Watched,
    root: PathBuf,
}

/// A node of the cluster as started: its address, and whether its process runs (not its role,
/// which failovers change: see [`RedisCluster::cluster_nodes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterNode {
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// False once killed, until restarted.
    pub running: bool,
}

impl ClusterNode {
    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        node_url(self.port)
    }
}

/// What [`RedisCluster::kill_master_of_slot`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KilledMaster {
    /// The killed node's port.
    pub port: u16,
    /// The slot it served.
    pub slot: u16,
    /// Ports of its replicas when it was killed: one of them takes over.
    pub replicas: Vec<u16>,
}

impl RedisCluster {
    /// Starts 6 nodes, creates the cluster and waits until every node says `cluster_state:ok`,
    /// 3 masters serve all slots and every replica is in sync with its master.
    pub async fn start() -> anyhow::Result<Self> {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::start_on_free_ports().await {
                Ok(cluster) => return Ok(cluster),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        Err(anyhow!(
            "the Redis Cluster did not start (run scripts/setup to install redis-server): {}",
            failures.join("; ")
        ))
    }

    async fn start_on_free_ports() -> anyhow::Result<Self> {
        let root =
            std::env::temp_dir().join(format!("rushline-cluster-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root).context("creating the cluster's directory")?;
        // Watched from before any node writes to it: nothing in it outlives the test process.
        let directory = Watched::directory(&root)?;
        let ports = free_ports(2 * NODES)?;
        let mut nodes = Vec::with_capacity(NODES);
        for pair in ports.chunks_exact(2) {
            let dir = root.join(pair[0].to_string());
            std::fs::create_dir_all(&dir).context("creating a node's directory")?;
            nodes.push(NodeProcess {
                port: pair[0],
                bus_port: pair[1],
                dir,
                process: None,
                killed_at: None,
            });
        }
        let mut cluster = Self {
            nodes,
            _directory: directory,
            root,
        };
        for node in &mut cluster.nodes {
            node.process = Some(node.spawn()?);
        }
        for node in &cluster.nodes {
            node.await_answer().await?;
        }
        cluster.create().await?;
        cluster.wait_settled(SETTLE_TIMEOUT).await?;
        Ok(cluster)
    }

    /// `redis-cli --cluster create`: slots split evenly over 3 masters, one replica each.
    async fn create(&self) -> anyhow::Result<()> {
        let addresses = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port));
        let output = tokio::time::timeout(
            SETTLE_TIMEOUT,
            tokio::process::Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(addresses)
                .args(["--cluster-replicas", "1", "--cluster-yes"])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .context("redis-cli --cluster create did not finish in time")?
        .context("running redis-cli (run scripts/setup to install it)")?;
        if !output.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Every node's URL, comma-separated, masters and replicas: what `RUSHLINE_REDIS_URL` takes.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| node_url(n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The nodes as started, killed ones included.
    pub fn nodes(&self) -> Vec<ClusterNode> {
        self.nodes
            .iter()
            .map(|n| ClusterNode {
                port: n.port,
                running: n.process.is_some(),
            })
            .collect()
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`, asked of a running node): keys with the same
    /// `{hash tag}` share one.
    pub async fn key_slot(&self, key: &str) -> anyhow::Result<u16> {
        let mut connection = self.any_running().await?;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut connection)
            .await
            .context("CLUSTER KEYSLOT")?;
        Ok(slot)
    }

    /// `CLUSTER NODES` as the first running node that answers sees it.
    pub async fn cluster_nodes(&self) -> anyhow::Result<Vec<NodeView>> {
        let mut connection = self.any_running().await?;
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut connection)
            .await
            .context("CLUSTER NODES")?;
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(parse_node_line)
            .collect()
    }

    /// The port of the master serving `slot`, as a running node sees it (a master just killed
    /// stays its master until the failover).
    pub async fn master_of_slot(&self, slot: u16) -> anyhow::Result<u16> {
        check_slot(slot)?;
        self.cluster_nodes()
            .await?
            .iter()
            .find(|n| n.serves(slot))
            .map(|n| n.port)
            .with_context(|| format!("no master serves slot {slot}"))
    }

    /// SIGKILLs the master serving `slot`: a crash, with whatever asynchronous replication had
    /// not yet copied to its replica lost.
    pub async fn kill_master_of_slot(&mut self, slot: u16) -> anyhow::Result<KilledMaster> {
        check_slot(slot)?;
        let view = self.cluster_nodes().await?;
        let master = view
            .iter()
            .find(|n| n.serves(slot))
            .with_context(|| format!("no master serves slot {slot}"))?;
        let replicas = view
            .iter()
            .filter(|n| n.master_id.as_deref() == Some(master.id.as_str()))
            .map(|n| n.port)
            .collect();
        self.kill_node(master.port)
            .with_context(|| format!("killing the master of slot {slot}"))?;
        Ok(KilledMaster {
            port: master.port,
            slot,
            replicas,
        })
    }

    /// SIGKILLs the node on `port`, whatever its role (a replica, say); [`RedisCluster::restart`]
    /// brings it back.
    pub fn kill_node(&mut self, port: u16) -> anyhow::Result<()> {
        let node = self.node_mut(port)?;
        let process = node
            .process
            .take()
            .with_context(|| format!("node {port} is not running"))?;
        // Dropping the watchdog SIGKILLs the node and returns once it is gone.
        drop(process);
        node.killed_at = Some(Instant::now());
        Ok(())
    }

    /// Waits until `slot` has a master again, a running one that says it is a master, and every
    /// running node says `cluster_state:ok`. Returns the time since the last node was killed
    /// ([`RedisCluster::kill_master_of_slot`]), or since the call when none was.
    ///
    /// # Errors
    ///
    /// When `bound` passes first, with what was still missing.
    pub async fn wait_for_failover(&self, slot: u16, bound: Duration) -> anyhow::Result<Duration> {
        check_slot(slot)?;
        let since = self
            .nodes
            .iter()
            .filter_map(|n| n.killed_at)
            .max()
            .unwrap_or_else(Instant::now);
        let deadline = Instant::now() + bound;
        loop {
            let missing = match self.failed_over(slot).await {
                Ok(None) => return Ok(since.elapsed()),
                Ok(Some(missing)) => missing,
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!("slot {slot} was not failed over within {bound:?}: {missing}");
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// `None` once `slot` is served by a running master and the survivors agree the cluster is
    /// ok; otherwise what is missing.
    async fn failed_over(&self, slot: u16) -> anyhow::Result<Option<String>> {
        for node in self.running() {
            let state = info_field(node.port, &["CLUSTER", "INFO"], "cluster_state").await?;
            if state.as_deref() != Some("ok") {
                return Ok(Some(format!(
                    "127.0.0.1:{}: cluster_state not ok",
                    node.port
                )));
            }
        }
        let master = self.master_of_slot(slot).await?;
        if !self.running().any(|n| n.port == master) {
            return Ok(Some(format!("slot {slot} still on the dead node {master}")));
        }
        let role = info_field(master, &["INFO", "replication"], "role").await?;
        if role.as_deref() != Some("master") {
            return Ok(Some(format!("{master} does not say it is a master yet")));
        }
        Ok(None)
    }

    /// Starts a killed node again on its port and directory (its `nodes.conf` and AOF), then
    /// waits until the cluster has settled: a former master rejoins as a replica of the master
    /// that replaced it, and syncs with it.
    pub async fn restart(&mut self, port: u16) -> anyhow::Result<()> {
        let node = self.node_mut(port)?;
        if node.process.is_some() {
            bail!("node {port} is running");
        }
        node.process = Some(node.spawn()?);
        node.killed_at = None;
        self.node_mut(port)?.await_answer().await?;
        self.wait_settled(SETTLE_TIMEOUT).await
    }

    /// Waits until every running node says `cluster_state:ok`, exactly [`MASTERS`] of them are
    /// masters, every other one is a replica whose link to its master is up, and, with every node
    /// running, each master has a replica.
    async fn wait_settled(&self, bound: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + bound;
        loop {
            let missing = match self.unsettled().await {
                Ok(None) => return Ok(()),
                Ok(Some(missing)) => missing,
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "the cluster did not settle within {bound:?}: {missing} (node logs under {})",
                    self.root.display()
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn unsettled(&self) -> anyhow::Result<Option<String>> {
        let mut masters = 0;
        let mut running = 0;
        for node in self.running() {
            running += 1;
            let port = node.port;
            let state = info_field(port, &["CLUSTER", "INFO"], "cluster_state").await?;
            if state.as_deref() != Some("ok") {
                return Ok(Some(format!("127.0.0.1:{port}: cluster_state not ok")));
            }
            let replication = info(port, &["INFO", "replication"]).await?;
            match field(&replication, "role") {
                Some("master") => {
                    masters += 1;
                    let replicas = field(&replication, "connected_slaves").unwrap_or("0");
                    if self.all_running() && replicas == "0" {
                        return Ok(Some(format!("master {port} has no replica")));
                    }
                }
                Some("slave") => {
                    if field(&replication, "master_link_status") != Some("up")
                        || field(&replication, "master_sync_in_progress") != Some("0")
                    {
                        return Ok(Some(format!("replica {port} is not in sync")));
                    }
                }
                other => return Ok(Some(format!("127.0.0.1:{port}: role {other:?}"))),
            }
        }
        if masters != MASTERS {
            return Ok(Some(format!(
                "{masters} of {running} running nodes are masters, not {MASTERS}"
            )));
        }
        Ok(None)
    }

    fn all_running(&self) -> bool {
        self.nodes.iter().all(|n| n.process.is_some())
    }

    fn running(&self) -> impl Iterator<Item = &NodeProcess> {
        self.nodes.iter().filter(|n| n.process.is_some())
    }

    fn node_mut(&mut self, port: u16) -> anyhow::Result<&mut NodeProcess> {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .with_context(|| format!("no node of this cluster on port {port}"))
    }

    async fn any_running(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let mut failures = Vec::new();
        for node in self.running() {
            match connect(node.port).await {
                Ok(connection) => return Ok(connection),
                Err(e) => failures.push(format!("{}: {e:#}", node.port)),
            }
        }
        Err(anyhow!("no node answers: {}", failures.join("; ")))
    }
}

fn check_slot(slot: u16) -> anyhow::Result<()> {
    if slot >= SLOTS {
        bail!("slot {slot} is out of range (0..{SLOTS})");
    }
    Ok(())
}
