//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::doc::Unavailable;
use super::{ApiError, AppState, ErrorCode};
use crate::store::Store;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    summary = "Liveness",
    description = "Answers `ok` while the process runs.",
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

/// Ready when the store answers a ping within `store.read_timeout_ms`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    summary = "Readiness",
    description = "Ready when the store answers.",
    responses((status = 200, description = "Ready", body = Ready), Unavailable)
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(HttpResponse::Ok().json(Ready {
            status: "ready",
            store: state.store.kind(),
        })),
        Err(e) => {
            state.metrics.store_error("ping", &e);
            Err(ApiError::new(
                e.code(),
                format!("the {} store is not reachable", state.store.kind()),
            )
            .with("store", json!(state.store.kind())))
        }
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain"))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
