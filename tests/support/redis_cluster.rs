//! A throwaway Redis Cluster of our own: three masters and three replicas,
//! each a `redis-server --cluster-enabled yes` ([`RedisServer`]) on its own
//! free loopback port and temp dir, joined by `redis-cli --cluster create`,
//! all killed and reaped on drop. Never the machine's Redis.
//!
//! Include it after `redis_server.rs` (it uses that module's
//! `RedisServer` and `free_port`). `redis-cli` comes from `$REDIS_CLI` or
//! PATH, like `redis-server`; a missing binary is an error that names the
//! fix.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::redis_server::{RedisServer, free_port};

/// Masters, each with one replica.
const MASTERS: usize = 3;
/// How long the nodes have to agree that every slot is served.
const FORM_LIMIT: Duration = Duration::from_secs(30);
/// `cluster-node-timeout`: a master silent this long is failed over. Short,
/// so that a failover test takes seconds.
const NODE_TIMEOUT_MS: u64 = 2000;

pub struct RedisCluster {
    /// By port.
    nodes: BTreeMap<u16, RedisServer>,
}

/// One node as `CLUSTER NODES` describes it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub master: bool,
    /// Failed or not connected, as the asked node sees it.
    pub failed: bool,
    /// Slot ranges a master serves, inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    pub fn start() -> anyhow::Result<RedisCluster> {
        let mut nodes = BTreeMap::new();
        let node_timeout = NODE_TIMEOUT_MS.to_string();
        for _ in 0..MASTERS * 2 {
            let port = free_cluster_port()?;
            let node = RedisServer::start_on_port_with(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &node_timeout,
                    // A replica may be promoted however long it was cut off.
                    "--cluster-replica-validity-factor",
                    "0",
                    // A replica (re)joining syncs at once, not after
                    // Redis's default wait of 5 s for others to join.
                    "--repl-diskless-sync-delay",
                    "0",
                ],
            )?;
            nodes.insert(port, node);
        }
        let cluster = RedisCluster { nodes };
        cluster.create()?;
        cluster.wait_until_formed()?;
        // And each master's replica acknowledges a write: a replica can be
        // online and still not answer WAIT for a moment.
        let deadline = Instant::now() + FORM_LIMIT;
        while !cluster.replicas_acknowledge()? {
            if Instant::now() > deadline {
                bail!("the replicas did not acknowledge writes within {FORM_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    fn create(&self) -> anyhow::Result<()> {
        let binary = std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
        let addresses: Vec<String> = self
            .nodes
            .keys()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let out = Command::new(&binary)
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .with_context(|| {
                format!("cannot run {binary:?}; install redis-tools (the README's test command does) or set REDIS_CLI")
            })?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(())
    }

    /// Until every node says the cluster is ok and all 16384 slots are
    /// served, and every replica has its master's data (its link is up).
    pub fn wait_until_formed(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + FORM_LIMIT;
        loop {
            let states: Vec<anyhow::Result<(String, String)>> = self
                .nodes
                .values()
                .map(|n| {
                    Ok((
                        n.command(&["CLUSTER", "INFO"])?,
                        n.command(&["INFO", "replication"])?,
                    ))
                })
                .collect();
            let ok = states.iter().all(|s| {
                s.as_ref().is_ok_and(|(info, replication)| {
                    info.contains("cluster_state:ok")
                        && info.contains("cluster_slots_ok:16384")
                        && (replication.contains("role:master")
                            && replication.contains("connected_slaves:1")
                            || replication.contains("master_link_status:up")
                                && !replication.contains("master_sync_in_progress:1"))
                })
            });
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the cluster did not form within {FORM_LIMIT:?}: {states:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether every master's replica acknowledges a write at once: a
    /// replicated, keyless one (FLUSHALL: only for the new, empty cluster),
    /// then `WAIT 1` on the same connection.
    fn replicas_acknowledge(&self) -> anyhow::Result<bool> {
        for port in self.masters()? {
            let answers = self
                .node(port)
                .commands(&[&["FLUSHALL"], &["WAIT", "1", "200"]])?;
            if answers.last().map(String::as_str) != Some("1") {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Seed URLs, one per node, as `store.redis_cluster_nodes` takes them.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .keys()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    pub fn node(&self, port: u16) -> &RedisServer {
        &self.nodes[&port]
    }

    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes.get_mut(&port).expect("a node of this cluster")
    }

    /// The topology as the first live node sees it.
    pub fn topology(&self) -> anyhow::Result<Vec<NodeInfo>> {
        let mut last = None;
        for node in self.nodes.values() {
            match node.command(&["CLUSTER", "NODES"]) {
                Ok(text) => return parse_nodes(&text),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no nodes")))
    }

    /// The ports of the masters serving slots, live ones only.
    pub fn masters(&self) -> anyhow::Result<Vec<u16>> {
        Ok(self
            .topology()?
            .into_iter()
            .filter(|n| n.master && !n.failed && !n.slots.is_empty())
            .map(|n| n.port)
            .collect())
    }

    /// The port of the master serving `slot`.
    pub fn master_of_slot(&self, slot: u16) -> anyhow::Result<u16> {
        self.topology()?
            .into_iter()
            .find(|n| {
                n.master && !n.failed && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
            })
            .map(|n| n.port)
            .context("no live master serves the slot")
    }

    /// `CLUSTER KEYSLOT key`, asked of a live node.
    pub fn slot_of(&self, key: &str) -> anyhow::Result<u16> {
        let port = self.masters()?.first().copied().context("no master")?;
        Ok(self
            .node(port)
            .command(&["CLUSTER", "KEYSLOT", key])?
            .parse()?)
    }

    /// A command on every live master; their answers by port.
    pub fn on_masters(&self, args: &[&str]) -> anyhow::Result<BTreeMap<u16, String>> {
        self.masters()?
            .into_iter()
            .map(|port| Ok((port, self.node(port).command(args)?)))
            .collect()
    }
}

/// Lines of `CLUSTER NODES`: `id addr flags master ping pong epoch state slots...`.
fn parse_nodes(text: &str) -> anyhow::Result<Vec<NodeInfo>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                bail!("unexpected CLUSTER NODES line {line:?}");
            }
            // 127.0.0.1:7000@17000
            let port = fields[1]
                .split(['@', ','])
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .with_context(|| format!("no port in {line:?}"))?;
            let flags = fields[2];
            let slots = fields[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Ok(NodeInfo {
                id: fields[0].to_string(),
                port,
                master: flags.contains("master"),
                failed: flags.contains("fail") || fields[7] != "connected",
                slots,
            })
        })
        .collect()
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let port = free_port()?;
        if port < 55_000 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port with a free cluster bus port")
}
