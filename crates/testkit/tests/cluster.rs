//! The private Redis Cluster of `rushline_testkit::cluster`, against real `redis-server`
//! processes: it comes up whole, keys live on their slot's master, a killed master is failed
//! over to its replica within a bound, and the killed node comes back as a replica.
//!
//! Each check asks the nodes itself (single-node connections, its own commands) rather than
//! trusting the helper's view.

use std::collections::HashSet;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use rushline_testkit::cluster::{MASTERS, NODE_TIMEOUT, NODES, RedisCluster, SLOTS};

/// A campaign-tagged key, as rushline's are: every key of one campaign in one slot.
const KEY: &str = "rushline:{cluster-test}:stock";

/// What a failover may take: a node timeout to suspect the master, gossip to agree it failed,
/// the replica's election delay (0.5–1 s) and its election, on a busy 2-core machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(15);

/// A connection to one node. Its response timeout outlasts `WAIT`'s own (5 s) and a busy
/// machine's slow replies: the client's default is half a second (a CI run timed out a `WAIT` on it).
async fn connect(port: u16) -> MultiplexedConnection {
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

async fn text(port: u16, command: &str, arg: &str) -> String {
    redis::cmd(command)
        .arg(arg)
        .query_async(&mut connect(port).await)
        .await
        .unwrap()
}

/// `name:value` from an INFO or CLUSTER INFO reply.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(|value| value.trim().to_owned())
}

/// `ROLE`'s first element: "master" or "slave".
async fn role(port: u16) -> String {
    let reply: Vec<redis::Value> = redis::cmd("ROLE")
        .query_async(&mut connect(port).await)
        .await
        .unwrap();
    redis::from_redis_value(reply[0].clone()).unwrap()
}

#[tokio::test]
async fn the_cluster_comes_up_with_three_masters_each_with_a_replica_in_sync() {
    let cluster = RedisCluster::start().await.unwrap();

    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), NODES);
    assert!(nodes.iter().all(|n| n.running));
    let urls: Vec<String> = cluster.urls().split(',').map(str::to_owned).collect();
    assert_eq!(urls, nodes.iter().map(|n| n.url()).collect::<Vec<_>>());

    let mut masters = HashSet::new();
    let mut replicas_of = Vec::new();
    for node in &nodes {
        let state = text(node.port, "CLUSTER", "INFO").await;
        assert_eq!(field(&state, "cluster_state").as_deref(), Some("ok"));
        assert_eq!(field(&state, "cluster_slots_ok").as_deref(), Some("16384"));
        let replication = text(node.port, "INFO", "replication").await;
        match field(&replication, "role").as_deref() {
            Some("master") => {
                masters.insert(node.port);
            }
            Some("slave") => {
                assert_eq!(
                    field(&replication, "master_link_status").as_deref(),
                    Some("up")
                );
                let master: u16 = field(&replication, "master_port").unwrap().parse().unwrap();
                replicas_of.push(master);
            }
            other => panic!("node {} has role {other:?}", node.port),
        }
    }
    assert_eq!(masters.len(), MASTERS);
    // One replica each: every master appears exactly once among the replicas' masters.
    replicas_of.sort_unstable();
    let mut expected: Vec<u16> = masters.iter().copied().collect();
    expected.sort_unstable();
    assert_eq!(replicas_of, expected);

    // The helper's view agrees, and its masters' slots cover 0..16384 exactly once.
    let view = cluster.cluster_nodes().await.unwrap();
    let mut covered = 0usize;
    for node in view.iter().filter(|n| n.master) {
        assert!(masters.contains(&node.port));
        covered += node.slots.iter().map(|r| r.len()).sum::<usize>();
    }
    assert_eq!(covered, usize::from(SLOTS));
    for slot in [0, 5000, 10000, SLOTS - 1] {
        assert!(masters.contains(&cluster.master_of_slot(slot).await.unwrap()));
    }
}

#[tokio::test]
async fn a_key_lives_on_its_slots_master_and_reaches_its_replica() {
    let cluster = RedisCluster::start().await.unwrap();
    let slot = cluster.key_slot(KEY).await.unwrap();
    assert_eq!(
        cluster
            .key_slot("rushline:{cluster-test}:other")
            .await
            .unwrap(),
        slot,
        "one hash tag, one slot"
    );
    let master = cluster.master_of_slot(slot).await.unwrap();

    let mut on_master = connect(master).await;
    let () = redis::cmd("SET")
        .arg(KEY)
        .arg(40)
        .query_async(&mut on_master)
        .await
        .unwrap();
    let read: i64 = redis::cmd("GET")
        .arg(KEY)
        .query_async(&mut on_master)
        .await
        .unwrap();
    assert_eq!(read, 40);

    // Any other master redirects to the slot's master.
    let other = cluster
        .cluster_nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.master && n.port != master)
        .unwrap();
    let refused = redis::cmd("GET")
        .arg(KEY)
        .query_async::<Option<i64>>(&mut connect(other.port).await)
        .await
        .unwrap_err();
    let master_address = format!("127.0.0.1:{master}");
    assert_eq!(
        refused.redirect_node(),
        Some((master_address.as_str(), slot)),
        "{refused}"
    );

    // The replica has it once WAIT says it acknowledged the write.
    let acknowledged: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut on_master)
        .await
        .unwrap();
    assert_eq!(acknowledged, 1);
    let view = cluster.cluster_nodes().await.unwrap();
    let master_id = &view.iter().find(|n| n.port == master).unwrap().id;
    let replica = view
        .iter()
        .find(|n| n.master_id.as_ref() == Some(master_id))
        .unwrap();
    assert_eq!(replica_copy(replica.port).await, 40);
}

