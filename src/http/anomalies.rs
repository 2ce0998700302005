//! The anomaly feed: `GET /api/v1/anomalies` (filters, newest first, paged
//! by an opaque cursor) and `GET /api/v1/anomalies/{id}` (with the
//! minute-by-minute timeline). The query itself is [`crate::read::feed`].

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::doc::{AnomalyNotFound, BadRequest, FilterNotFound, Unavailable};
use super::{ApiError, sorted_json};
use crate::domain::Anomaly;
use crate::read::{FeedQuery, FilterQuery, Limit, Reader};

/// A page of anomalies
#[derive(Serialize, ToSchema)]
pub struct AnomalyPage {
    items: Vec<Anomaly>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// The anomaly feed
///
/// Incidents newest first (by start), without timelines.
#[utoipa::path(
    get, path = "/api/v1/anomalies", tag = "anomalies", operation_id = "listAnomalies",
    params(FilterQuery, FeedQuery, Limit),
    responses((status = 200, description = "A page of anomalies", body = AnomalyPage), BadRequest, FilterNotFound, Unavailable)
)]
pub async fn list(
    reader: web::Data<Reader>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let (items, next_cursor) = reader.page_of(&query).await?;
    sorted_json(AnomalyPage { items, next_cursor })
}

/// One anomaly
///
/// The anomaly with its minute-by-minute timeline.
#[utoipa::path(
    get, path = "/api/v1/anomalies/{id}", tag = "anomalies", operation_id = "getAnomaly",
    params(("id" = String, Path, example = "whatsapp-20240305T1502Z")),
    responses((status = 200, description = "The anomaly", body = Anomaly), AnomalyNotFound, Unavailable)
)]
pub async fn one(
    reader: web::Data<Reader>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(reader.anomaly(&path).await?))
}
