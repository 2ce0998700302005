//! The feed for people, `/anomalies`: the API's feed query with a filter
//! form, where an empty choice means "all", rendered on the server.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::{Page, filters};
use super::{PageError, PageQuery, Pages, render, shared_html};
use crate::config::WebSettings;
use crate::domain::{Anomaly, Service};
use crate::http::doc::{
    BadRequestPage, FilterNotFoundPage, Html, NotModified, UnavailablePage, one_of,
};
use crate::http::{ApiError, Code};
use crate::read::{Filter, FilterQuery, Reader, parse_cursor};
use crate::store::FeedRange;

#[derive(Template)]
#[template(path = "anomalies.html")]
struct AnomaliesPage<'a> {
    page: Page,
    items: Vec<Anomaly>,
    next: Option<String>,
    services: &'a [Service],
    companies: &'a [crate::domain::Company],
    service: String,
    company: String,
}

/// The query of the feed page: the API's filters, where an empty value
/// (the form's "all") is no filter.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedPageQuery {
    service: Option<String>,
    company: Option<String>,
    #[param(pattern = r"^$|^[0-9]{1,18}_[\s\S]+$")]
    cursor: Option<String>,
    /// An empty value (the form's "all") is no filter
    #[param(inline, value_type = Option<AnyStatus>)]
    status: Option<String>,
    /// An empty value (the form's "all") is no filter
    #[param(inline, value_type = Option<AnySeverity>)]
    severity: Option<String>,
}

impl FeedPageQuery {
    /// The API's filters, an empty value being none.
    fn filter(&self) -> FilterQuery {
        let set = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        FilterQuery {
            service: set(&self.service),
            company: set(&self.company),
            status: set(&self.status),
            severity: set(&self.severity),
        }
    }
}

/// The feed page's `status`: the API's, or empty.
struct AnyStatus;

/// The feed page's `severity`: the API's, or empty.
struct AnySeverity;

impl utoipa::PartialSchema for AnyStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        one_of(["", "open", "resolved"])
    }
}

impl utoipa::ToSchema for AnyStatus {}

impl utoipa::PartialSchema for AnySeverity {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        one_of(["", "possible", "problem"])
    }
}

impl utoipa::ToSchema for AnySeverity {}

/// Incident feed page
///
/// Filterable by service and company.
#[utoipa::path(
    get,
    path = "/anomalies",
    tag = "pages",
    operation_id = "anomaliesPage",
    params(FeedPageQuery),
    responses(Html, NotModified, BadRequestPage, FilterNotFoundPage, UnavailablePage)
)]
pub async fn anomalies(
    req: HttpRequest,
    reader: web::Data<Reader>,
    pages: web::Data<Pages>,
    PageQuery(query): PageQuery<FeedPageQuery>,
) -> Result<HttpResponse, PageError> {
    let filter = reader.filter(&query.filter())?;
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(parse_cursor(c).ok_or_else(|| {
            ApiError::new(Code::InvalidParameter, "cursor is not one this site gave")
        })?),
        None => None,
    };
    // Keyed by what was understood, not by what was sent.
    let key = format!("anomalies:{filter:?}:{after:?}");
    shared_html(&req, &pages, key, || {
        anomalies_page(&reader, &pages.settings, filter, after)
    })
    .await
}

async fn anomalies_page(
    reader: &Reader,
    web: &WebSettings,
    filter: Filter,
    after: Option<(i64, String)>,
) -> Result<String, PageError> {
    let range = FeedRange {
        after,
        limit: reader.default_page_size(),
        ..FeedRange::default()
    };
    let (items, next_cursor) = reader.page(&filter, range).await?;
    let next = next_cursor.map(|c| {
        let mut params = vec![("cursor", c)];
        if let Some(s) = &filter.service {
            params.push(("service", s.clone()));
        }
        if let Some(c) = &filter.company {
            params.push(("company", c.clone()));
        }
        if let Some(status) = filter.status {
            let status = match status {
                crate::domain::AnomalyStatus::Open => "open",
                crate::domain::AnomalyStatus::Resolved => "resolved",
            };
            params.push(("status", status.to_string()));
        }
        if let Some(severity) = filter.severity {
            params.push(("severity", severity.to_string()));
        }
        serde_urlencoded::to_string(params).unwrap_or_default()
    });
    let Filter {
        service, company, ..
    } = filter;
    render(&AnomaliesPage {
        page: Page::new("Outages reported now and before", web.page_refresh_secs),
        items,
        next,
        services: reader.registry().services(),
        companies: reader.registry().companies(),
        service: service.unwrap_or_default(),
        company: company.unwrap_or_default(),
    })
}
