//! Builds the application from settings: store, registry, group-commit writer
//! and HTTP server; runs it until a signal, then drains requests and flushes
//! the writer so that nothing accepted is lost.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::config::Settings;
use crate::domain::Registry;
use crate::http::{self, ApiError, AppState, Code};
use crate::intake::{Intake, RateLimiter, Writer, WriterTask};
use crate::store::{AnyStore, Retention};
use crate::telemetry::Metrics;

pub struct Application {
    port: u16,
    server: Server,
    writer: WriterTask,
    state: web::Data<AppState>,
}

impl Application {
    /// Binds the listener (port 0 picks one) but serves nothing until
    /// [`Application::run_until_stopped`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let registry = Arc::new(
            Registry::load(&settings.registry.path).context("loading the services registry")?,
        );
        let store = Arc::new(
            AnyStore::from_settings(&settings.store, &settings.intake)
                .context("configuring the store")?,
        );
        match store.kind() {
            "embedded" => tracing::warn!(
                "using the embedded in-memory store: reports are lost on exit; set store.redis_url for Redis"
            ),
            kind => tracing::info!(store = kind, "store configured"),
        }
        if settings.intake.reporter_secret.is_empty() && store.kind() == "redis" {
            tracing::warn!(
                "intake.reporter_secret is empty: reporters without a client_id are identified under a random \
                 per-process key, so after a restart or on another replica they can count again; set it"
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
        let state = web::Data::new(AppState {
            retention: Retention::new(&settings.store, &settings.intake),
            intake: Intake::new(registry.clone(), writer, metrics.clone(), &settings.intake),
            limiter: RateLimiter::new(
                settings.intake.rate_limit_per_minute,
                settings.intake.rate_limit_burst,
            ),
            settings: settings.clone(),
            registry,
            store,
            metrics,
        });
        let listener = TcpListener::bind(settings.bind_addr())
            .with_context(|| format!("binding {}", settings.http.bind))?;
        let port = listener.local_addr()?.port();
        let server_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(server_state.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::new(Code::InvalidParameter, format!("invalid query string: {e}"))
                        .into()
                }))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    ApiError::new(Code::InvalidParameter, format!("invalid path: {e}")).into()
                }))
                .wrap(from_fn(http::observe))
                .configure(http::routes)
        })
        .shutdown_timeout(settings.http.shutdown_timeout_secs)
        .listen(listener)?;
        if settings.http.workers > 0 {
            server = server.workers(settings.http.workers);
        }
        tracing::info!(
            port,
            registry_services = state.registry.services().len(),
            "listening"
        );
        Ok(Application {
            port,
            server: server.run(),
            writer: writer_task,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or a stop through the server handle), then
    /// flushes every report that was accepted into the queue.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            server,
            writer,
            state,
            ..
        } = self;
        let served = server.await;
        writer.finish().await;
        tracing::info!(
            store = state.store.kind(),
            "stopped; queued reports flushed"
        );
        served.context("HTTP server")
    }
}
