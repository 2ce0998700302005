//! `GET /api/v1/anomalies/stream`: Server-Sent Events of the feed (an
//! incident opened, updated or resolved), resumable with Last-Event-ID.
//!
//! Events live in the store (a capped Redis stream), so every API replica
//! sees every worker's events. One [`Hub`] task per process polls the store
//! every `web.stream_poll_ms` and fans new events out to its open streams,
//! so a thousand journalists cost the store one read per poll, not a
//! thousand. A stream that resumes (or falls behind the hub) reads what it
//! missed from the store a batch at a time, then follows the hub again,
//! skipping what it already sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

use super::doc::{BadRequest, FilterNotFound, Problem, Unavailable};
use super::{ApiError, Code, Edge};
use crate::config::WebSettings;
use crate::domain::Anomaly;
use crate::intake::limiter::source_key;
use crate::read::{Filter, FilterQuery, Reader};
use crate::store::{AnyStore, FeedEvent, FeedStore, parse_event_id};
use crate::telemetry::{Metrics, store_failed};

/// Events read from the store per round trip.
const READ_BATCH: usize = 500;

/// Fans the store's feed events out to this process's streams.
pub struct Hub {
    sender: broadcast::Sender<Arc<FeedEvent>>,
    /// The last event the hub has read: where a new stream starts.
    position: Arc<Mutex<Option<String>>>,
    /// Where streams that resume or fall behind read what they missed.
    store: Arc<AnyStore>,
    /// Where a corrupt stored event is counted.
    metrics: Arc<Metrics>,
    /// A permit per stream open here, `max_streams` (`web.max_streams`) of
    /// them.
    slots: Arc<Semaphore>,
    max_streams: usize,
    /// Streams open per source (address, IPv6 /64), each at most
    /// `max_per_source` (`web.max_streams_per_address`).
    per_source: Mutex<HashMap<u128, usize>>,
    max_per_source: usize,
    /// `web.stream_keepalive_secs`.
    keepalive: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hub {
    /// Starts the polling task on the current runtime.
    pub fn start(store: Arc<AnyStore>, metrics: Arc<Metrics>, web: &WebSettings) -> Self {
        let (sender, _) = broadcast::channel(READ_BATCH * 2);
        let poll = Duration::from_millis(web.stream_poll_ms.max(10));
        let position = Arc::new(Mutex::new(None));
        let task = tokio::spawn(follow(
            store.clone(),
            metrics.clone(),
            sender.clone(),
            position.clone(),
            poll,
        ));
        Hub {
            sender,
            position,
            store,
            metrics,
            slots: Arc::new(Semaphore::new(web.max_streams)),
            max_streams: web.max_streams,
            per_source: Mutex::new(HashMap::new()),
            max_per_source: web.max_streams_per_address,
            keepalive: Duration::from_secs(web.stream_keepalive_secs.max(1)),
            task,
        }
    }
}

async fn follow(
    store: Arc<AnyStore>,
    metrics: Arc<Metrics>,
    sender: broadcast::Sender<Arc<FeedEvent>>,
    position: Arc<Mutex<Option<String>>>,
    poll: Duration,
) {
    let mut last: Option<String> = None;
    // Logged when reading starts and stops failing, not once a poll.
    let mut failing = false;
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // Start after the newest event there is: streams replay older
        // ones from the store themselves.
        let read = match last.clone() {
            None => store.last_event_id().await.map(|id| {
                last = Some(id.unwrap_or_else(|| "0-0".into()));
            }),
            Some(after) => store.events_after(&after, READ_BATCH).await.map(|events| {
                for e in events {
                    last = Some(e.id.clone());
                    // No receivers is fine: nobody is listening.
                    let _ = sender.send(Arc::new(e));
                }
            }),
        };
        *position.lock().unwrap_or_else(|p| p.into_inner()) = last.clone();
        match read {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("feed events readable again");
            }
            Ok(()) => {}
            // Logged when it starts, counted at every poll.
            Err(e) if !failing => {
                failing = true;
                store_failed!(
                    metrics,
                    "events_after",
                    &e,
                    "feed events unavailable; streams wait"
                );
            }
            Err(e) => metrics.store_error("events_after", &e),
        }
    }
}

/// A stream's place in the server's count (its permit) and its source's,
/// given back when the stream ends.
struct Slot {
    hub: web::Data<Hub>,
    source: u128,
    _permit: OwnedSemaphorePermit,
}

impl Hub {
    /// A place for one more stream from `source`, or why not: the server
    /// is full (`web.max_streams`), or this source holds its share
    /// (`web.max_streams_per_address`), so that readers behind other
    /// addresses still get theirs.
    fn admit(hub: &web::Data<Hub>, source: u128, retry_after_secs: u64) -> Result<Slot, ApiError> {
        let Ok(permit) = hub.slots.clone().try_acquire_owned() else {
            return Err(ApiError::new(
                Code::TooManyStreams,
                format!(
                    "this server has {} streams open (web.max_streams); retry shortly",
                    hub.max_streams
                ),
            )
            .retry_after(retry_after_secs));
        };
        let mut sources = hub.per_source.lock().unwrap_or_else(|p| p.into_inner());
        let held = sources.entry(source).or_default();
        if *held >= hub.max_per_source {
            return Err(ApiError::new(
                Code::TooManyStreamsFromAddress,
                format!(
                    "this address has {} streams open (web.max_streams_per_address); close one first",
                    hub.max_per_source
                ),
            )
            .retry_after(retry_after_secs));
        }
        *held += 1;
        Ok(Slot {
            hub: hub.clone(),
            source,
            _permit: permit,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut sources = self
            .hub
            .per_source
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = sources.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                sources.remove(&self.source);
            }
        }
    }
}

