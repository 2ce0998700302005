//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::doc::Unavailable;
use super::{ApiError, ErrorCode};
use crate::store::{AnyStore, Store};
use crate::telemetry::Metrics;

/// Liveness
///
/// Answers `ok` while the process runs.
#[utoipa::path(
    get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "ok", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// The answer of a ready server.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    status: &'static str,
    /// `redis` or `embedded`.
    store: &'static str,
}

/// Readiness
///
/// Ready when the store answers a ping within `store.read_timeout_ms`.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses((status = 200, description = "Ready", body = Ready), Unavailable)
)]
pub async fn readyz(
    store: web::Data<AnyStore>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    match store.ping().await {
        Ok(()) => Ok(HttpResponse::Ok().json(Ready {
            status: "ready",
            store: store.kind(),
        })),
        Err(e) => {
            metrics.store_error("ping", &e);
            Err(ApiError::new(
                e.code(),
                format!("the {} store is not reachable", store.kind()),
            )
            .with("store", json!(store.kind())))
        }
    }
}

/// Prometheus metrics
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain"))
)]
pub async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}
