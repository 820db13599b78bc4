//! One node of a [`super::RedisCluster`]: its process, and single-node connections to it.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::view::field;
use super::{ANSWER_TIMEOUT, NODE_TIMEOUT, POLL_EVERY};
use crate::process_redis::Watched;

/// One node as this cluster started it.
pub(super) struct NodeProcess {
    pub(super) port: u16,
    pub(super) bus_port: u16,
    pub(super) dir: PathBuf,
    /// `None` while the node is killed.
    pub(super) process: Option<Watched>,
    pub(super) killed_at: Option<Instant>,
}

impl NodeProcess {
    /// Starts `redis-server` for this node under a watchdog (no directory to delete: a killed
    /// node keeps its data for [`super::RedisCluster::restart`]).
    pub(super) fn spawn(&self) -> anyhow::Result<Watched> {
        let mut args: Vec<OsString> = Vec::new();
        let mut arg = |a: &str| args.push(a.into());
        arg("--bind");
        arg("127.0.0.1");
        arg("--port");
        arg(&self.port.to_string());
        arg("--cluster-enabled");
        arg("yes");
        // Relative to --dir: the node's identity and view of the cluster survive a restart.
        arg("--cluster-config-file");
        arg("nodes.conf");
        // Explicit: port + 10000, the default, may be past 65535 for a port the kernel chose.
        arg("--cluster-port");
        arg(&self.bus_port.to_string());
        arg("--cluster-node-timeout");
        arg(&NODE_TIMEOUT.as_millis().to_string());
        arg("--appendonly");
        arg("yes");
        arg("--appendfsync");
        arg("always");
        arg("--save");
        arg("");
        arg("--maxmemory-policy");
        arg("noeviction");
        args.push("--dir".into());
        args.push(self.dir.clone().into());
        args.push("--logfile".into());
        args.push(self.dir.join("redis.log").into());
        Watched::spawn(None, "redis-server", args)
    }

    /// Waits until the node answers and is ours: its `dir` is the one we gave (a port found
    /// free may be taken by someone else's server before ours binds it).
    pub(super) async fn await_answer(&self) -> anyhow::Result<()> {
        let ours = self.dir.to_string_lossy().into_owned();
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            if let Ok(mut connection) = connect(self.port).await {
                let dir: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("dir")
                    .query_async(&mut connection)
                    .await;
                match dir {
                    Ok(reply) if reply.get(1) == Some(&ours) => return Ok(()),
                    Ok(reply) => bail!("port {} is served by another Redis: {reply:?}", self.port),
                    Err(_) => {}
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "node {} did not answer within {ANSWER_TIMEOUT:?}; see {}",
                    self.port,
                    log_tail(&self.dir.join("redis.log"))
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// `redis://127.0.0.1:<port>`.
pub(super) fn node_url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// A single-node connection that gives up quickly on a dead node.
pub(super) async fn connect(port: u16) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let client = redis::Client::open(node_url(port))?;
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// The text reply of an `INFO`-like command (`name:value` lines).
pub(super) async fn info(port: u16, command: &[&str]) -> anyhow::Result<String> {
    let mut connection = connect(port).await?;
    let (name, args) = command.split_first().context("empty command")?;
    let text: String = redis::cmd(name)
        .arg(args)
        .query_async(&mut connection)
        .await
        .with_context(|| format!("{} on {port}", command.join(" ")))?;
    Ok(text)
}

pub(super) async fn info_field(
    port: u16,
    command: &[&str],
    name: &str,
) -> anyhow::Result<Option<String>> {
    Ok(field(&info(port, command).await?, name).map(str::to_owned))
}

/// `count` loopback ports nobody listens on right now, distinct (all bound at once).
pub(super) fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The last lines of a node's log, for an error message.
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(5)..].join(" | ")
        }
        Err(_) => format!("{} (not written)", path.display()),
    }
}
