//! The anomaly feed: `GET /api/v1/anomalies` (filters, newest first, paged
//! by an opaque cursor) and `GET /api/v1/anomalies/{id}` (with the
//! minute-by-minute timeline). The query itself is [`crate::read::feed`].

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::doc::{AnomalyNotFound, BadRequest, FilterNotFound, Limit, Unavailable};
use super::{ApiError, sorted_json};
use crate::domain::Anomaly;
use crate::read::Reader;

type Query = web::Query<HashMap<String, String>>;

/// The feed's filters, as the feed and the stream take them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FilterQuery {
    service: Option<String>,
    company: Option<String>,
    #[param(inline)]
    status: Option<crate::domain::AnomalyStatus>,
    #[param(schema_with = crate::domain::anomaly::severity_schema)]
    severity: Option<String>,
}

/// The rest of the feed's query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageQuery {
    /// Only anomalies that started at or after this time (RFC 3339); an incident that started earlier and is still open is not included
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only anomalies that started at or before this time (RFC 3339); not before since
    #[param(format = DateTime)]
    until: Option<String>,
    #[param(pattern = r"^[0-9]{1,18}_[\s\S]+$")]
    cursor: Option<String>,
}

/// A page of anomalies
#[derive(Serialize, ToSchema)]
pub struct AnomalyPage {
    items: Vec<Anomaly>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// `GET /api/v1/anomalies`.
#[utoipa::path(
    get,
    path = "/api/v1/anomalies",
    tag = "anomalies",
    operation_id = "listAnomalies",
    summary = "The anomaly feed",
    description = "Incidents newest first (by start), without timelines.",
    params(FilterQuery, PageQuery, Limit),
    responses((status = 200, description = "A page of anomalies", body = AnomalyPage), BadRequest, FilterNotFound, Unavailable)
)]
pub async fn list(reader: web::Data<Reader>, query: Query) -> Result<HttpResponse, ApiError> {
    let (items, next_cursor) = reader.page_of(&query).await?;
    sorted_json(AnomalyPage { items, next_cursor })
}

/// `GET /api/v1/anomalies/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/anomalies/{id}",
    tag = "anomalies",
    operation_id = "getAnomaly",
    summary = "One anomaly",
    description = "The anomaly with its minute-by-minute timeline.",
    params(("id" = String, Path, example = "whatsapp-20240305T1502Z")),
    responses((status = 200, description = "The anomaly", body = Anomaly), AnomalyNotFound, Unavailable)
)]
pub async fn one(
    reader: web::Data<Reader>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(reader.anomaly(&path).await?))
}
