//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{ApiError, AppState, ErrorCode};
use crate::store::Store;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Ready when the store answers a ping within `store.read_timeout_ms`.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.store.ping().await {
        Ok(()) => {
            Ok(HttpResponse::Ok().json(json!({"status": "ready", "store": state.store.kind()})))
        }
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

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