/// What a stream has sent so far and what it still has to.
struct Cursor {
    slot: Slot,
    receiver: broadcast::Receiver<Arc<FeedEvent>>,
    filter: Filter,
    /// The last event sent: its order and its id.
    last: Option<((u64, u64), String)>,
    /// Events read from the store, still to send.
    pending: std::vec::IntoIter<FeedEvent>,
    /// Reading missed events from the store (after a resume, or after
    /// falling behind the hub) rather than following the hub.
    catching_up: bool,
    keepalive: tokio::time::Interval,
    started: bool,
}

/// Where a resumed stream starts.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct LastEventId {
    #[param(rename = "Last-Event-ID", nullable = false)]
    id: Option<String>,
}

/// Where a resumed stream starts, for clients that cannot set headers.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Resume {
    /// As the Last-Event-ID header, which wins when both are sent
    last_event_id: Option<String>,
}

/// Live anomaly events (Server-Sent Events)
///
/// Events `opened`, `updated` and `resolved`, each with `id` (resume with the
/// Last-Event-ID header or `last_event_id` parameter) and the anomaly (without
/// timeline) as `data`. Comment lines keep idle streams open.
#[utoipa::path(
    get, path = "/api/v1/anomalies/stream", tag = "anomalies", operation_id = "streamAnomalies",
    params(
        FilterQuery,
        LastEventId,
        Resume
    ),
    responses(
        (status = 200, description = "An event stream", body = String, content_type = "text/event-stream"),
        BadRequest,
        FilterNotFound,
        (status = 429, description = "This address (an IPv6 /64) already has web.max_streams_per_address streams open (`too_many_streams_from_address`); close one first", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        Unavailable
    )
)]
pub async fn stream(
    req: HttpRequest,
    reader: web::Data<Reader>,
    hub: web::Data<Hub>,
    edge: web::Data<Edge>,
    filter: web::Query<FilterQuery>,
    query: web::Query<Resume>,
) -> Result<HttpResponse, ApiError> {
    let resume = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query.into_inner().last_event_id);
    let filter = reader.filter(&filter)?;
    let last = match resume.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) => Some((
            parse_event_id(id).ok_or_else(|| {
                ApiError::new(
                    Code::InvalidParameter,
                    format!("Last-Event-ID {id:?} is not an event id this API sent"),
                )
            })?,
            id.to_string(),
        )),
    };
    let slot = Hub::admit(&hub, source_key(edge.client(&req)), edge.retry_after_secs)?;
    // Subscribe before catching up from the store, so nothing falls
    // between the two.
    let receiver = hub.sender.subscribe();
    let catching_up = last.is_some();
    // Without Last-Event-ID the stream starts where the hub is now.
    let last = last.or_else(|| {
        let at = hub
            .position
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        Some((parse_event_id(&at)?, at))
    });
    let keepalive_every = hub.keepalive;
    let mut keepalive = tokio::time::interval_at(
        tokio::time::Instant::now() + keepalive_every,
        keepalive_every,
    );
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cursor = Cursor {
        slot,
        receiver,
        filter,
        last,
        pending: Vec::new().into_iter(),
        catching_up,
        keepalive,
        started: false,
    };
    let body = stream::unfold(cursor, |mut c| async move {
        let chunk = next_chunk(&mut c).await?;
        Some((Ok::<_, actix_web::Error>(chunk), c))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

/// The next bytes of the stream; `None` ends it (the hub is gone).
async fn next_chunk(c: &mut Cursor) -> Option<Bytes> {
    if !c.started {
        c.started = true;
        // Browsers reconnect after this many milliseconds.
        return Some(Bytes::from_static(
            b"retry: 3000\n: outagewatch anomaly events\n\n",
        ));
    }
    loop {
        if let Some(e) = c.pending.next() {
            if let Some(chunk) = accept(c, &e) {
                return Some(chunk);
            }
            continue;
        }
        if c.catching_up {
            let from = c.last.as_ref().map_or("0-0", |(_, id)| id).to_string();
            let hub = c.slot.hub.clone();
            // A store that cannot answer ends the stream; the client
            // reconnects with its Last-Event-ID.
            let batch = hub.store.events_after(&from, READ_BATCH).await.ok()?;
            c.catching_up = batch.len() == READ_BATCH;
            c.pending = batch.into_iter();
            continue;
        }
        tokio::select! {
            received = c.receiver.recv() => match received {
                Ok(e) => {
                    if let Some(chunk) = accept(c, &e) {
                        return Some(chunk);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow for the hub: catch up from the store.
                    c.catching_up = true;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            _ = c.keepalive.tick() => return Some(Bytes::from_static(b": keep-alive\n\n")),
        }
    }
}

/// The event as SSE text, if it is new to this stream and passes its filter.
fn accept(c: &mut Cursor, e: &FeedEvent) -> Option<Bytes> {
    let key = parse_event_id(&e.id)?;
    if c.last.as_ref().is_some_and(|(last, _)| key <= *last) {
        return None;
    }
    c.last = Some((key, e.id.clone()));
    // A corrupt one is logged, counted and not sent.
    let anomaly: Anomaly = c.slot.hub.metrics.stored("anomaly", &e.doc)?;
    if !c.filter.keeps(&anomaly) {
        return None;
    }
    Some(Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        e.id, e.kind, e.doc
    )))
}
