//! Services and companies: the registry joined with recent counts, status
//! and open incidents. The numbers come from [`crate::read`], shared with
//! the web pages; a service's series, breakdown and export are in
//! [`super::counts`].

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::doc::{BadRequest, CompanyId, CompanyNotFound, ServiceId, ServiceNotFound};
use super::{ApiError, sorted_json};
use crate::domain::time::now_minute;
use crate::domain::{Anomaly, Company, Service, Status};
use crate::read::{self, Limit, OpenIncidents, Reader, Recent, Span, status_of};

/// A service as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Service)]
pub struct ServiceView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub company: &'a str,
    pub category: String,
    pub aliases: &'a [String],
    pub problems: Vec<&'static str>,
    /// `ok`, `possible` or `problem` (the severity of the open incident);
    /// null when the store cannot answer.
    #[schema(required = true)]
    pub status: Option<Status>,
    /// Counted reports in the last 15 minutes; null when the store is unreachable.
    #[schema(required = true)]
    pub reports_15m: Option<u64>,
    #[schema(required = true)]
    pub reports_24h: Option<u64>,
}

impl<'a> ServiceView<'a> {
    pub fn new(s: &'a Service, recent: Option<Recent>, open: &Option<OpenIncidents>) -> Self {
        ServiceView {
            id: &s.id,
            name: &s.name,
            company: &s.company,
            category: s.category.to_string(),
            aliases: &s.aliases,
            problems: s.problems.iter().map(|p| p.as_str()).collect(),
            status: status_of(open, &s.id),
            reports_15m: recent.map(|r| r.m15),
            reports_24h: recent.and_then(|r| r.h24),
        }
    }
}

/// The query of `GET /api/v1/services`, beside its [`Limit`].
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `next_cursor` of the previous page (the last service id it listed); empty: the first page
    cursor: Option<String>,
    category: Option<String>,
}

/// A page of services
#[derive(Serialize, ToSchema)]
pub struct ServicePage<'a> {
    pub items: Vec<ServiceView<'a>>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// List services
///
/// Services sorted by id, with status and recent counts.
#[utoipa::path(
    get, path = "/api/v1/services", tag = "services", operation_id = "listServices",
    params(Limit, ListQuery),
    responses((status = 200, description = "A page of services", body = ServicePage), BadRequest)
)]
pub async fn list(
    reader: web::Data<Reader>,
    limit: web::Query<Limit>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = reader.page_limit(limit.limit.as_deref())?;
    let after = query.cursor.as_deref().unwrap_or("");
    let category = query.category.as_ref().map(|c| c.to_ascii_lowercase());
    let mut matching = reader
        .registry()
        .services()
        .iter()
        .filter(|s| {
            category
                .as_deref()
                .is_none_or(|c| s.category.to_string() == c)
        })
        .filter(|s| s.id.as_str() > after);
    let page: Vec<&Service> = matching.by_ref().take(limit).collect();
    let next_cursor = match (matching.next(), page.last()) {
        (Some(_), Some(last)) => Some(last.id.clone()),
        _ => None,
    };
    let (counts, open) = reader.recent_and_open(&page, Span::Day, now_minute()).await;
    let items: Vec<ServiceView> = page
        .iter()
        .zip(counts)
        .map(|(s, c)| ServiceView::new(s, c, &open))
        .collect();
    sorted_json(ServicePage { items, next_cursor })
}

/// A service with its open incident.
#[derive(Serialize, ToSchema)]
pub struct ServiceDetail<'a> {
    #[serde(flatten)]
    pub service: ServiceView<'a>,
    #[schema(required = false)]
    pub open_incident: Option<&'a Anomaly>,
}

/// One service
///
/// The service (id or alias, any case) with its status and open incident.
#[utoipa::path(
    get, path = "/api/v1/services/{id}", tag = "services", operation_id = "getService",
    params(ServiceId),
    responses((status = 200, description = "The service", body = ServiceDetail), ServiceNotFound)
)]
pub async fn one(
    reader: web::Data<Reader>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let service = reader.find_service(&path)?;
    let one = [service];
    let (counts, open) = reader.recent_and_open(&one, Span::Day, now_minute()).await;
    let detail = ServiceDetail {
        service: ServiceView::new(service, counts[0], &open),
        open_incident: open.as_ref().and_then(|o| o.get(&service.id)),
    };
    sorted_json(detail)
}

/// Companies and their service ids.
#[derive(Serialize, ToSchema)]
pub struct CompanyList<'a> {
    items: Vec<CompanyEntry<'a>>,
    /// Always null: one page.
    #[schema(schema_with = null, required = true)]
    next_cursor: Option<String>,
}

/// The schema of `null`.
fn null() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Null)
        .build()
}

/// A company and its service ids.
#[derive(Serialize, ToSchema)]
pub struct CompanyEntry<'a> {
    id: &'a str,
    name: &'a str,
    services: Vec<&'a str>,
}

/// List companies
///
/// Companies and their service ids.
#[utoipa::path(
    get, path = "/api/v1/companies", tag = "services", operation_id = "listCompanies",
    responses((status = 200, description = "Companies", body = CompanyList))
)]
pub async fn companies(reader: web::Data<Reader>) -> HttpResponse {
    let items: Vec<CompanyEntry> = reader
        .registry()
        .companies()
        .iter()
        .map(|c| {
            let services: Vec<&str> = reader
                .registry()
                .services_of(&c.id)
                .map(|s| s.id.as_str())
                .collect();
            CompanyEntry {
                id: &c.id,
                name: &c.name,
                services,
            }
        })
        .collect();
    HttpResponse::Ok().json(CompanyList {
        items,
        next_cursor: None,
    })
}

/// A company with its services and its worst status.
// Fields in the order of their names (the services' keys are sorted too).
#[derive(Serialize, ToSchema)]
#[schema(as = Company)]
pub struct CompanyView<'a> {
    id: &'a str,
    name: &'a str,
    services: Vec<ServiceView<'a>>,
    /// The worst status of its services; null when the store cannot say.
    #[schema(required = true)]
    status: Option<Status>,
}

/// One company
///
/// The company's services side by side and its worst status.
#[utoipa::path(
    get, path = "/api/v1/companies/{id}", tag = "services", operation_id = "getCompany",
    params(CompanyId),
    responses((status = 200, description = "The company", body = CompanyView), CompanyNotFound)
)]
pub async fn company(
    reader: web::Data<Reader>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let company: &Company = reader.find_company(&path)?;
    let services: Vec<&Service> = reader.registry().services_of(&company.id).collect();
    let (counts, open) = reader
        .recent_and_open(&services, Span::Day, now_minute())
        .await;
    let views: Vec<ServiceView> = services
        .iter()
        .zip(counts)
        .map(|(s, c)| ServiceView::new(s, c, &open))
        .collect();
    let status = open
        .as_ref()
        .map(|_| read::worst(views.iter().filter_map(|v| v.status)));
    // Through a `Value`: the services' keys sorted, as they always were.
    sorted_json(CompanyView {
        id: &company.id,
        name: &company.name,
        services: views,
        status,
    })
}
