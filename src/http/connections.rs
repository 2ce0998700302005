//! Connections per client address, and how long one connection may live.
//!
//! Each accepted connection is counted against its peer's address (IPv6: its
//! /64) until it closes. Past `http.max_connections_per_address`, every
//! request on the new connection is answered 429 `too_many_connections` and
//! the connection is closed, so one client cannot hold all of a server's
//! connections. Peers in `http.trusted_proxies` are not counted: behind a
//! proxy every connection comes from it. A keep-alive connection older than
//! `http.max_connection_secs` is closed after its next answer. How long an
//! idle one stays open and how long a request head may take are
//! `http.keep_alive_secs` and `http.head_timeout_secs` (given to actix-web).

use std::any::Any;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use ipnet::IpNet;

use super::{ApiError, AppState, Code};
use crate::config::HttpSettings;
use crate::intake::limiter::source_key;

/// The open connections of every address, shared by the server's workers.
pub struct Connections {
    open: Mutex<HashMap<u128, usize>>,
    max_per_address: usize,
    max_age: Duration,
    proxies: Vec<IpNet>,
}

/// A connection's own record, kept in its connection data: it is counted
/// while this lives, which is as long as the connection.
struct Held {
    connections: Arc<Connections>,
    /// The address it is counted against; none for a trusted proxy.
    key: Option<u128>,
    opened: Instant,
    /// It was one too many for its address.
    over: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
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
    pub fn new(settings: &HttpSettings) -> Arc<Self> {
        Arc::new(Connections {
            open: Mutex::new(HashMap::new()),
            max_per_address: settings.max_connections_per_address,
            max_age: Duration::from_secs(settings.max_connection_secs),
            proxies: settings.trusted_proxies.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new connection (actix-web's `on_connect`): `io` is its
    /// socket.
    pub fn on_connect(self: &Arc<Self>, io: &dyn Any, data: &mut Extensions) {
        let peer = io
            .downcast_ref::<actix_web::rt::net::TcpStream>()
            .and_then(|s| s.peer_addr().ok())
            .map(|a| a.ip().to_canonical());
        let key = peer
            .filter(|ip| !self.proxies.iter().any(|p| p.contains(ip)))
            .map(|ip: IpAddr| source_key(ip));
        let mut over = false;
        if let Some(key) = key {
            let mut open = self.lock();
            let n = open.entry(key).or_default();
            *n += 1;
            over = *n > self.max_per_address;
        }
        data.insert(Held {
            connections: self.clone(),
            key,
            opened: Instant::now(),
            over,
        });
    }
}

/// Answers 429 on a connection one too many for its address, and closes a
/// connection past its age after this answer.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let (over, aged) = match req.request().conn_data::<Held>() {
        Some(held) => (held.over, held.opened.elapsed() >= held.connections.max_age),
        None => (false, false),
    };
    let mut response = if over {
        let state = req.app_data::<web::Data<AppState>>();
        let (max, retry) = state.map_or((0, 1), |s| {
            (
                s.settings.http.max_connections_per_address,
                s.settings.intake.retry_after_secs,
            )
        });
        let refused = ApiError::new(
            Code::TooManyConnections,
            format!(
                "this address has more than {max} connections open (http.max_connections_per_address); close one first"
            ),
        )
        .retry_after(retry);
        req.into_response(refused.error_response())
            .map_into_right_body()
    } else {
        next.call(req).await?.map_into_left_body()
    };
    if over || aged {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}