/// KEY as the replica on `port` holds it (`READONLY`, then `GET`).
async fn replica_copy(port: u16) -> i64 {
    let mut on_replica = connect(port).await;
    let () = redis::cmd("READONLY")
        .query_async(&mut on_replica)
        .await
        .unwrap();
    redis::cmd("GET")
        .arg(KEY)
        .query_async(&mut on_replica)
        .await
        .unwrap()
}

/// Writes `value` to KEY on its master and waits until the master's replica acknowledged it, so
/// a failover cannot lose it.
async fn write_replicated(port: u16, value: i64) {
    let mut connection = connect(port).await;
    let () = redis::cmd("SET")
        .arg(KEY)
        .arg(value)
        .query_async(&mut connection)
        .await
        .unwrap();
    let acknowledged: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(acknowledged, 1, "the replica acknowledged the write");
}

#[tokio::test]
async fn a_killed_master_is_replaced_by_its_replica_which_takes_writes() {
    let mut cluster = RedisCluster::start().await.unwrap();
    let slot = cluster.key_slot(KEY).await.unwrap();
    let old_master = cluster.master_of_slot(slot).await.unwrap();
    write_replicated(old_master, 7).await;

    let killed = cluster.kill_master_of_slot(slot).await.unwrap();
    assert_eq!(killed.port, old_master);
    assert_eq!(killed.replicas.len(), 1);
    assert!(
        redis::Client::open(format!("redis://127.0.0.1:{old_master}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .is_err(),
        "the killed master no longer accepts connections"
    );
    assert!(
        cluster
            .nodes()
            .iter()
            .any(|n| n.port == old_master && !n.running)
    );

    let took = cluster
        .wait_for_failover(slot, FAILOVER_BOUND)
        .await
        .unwrap();
    println!("slot {slot}: failed over {took:?} after its master was killed");
    // A failover cannot start before the master was silent for a node timeout.
    assert!(took >= NODE_TIMEOUT, "{took:?}");
    let new_master = cluster.master_of_slot(slot).await.unwrap();
    assert_eq!(new_master, killed.replicas[0], "its replica took over");
    assert_eq!(role(new_master).await, "master");

    // What the replica had acknowledged survived; the slot takes writes again.
    let mut connection = connect(new_master).await;
    let kept: i64 = redis::cmd("GET")
        .arg(KEY)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(kept, 7);
    let after: i64 = redis::cmd("INCR")
        .arg(KEY)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(after, 8);
    for node in cluster.nodes().iter().filter(|n| n.running) {
        let state = text(node.port, "CLUSTER", "INFO").await;
        assert_eq!(field(&state, "cluster_state").as_deref(), Some("ok"));
    }
}

#[tokio::test]
async fn a_killed_master_restarted_rejoins_as_a_replica_of_its_successor() {
    let mut cluster = RedisCluster::start().await.unwrap();
    let slot = cluster.key_slot(KEY).await.unwrap();
    let killed = cluster.kill_master_of_slot(slot).await.unwrap();
    cluster
        .wait_for_failover(slot, FAILOVER_BOUND)
        .await
        .unwrap();
    let new_master = cluster.master_of_slot(slot).await.unwrap();
    // A write while the old master is down (no replica to wait for yet).
    let () = redis::cmd("SET")
        .arg(KEY)
        .arg(11)
        .query_async(&mut connect(new_master).await)
        .await
        .unwrap();

    cluster.restart(killed.port).await.unwrap();

    assert!(cluster.nodes().iter().all(|n| n.running));
    assert_eq!(role(killed.port).await, "slave");
    let replication = text(killed.port, "INFO", "replication").await;
    assert_eq!(
        field(&replication, "master_port").as_deref(),
        Some(new_master.to_string().as_str())
    );
    assert_eq!(
        field(&replication, "master_link_status").as_deref(),
        Some("up")
    );
    assert_eq!(cluster.master_of_slot(slot).await.unwrap(), new_master);
    // It synced from its new master: a write made while it was down is on it.
    assert_eq!(replica_copy(killed.port).await, 11);
}
