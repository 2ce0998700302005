//! Builds the application from settings: store, registry, group-commit
//! writer, HTTP server and (unless disabled) the detection worker; runs it
//! until a signal, then drains requests, stops the worker (releasing its
//! leases) and flushes the writer so that nothing accepted is lost.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::config::Settings;
use crate::demo::Demo;
use crate::domain::Registry;
use crate::http::admin::Admin;
use crate::http::stream::Hub;
use crate::http::{self, ApiError, Code, Edge};
use crate::intake::{Intake, Writer, WriterTask};
use crate::read::Reader;
use crate::store::{AnyStore, Retention};
use crate::telemetry::Metrics;

mod worker;

use self::worker::WorkerThread;
pub use self::worker::{WorkerProcess, run_worker};

pub struct Application {
    port: u16,
    server: Server,
    writer: WriterTask,
    store: Arc<AnyStore>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    /// The detection worker running beside the API, when enabled.
    worker: Option<WorkerThread>,
    /// Simulated traffic (`serve --demo`).
    _demo: Option<Demo>,
}

impl Application {
    /// Binds the listener (port 0 picks one) but serves nothing until
    /// [`Application::run_until_stopped`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (registry, store) = registry_and_store(&settings)?;
        match store.kind() {
            "embedded" => tracing::warn!(
                "using the embedded in-memory store: reports are lost on exit; set store.redis_url for Redis"
            ),
            kind => tracing::info!(store = kind, "store configured"),
        }
        // Reporters without a client_id are identified under a key derived
        // from the secret: without one, a random key per process, so after a
        // restart or on another replica they count again.
        if settings.intake.reporter_secret.is_empty() {
            if store.kind() == "redis" {
                anyhow::bail!(
                    "intake.reporter_secret is empty: with Redis every replica must share one \
                     (OUTAGEWATCH_INTAKE__REPORTER_SECRET), or reporters without a client_id \
                     count again on each replica and after each restart"
                );
            }
            tracing::warn!(
                "intake.reporter_secret is empty: reporters without a client_id are identified under a \
                 random key of this process, so after a restart they can count again"
            );
        }
        let metrics = Arc::new(Metrics::new());
        let (writer, writer_task) = Writer::spawn(
            store.clone(),
            metrics.clone(),
            settings.intake.queue_capacity,
            settings.intake.max_batch,
            Duration::from_millis(settings.store.write_timeout_ms),
        );
        let retention = Retention::new(&settings.store, &settings.intake);
        // Each part is app data of its own; a handler takes the ones it uses.
        let intake = web::Data::new(Intake::new(
            registry.clone(),
            writer,
            metrics.clone(),
            &settings.intake,
        ));
        let reader = web::Data::new(Reader::new(
            registry.clone(),
            store.clone(),
            retention,
            metrics.clone(),
            &settings.api,
            &settings.web,
            settings.intake.retry_after_secs,
        ));
        let hub = web::Data::new(Hub::start(store.clone(), metrics.clone(), &settings.web));
        let admin = web::Data::new(Admin {
            token: settings.admin.token.clone(),
            import: settings.import.clone(),
            registry: registry.clone(),
            store: store.clone(),
            retention,
            metrics: metrics.clone(),
        });
        let edge = web::Data::new(Edge::new(&settings));
        let pages = web::Data::new(crate::web::Pages::new(&settings.web));
        let (store_data, metrics_data) = (
            web::Data::from(store.clone()),
            web::Data::from(metrics.clone()),
        );
        let listener = TcpListener::bind(settings.bind_addr())
            .with_context(|| format!("binding {}", settings.http.bind))?;
        let port = listener.local_addr()?.port();
        let connections =
            http::connections::Connections::new(&settings.http, settings.intake.retry_after_secs);
        let demo_intake = intake.clone().into_inner();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(intake.clone())
                .app_data(reader.clone())
                .app_data(hub.clone())
                .app_data(admin.clone())
                .app_data(edge.clone())
                .app_data(pages.clone())
                .app_data(store_data.clone())
                .app_data(metrics_data.clone())
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|e, _| ApiError::invalid_query(e).into()),
                )
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    ApiError::new(Code::InvalidParameter, format!("invalid path: {e}")).into()
                }))
                .wrap(from_fn(http::connections::limit))
                .wrap(from_fn(crate::web::security_headers))
                .wrap(from_fn(http::observe))
                .configure(crate::web::serve)
        })
        .on_connect(move |io, data| connections.on_connect(io, data))
        .keep_alive(Duration::from_secs(settings.http.keep_alive_secs))
        .client_request_timeout(Duration::from_secs(settings.http.head_timeout_secs))
        .shutdown_timeout(settings.http.shutdown_timeout_secs)
        .listen(listener)?;
        if settings.http.workers > 0 {
            server = server.workers(settings.http.workers);
        }
        tracing::info!(
            port,
            registry_services = registry.services().len(),
            "listening"
        );
        let worker = if settings.worker.enabled {
            Some(WorkerThread::start(&settings, &store, &registry, &metrics)?)
        } else {
            None
        };
        let demo = if settings.demo.enabled {
            let parts = crate::demo::Parts {
                store: store.clone(),
                intake: demo_intake,
                metrics: metrics.clone(),
            };
            let now = chrono::Utc::now().timestamp();
            Some(Demo::start(&settings.demo, &registry, parts, now).await?)
        } else {
            None
        };
        Ok(Application {
            port,
            server: server.run(),
            writer: writer_task,
            store,
            registry,
            metrics,
            worker,
            _demo: demo,
        })
    }

    /// The store the application uses (tests drive a worker on it).
    pub fn store(&self) -> Arc<AnyStore> {
        self.store.clone()
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// The registry and the store `settings` name, as every process starts
/// with them.
fn registry_and_store(settings: &Settings) -> anyhow::Result<(Arc<Registry>, Arc<AnyStore>)> {
    let registry =
        Registry::load(&settings.registry.path).context("loading the services registry")?;
    let store = AnyStore::from_settings(&settings.store, &settings.intake)
        .context("configuring the store")?;
    Ok((Arc::new(registry), Arc::new(store)))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

impl Application {
    /// Serves until SIGINT/SIGTERM (or a stop through the server handle), then
    /// flushes every report that was accepted into the queue.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            server,
            writer,
            store,
            worker,
            ..
        } = self;
        let served = server.await;
        if let Some(worker) = worker {
            worker.stop().await;
        }
        writer.finish().await;
        tracing::info!(store = store.kind(), "stopped; queued reports flushed");
        served.context("HTTP server")
    }
}
