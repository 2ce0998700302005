//! The connection: one Redis through a connection manager, or a Redis
//! Cluster. On a cluster a pipeline may hold commands for many services,
//! so many hash slots, which a cluster refuses in one pipeline: it is split
//! by slot, the parts sent to their masters at once, and the answers put
//! back in the pipeline's order, so every caller reads a pipeline's answer
//! as from one Redis.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{Arg, Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::config::StoreSettings;

#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Does not connect: the first command does, and both kinds reconnect
    /// (and a cluster follows redirects and failovers) on their own. The
    /// store's own deadlines bound every call; the driver's retries are
    /// kept few and short, so that they fit inside them.
    pub fn new(settings: &StoreSettings) -> RedisResult<Conn> {
        let connect = Duration::from_millis(settings.connect_timeout_ms);
        if !settings.redis_cluster_nodes.is_empty() {
            let client = ClusterClientBuilder::new(settings.redis_cluster_nodes.clone())
                .connection_timeout(connect)
                .retries(4)
                .min_retry_wait(20)
                .max_retry_wait(250)
                .build()?;
            // A node that hangs (a host gone, a partition) must not hold
            // the client forever: the driver refreshes its slots on one
            // connection at a time. The longest call the store makes (an
            // import's chunk) fits in this.
            let longest = settings.write_timeout_ms.max(settings.read_timeout_ms) * 10;
            let config = redis::cluster::ClusterConfig::new()
                .set_connection_timeout(connect)
                .set_response_timeout(Duration::from_millis(longest));
            return Ok(Conn::Cluster(
                client.get_pending_async_connection_with_config(config),
            ));
        }
        let client = redis::Client::open(settings.redis_url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect))
            // Our own timeouts bound every call (write, read, import); the
            // driver's default of 500 ms would silently cut them all shorter.
            .set_response_timeout(None)
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(2);
        Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }

    /// PING every master (one Redis: the one), succeeding when all answer.
    pub async fn ping(&mut self) -> RedisResult<()> {
        match self {
            Conn::Single(c) => redis::cmd("PING").query_async(c).await,
            Conn::Cluster(c) => {
                let all = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                c.route_command(redis::cmd("PING"), all).await.map(|_| ())
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            // A transaction (offset > 0) must be one slot: sent whole.
            Conn::Cluster(c) => {
                if offset > 0 {
                    c.req_packed_commands(pipeline, offset, count)
                } else {
                    by_slot(c.clone(), pipeline)
                }
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The pipeline's commands grouped by their slot (a command without a key
/// goes with the one before it), the groups sent at once, and every
/// command's answer in the pipeline's order. A `WAIT` waits on
/// every master the pipeline wrote to: it is sent in each group, and
/// answers the fewest replicas any of them reached. (A master with several
/// of the pipeline's slots runs their WAITs one after the other; one WAIT
/// per master needs the slot map, which the driver does not expose.)
fn by_slot(conn: ClusterConnection, pipeline: &Pipeline) -> RedisFuture<'static, Vec<Value>> {
    let mut groups: Vec<(Option<Route>, Pipeline, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<Route, usize> = HashMap::new();
    let mut waits: Vec<(usize, Cmd)> = Vec::new();
    let mut last: Option<usize> = None;
    for (index, cmd) in pipeline.cmd_iter().enumerate() {
        let name = name_of(cmd).unwrap_or_default();
        if name == b"WAIT" {
            waits.push((index, cmd.clone()));
            continue;
        }
        let route = first_key(cmd, &name).map(|key| Route::with_key(key, SlotAddr::Master));
        let group = match (route, last) {
            (Some(route), _) => *group_of.entry(route).or_insert_with(|| {
                groups.push((Some(route), Pipeline::new(), Vec::new()));
                groups.len() - 1
            }),
            (None, Some(previous)) => previous,
            (None, None) => {
                groups.push((None, Pipeline::new(), Vec::new()));
                groups.len() - 1
            }
        };
        groups[group].1.add_command(cmd.clone());
        groups[group].2.push(index);
        last = Some(group);
    }
    if groups.is_empty() && !waits.is_empty() {
        groups.push((None, Pipeline::new(), Vec::new()));
    }
    for (_, part, positions) in &mut groups {
        for (index, wait) in &waits {
            part.add_command(wait.clone());
            positions.push(*index);
        }
    }
    let count = pipeline.len();
    async move {
        let sent = groups.into_iter().map(|(route, part, positions)| {
            let mut conn = conn.clone();
            async move {
                let n = part.len();
                let target = match route {
                    Some(route) => SingleNodeRoutingInfo::SpecificNode(route),
                    None => SingleNodeRoutingInfo::Random,
                };
                let values = conn.route_pipeline(part, 0, n, target).await?;
                Ok::<_, redis::RedisError>((positions, values))
            }
        });
        let mut answers: Vec<Option<Value>> = vec![None; count];
        for (positions, values) in try_join_all(sent).await? {
            for (position, value) in positions.into_iter().zip(values) {
                let answer = &mut answers[position];
                *answer = Some(match (answer.take(), value) {
                    (None, value) => value,
                    // A WAIT's answers: the fewest replicas reached, or
                    // the first that is not a count (an error).
                    (Some(Value::Int(a)), Value::Int(b)) => Value::Int(a.min(b)),
                    (Some(Value::Int(_)), other) => other,
                    (Some(first), _) => first,
                });
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or(Value::Nil))
            .collect())
    }
    .boxed()
}

/// A command's name, upper-cased.
fn name_of(cmd: &Cmd) -> Option<Vec<u8>> {
    match cmd.args_iter().next()? {
        Arg::Simple(name) => Some(name.to_ascii_uppercase()),
        _ => None,
    }
}

/// The first key of one of the store's commands, which decides its slot
/// (all of a command's keys share their hash tag): the third argument of a
/// script call with keys, none for PING, WAIT and SCRIPT, else the first.
fn first_key<'a>(cmd: &'a Cmd, name: &[u8]) -> Option<&'a [u8]> {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let _name = args.next()?;
    match name {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" => {
            let _script = args.next()?;
            let keys: usize = std::str::from_utf8(args.next()?).ok()?.parse().ok()?;
            (keys > 0).then(|| args.next()).flatten()
        }
        b"PING" | b"WAIT" | b"SCRIPT" | b"INFO" => None,
        _ => args.next(),
    }
}
