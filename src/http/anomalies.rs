//! The anomaly feed: `GET /api/v1/anomalies` (filters, newest first, paged
//! by an opaque cursor) and `GET /api/v1/anomalies/{id}` (with the
//! minute-by-minute timeline). The query itself is [`crate::read::feed`].

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{ApiError, AppState};

type Query = web::Query<HashMap<String, String>>;

/// `GET /api/v1/anomalies`.
pub async fn list(state: web::Data<AppState>, query: Query) -> Result<HttpResponse, ApiError> {
    let (items, next_cursor) = state.reader.page_of(&query).await?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next_cursor})))
}

/// `GET /api/v1/anomalies/{id}`.
pub async fn one(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.reader.anomaly(&path).await?))
}
