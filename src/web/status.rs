//! The status page of one service (`/status/{id}`) and its chart alone
//! for newsrooms (`/embed/{id}.svg`): what readers open during an outage.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::chart::{self, Chart};
use super::pages::{Page, ShareRow, filters, problem_label, share_rows, status_words};
use super::{HTML, PageError, PageQuery, Pages, cached, render, respond, shared_html};
use crate::config::WebSettings;
use crate::domain::time::now_minute;
use crate::domain::{Anomaly, Problem, Service, Status};
use crate::http::doc::{
    BadRequestPage, Html, NotModified, ServiceId, ServiceNotFound, ServiceNotFoundPage, Unavailable,
};
use crate::http::{ApiError, Code};
use crate::read::{Reader, Recent, Span, status_of};

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage<'a> {
    page: Page,
    service: &'a Service,
    company: String,
    word: &'static str,
    sentence: &'static str,
    status: &'static str,
    incident: Option<Anomaly>,
    recent: Option<Recent>,
    chart: Option<String>,
    problems: Vec<ShareRow>,
    countries: Vec<ShareRow>,
    breakdown_reports: Option<u64>,
    buttons: Vec<(&'static str, &'static str)>,
    /// Set after a report was posted without JavaScript.
    thanks: Option<String>,
}

/// Status page of a service
///
/// Status, 24 h chart, problems, countries, report buttons. Aliases redirect
/// (301) to the service id.
#[utoipa::path(
    get, path = "/status/{id}", tag = "pages", operation_id = "statusPage",
    params(ServiceId, Thanks),
    responses(
        Html,
        NotModified,
        BadRequestPage,
        ServiceNotFoundPage,
        (status = 301, description = "An alias or other spelling: the canonical address", headers(("Location" = String)))
    )
)]
pub async fn status(
    req: HttpRequest,
    reader: web::Data<Reader>,
    pages: web::Data<Pages>,
    path: web::Path<String>,
    PageQuery(query): PageQuery<Thanks>,
) -> Result<HttpResponse, PageError> {
    let service = reader.find_service(&path)?;
    if service.id != *path {
        // Aliases and other spellings live at the canonical address.
        let query = req.query_string();
        let location = if query.is_empty() {
            format!("/status/{}", service.id)
        } else {
            format!("/status/{}?{query}", service.id)
        };
        return Ok(HttpResponse::MovedPermanently()
            .insert_header((header::LOCATION, location))
            .finish());
    }
    // A page with a thank-you is one person's; the rest is everyone's.
    if let Some(thanks) = query.words(service) {
        let body = status_page(&reader, &pages.settings, service, Some(thanks)).await?;
        let mut response = cached(&req, HTML, 0, body);
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("private, no-store"),
        );
        return Ok(response);
    }
    shared_html(&req, &pages, format!("status:{}", service.id), || {
        status_page(&reader, &pages.settings, service, None)
    })
    .await
}

/// What the report form's redirect (`POST /api/v1/reports` from a browser
/// without JavaScript) says of the report, for the page's thank-you.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Thanks {
    /// The problem reported: shows the thanks
    reported: Option<String>,
    /// 1 when the report counted
    counted: Option<String>,
}

impl Thanks {
    /// The thank-you, worded as the page's script words it; only for a
    /// problem the service offers.
    fn words(&self, service: &Service) -> Option<String> {
        let problem: Problem = self.reported.as_deref()?.parse().ok()?;
        if !service.problems.contains(&problem) {
            return None;
        }
        let counted = self.counted.as_deref() == Some("1");
        Some(if counted {
            format!("Thanks: your report ({}) is counted.", problem.label())
        } else {
            "Thanks: you already reported this service recently, and we count one report per \
             person."
                .to_string()
        })
    }
}

async fn status_page(
    reader: &Reader,
    web: &WebSettings,
    service: &Service,
    thanks: Option<String>,
) -> Result<String, PageError> {
    let one = [service];
    let now = now_minute();
    let (recent, open, series, breakdown) = tokio::join!(
        reader.recent_counts(&one, Span::Day, now),
        reader.open_incidents(),
        reader.series(service, 24 * 60, 15, now),
        reader.breakdown(service, 60, now),
    );
    let status = status_of(&open, &service.id);
    let (word, sentence) = status_words(status);
    let chart = series.ok().map(|s| {
        let title = format!("{} reports, last 24 hours", service.name);
        chart::draw(&s, &title, 720, 260, None)
            .render()
            .unwrap_or_default()
    });
    let (problems, countries, breakdown_reports) = match breakdown {
        Ok(b) => (
            share_rows(&b.problems, problem_label, 6),
            share_rows(&b.countries, |c| c.to_string(), 6),
            Some(b.reports),
        ),
        Err(_) => (Vec::new(), Vec::new(), None),
    };
    let company = reader
        .registry()
        .company(&service.company)
        .map_or_else(|| service.company.clone(), |c| c.name.clone());
    render(&StatusPage {
        page: Page::new(
            &format!("{} status: {word}", service.name),
            web.page_refresh_secs,
        ),
        service,
        company,
        word,
        sentence,
        status: status.map_or("unknown", Status::as_str),
        incident: open.as_ref().and_then(|o| o.get(&service.id)).cloned(),
        recent: recent[0],
        chart,
        problems,
        countries,
        breakdown_reports,
        buttons: service
            .problems
            .iter()
            .map(|p| (p.as_str(), p.label()))
            .collect(),
        thanks,
    })
}

/// Embeddable 24 h chart
///
/// An SVG chart for newsrooms, with attribution; cacheable.
#[utoipa::path(
    get, path = "/embed/{id}.svg", tag = "pages", operation_id = "embedChart",
    params(ServiceId),
    responses(
        (status = 200, description = "The chart", body = String, content_type = "image/svg+xml"),
        NotModified,
        ServiceNotFound,
        Unavailable
    )
)]
pub async fn embed(
    req: HttpRequest,
    reader: web::Data<Reader>,
    pages: web::Data<Pages>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let service = reader.find_service(&path)?;
    let page = pages
        .get(format!("embed:{}", service.id), || async {
            embed_chart(&reader, service).await.map_err(PageError)
        })
        .await
        .map_err(|e| e.0)?;
    let mut response = respond(
        &req,
        "image/svg+xml",
        pages.settings.embed_max_age_secs,
        &page,
    );
    // Newsrooms embed it from their own pages.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    Ok(response)
}

async fn embed_chart(reader: &Reader, service: &Service) -> Result<String, ApiError> {
    let series = reader.series(service, 24 * 60, 15, now_minute()).await?;
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let chart: Chart = chart::draw(
        &series,
        &format!("{}: user reports, last 24 hours (UTC)", service.name),
        640,
        260,
        Some(format!(
            "outagewatch · counts of reports, not of people affected · {now}"
        )),
    );
    chart.render().map_err(|e| {
        tracing::error!(error = %e, "rendering a chart");
        ApiError::new(Code::Internal, "internal error")
    })
}
