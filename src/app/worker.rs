//! The detection worker beside the API (on a thread of its own) or alone
//! (`outagewatch worker`, with a small metrics server).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio::sync::watch;

use super::{registry_and_store, shutdown_signal};
use crate::config::Settings;
use crate::domain::Registry;
use crate::http;
use crate::store::AnyStore;
use crate::telemetry::Metrics;
use crate::worker::Worker;

/// The detection worker on a thread of its own: a tick is CPU-bound for a
/// moment, and on the API's thread it would hold up the group-commit writer
/// and so every report waiting for its 202. With Redis the worker also has
/// its own connection, so its reads never queue behind intake's writes.
pub(super) struct WorkerThread {
    stop: watch::Sender<bool>,
    done: tokio::sync::oneshot::Receiver<()>,
    thread: std::thread::JoinHandle<()>,
}

impl WorkerThread {
    pub(super) fn start(
        settings: &Settings,
        store: &Arc<AnyStore>,
        registry: &Arc<Registry>,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let store = match store.kind() {
            // The embedded store lives in this process: share it.
            "embedded" => store.clone(),
            _ => Arc::new(
                AnyStore::from_settings(&settings.store, &settings.intake)
                    .context("configuring the worker's store")?,
            ),
        };
        let worker = Worker::new(
            store,
            registry.clone(),
            metrics.clone(),
            settings.detect.clone(),
            settings.worker.clone(),
        );
        tracing::info!(worker = worker.id(), "detection worker started");
        let (stop, stopped) = watch::channel(false);
        let (finished, done) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the worker's runtime")?;
        let thread = std::thread::Builder::new()
            .name("detect-worker".into())
            .spawn(move || {
                runtime.block_on(worker.run(stopped));
                let _ = finished.send(());
            })
            .context("starting the worker thread")?;
        Ok(WorkerThread { stop, done, thread })
    }

    /// Asks the worker to stop (it releases its leases) and waits for it.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
        if self.thread.join().is_err() {
            tracing::error!("detection worker thread panicked");
        }
    }
}

/// Runs the detection worker alone (`outagewatch worker`) until SIGINT or
/// SIGTERM.
pub async fn run_worker(settings: Settings) -> anyhow::Result<()> {
    WorkerProcess::start(settings)
        .await?
        .run_until(shutdown_signal())
        .await
}

/// `outagewatch worker`: the detection worker alone, with a small HTTP
/// server for its metrics (`worker.metrics_bind`).
pub struct WorkerProcess {
    worker: Worker,
    metrics_server: Option<(u16, Server)>,
}

impl WorkerProcess {
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let (registry, store) = registry_and_store(&settings)?;
        if store.kind() == "embedded" {
            anyhow::bail!(
                "a worker on its own needs Redis (store.redis_url): the embedded store lives inside one process; \
                 `outagewatch serve` runs the worker beside the API"
            );
        }
        let metrics = Arc::new(Metrics::new());
        let metrics_server = match settings.worker.metrics_bind.as_str() {
            "" => None,
            bind => Some(metrics_server(bind, metrics.clone())?),
        };
        let worker = Worker::new(
            store,
            registry,
            metrics,
            settings.detect.clone(),
            settings.worker.clone(),
        );
        tracing::info!(
            worker = worker.id(),
            metrics_port = metrics_server.as_ref().map(|(port, _)| *port),
            "detection worker started"
        );
        Ok(WorkerProcess {
            worker,
            metrics_server,
        })
    }

    /// The port of /metrics, when served.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(port, _)| *port)
    }

    /// Ticks until `stop` completes, then releases the leases and stops the
    /// metrics server.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let (stopping, stopped) = watch::channel(false);
        let task = tokio::spawn(self.worker.run(stopped));
        let server = self.metrics_server.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        stop.await;
        let _ = stopping.send(true);
        task.await.context("detection worker")?;
        if let Some((handle, served)) = server {
            handle.stop(true).await;
            let _ = served.await;
        }
        Ok(())
    }
}

/// /metrics and /healthz of a worker on its own.
fn metrics_server(bind: &str, metrics: Arc<Metrics>) -> anyhow::Result<(u16, Server)> {
    let listener =
        TcpListener::bind(bind).with_context(|| format!("binding worker.metrics_bind {bind}"))?;
    let port = listener.local_addr()?.port();
    let metrics = web::Data::from(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .route("/metrics", web::get().to(http::ops::metrics))
            .route("/healthz", web::get().to(http::ops::healthz))
    })
    .workers(1)
    .listen(listener)?
    .run();
    Ok((port, server))
}
