//! Connections per client address, and how long one connection may live.
//!
//! Each accepted connection is counted against its peer's address (IPv6: its
//! /64) until it closes. One past `http.max_connections_per_address` is
//! answered at once with 429 `too_many_connections` and closed, before it
//! can send anything, so one client cannot hold a server's connections by
//! opening them. Peers in `http.trusted_proxies` are not counted: behind a
//! proxy every connection comes from it. A keep-alive connection older than
//! `http.max_connection_secs` is closed after its next answer; and whatever
//! it does (a request head left unfinished, an answer not read, an event
//! stream), every connection is shut down a grace period later (the age
//! again, at most a minute). actix-web bounds an idle connection
//! (`http.keep_alive_secs`) and its first request head
//! (`http.head_timeout_secs`), not a later head; the deadline covers that.

use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::rt::net::TcpStream;
use ipnet::IpNet;

use super::{ApiError, Code};
use crate::config::HttpSettings;
use crate::intake::limiter::source_key;

/// The open connections of every address, shared by the server's workers.
pub struct Connections {
    open: Mutex<HashMap<u128, usize>>,
    max_per_address: usize,
    max_age: Duration,
    /// After `max_age`, how long a connection may still take to finish.
    grace: Duration,
    proxies: Vec<IpNet>,
    /// The whole answer to a connection one too many.
    refusal: Vec<u8>,
}

/// A connection's own record, kept in its connection data: it is counted
/// while this lives, which is as long as the connection.
struct Held {
    connections: Arc<Connections>,
    /// The address it is counted against; none for a trusted proxy.
    key: Option<u128>,
    opened: Instant,
    /// Shuts the connection down at its deadline, unless it ends first.
    deadline: Option<actix_web::rt::task::JoinHandle<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(deadline) = &self.deadline {
            deadline.abort();
        }
        if let Some(key) = self.key {
            let mut open = self.connections.lock();
            if let Some(n) = open.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

impl Connections {
    pub fn new(settings: &HttpSettings, retry_after_secs: u64) -> Arc<Self> {
        let max_age = Duration::from_secs(settings.max_connection_secs);
        let max = settings.max_connections_per_address;
        let refused = ApiError::new(
            Code::TooManyConnections,
            format!(
                "this address has {max} connections open (http.max_connections_per_address); close one first"
            ),
        );
        Arc::new(Connections {
            open: Mutex::new(HashMap::new()),
            max_per_address: max,
            max_age,
            grace: max_age.min(Duration::from_secs(60)),
            proxies: settings.trusted_proxies.clone(),
            refusal: refused.raw_answer(retry_after_secs),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new connection, or refuses it (actix-web's `on_connect`:
    /// `io` is its socket, `data` its connection data).
    pub fn on_connect(self: &Arc<Self>, io: &dyn Any, data: &mut Extensions) {
        let Some(stream) = io.downcast_ref::<TcpStream>() else {
            tracing::warn!("a connection that is not TCP is not counted per address");
            return;
        };
        let peer = stream.peer_addr().ok().map(|a| a.ip().to_canonical());
        let key = peer
            .filter(|ip| !self.proxies.iter().any(|p| p.contains(ip)))
            .map(|ip: IpAddr| source_key(ip));
        if let Some(key) = key {
            let mut open = self.lock();
            let n = open.entry(key).or_default();
            if *n >= self.max_per_address {
                drop(open);
                // The answer fits a fresh socket's send buffer; the
                // connection ends here, its requests unread.
                let socket = socket2::SockRef::from(stream);
                let _ = socket.send(&self.refusal);
                let _ = socket.shutdown(Shutdown::Both);
                return;
            }
            *n += 1;
        }
        let deadline = stream.as_fd().try_clone_to_owned().ok().map(|fd| {
            let at = self.max_age + self.grace;
            actix_web::rt::spawn(shut_down_after(fd, at))
        });
        data.insert(Held {
            connections: self.clone(),
            key,
            opened: Instant::now(),
            deadline,
        });
    }
}

/// Shuts down the socket behind `fd` (a duplicate of the connection's)
/// after `wait`; the connection's task then ends on its own.
async fn shut_down_after(fd: OwnedFd, wait: Duration) {
    actix_web::rt::time::sleep(wait).await;
    let _ = socket2::SockRef::from(&fd).shutdown(Shutdown::Both);
}

/// Closes a connection past its age after this answer.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let aged = req
        .request()
        .conn_data::<Held>()
        .is_some_and(|held| held.opened.elapsed() >= held.connections.max_age);
    let mut response = next.call(req).await?;
    if aged {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}
