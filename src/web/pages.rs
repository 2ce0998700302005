//! The pages: `/` (problems now, company events, most reported, search),
//! `/status/{id}`, `/company/{id}`, `/anomalies`, and the embeddable chart.
//! Each handler gathers its numbers through [`crate::http::read`] and renders
//! one template.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::chart::{self, Chart};
use super::{HTML, PageError, cached, render, respond, shared_page};
use crate::domain::{Anomaly, Problem, Service, Share};
use crate::http::anomalies::{self, Filter};
use crate::http::read::{self, Recent, find_service, status_of};
use crate::http::{ApiError, AppState, Code};
use crate::store::FeedRange;

type Query = web::Query<HashMap<String, String>>;

/// What every page's frame needs.
pub struct Page {
    pub title: String,
    /// Seconds between refreshes while the page is open; 0 for none.
    pub refresh_secs: u64,
    /// The search box's text.
    pub q: String,
}

impl Page {
    pub fn new(title: &str, refresh_secs: u64) -> Self {
        Page {
            title: title.to_string(),
            refresh_secs,
            q: String::new(),
        }
    }
}

/// A row of a share table.
pub struct ShareRow {
    pub name: String,
    pub count: u64,
    pub percent: u32,
}

fn share_rows(shares: &[Share], name: impl Fn(&str) -> String, n: usize) -> Vec<ShareRow> {
    shares
        .iter()
        .take(n)
        .map(|s| ShareRow {
            name: name(&s.name),
            count: s.count,
            percent: (s.share * 100.0).round() as u32,
        })
        .collect()
}

fn problem_label(name: &str) -> String {
    name.parse::<Problem>()
        .map(|p| p.label().to_string())
        .unwrap_or_else(|_| name.to_string())
}

/// A service in a list.
#[derive(Clone)]
pub struct ServiceRow<'a> {
    pub service: &'a Service,
    pub status: &'static str,
    pub recent: Option<Recent>,
    pub headline: Option<String>,
}

/// The one word a reader sees, and the sentence under it.
pub fn status_words(status: Option<&str>) -> (&'static str, &'static str) {
    match status {
        Some("problem") => ("Problem", "Many more people than usual report a problem."),
        Some("possible") => (
            "Possible",
            "More reports than usual; not yet confirmed as a problem.",
        ),
        Some(_) => ("OK", "Reports are at their usual level."),
        None => ("Unknown", "The numbers cannot be read right now."),
    }
}

fn status_rank(status: &str) -> u8 {
    match status {
        "problem" => 2,
        "possible" => 1,
        _ => 0,
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    page: Page,
    problems: Vec<ServiceRow<'a>>,
    events: Vec<crate::domain::anomaly::Group>,
    most_reported: Vec<ServiceRow<'a>>,
    /// Search results, when there was a search.
    found: Option<Vec<&'a Service>>,
    /// Every service, by name.
    services: Vec<&'a Service>,
}

/// `GET /?q=`.
pub async fn home(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: Query,
) -> Result<HttpResponse, PageError> {
    let q = query
        .get("q")
        .map(|q| q.trim().to_string())
        .unwrap_or_default();
    let page = shared_page(&state, format!("home:{q}"), || home_page(&state, q.clone())).await?;
    Ok(respond(
        &req,
        HTML,
        state.settings.web.page_max_age_secs,
        &page,
    ))
}

async fn home_page(state: &AppState, q: String) -> Result<String, PageError> {
    let all: Vec<&Service> = state.registry.services().iter().collect();
    let (recent, open) = tokio::join!(
        read::recent_counts(state, &all),
        read::open_incidents(state)
    );
    let rows: Vec<ServiceRow> = all
        .iter()
        .zip(recent)
        .map(|(s, r)| ServiceRow {
            service: s,
            status: status_of(&open, &s.id).unwrap_or("ok"),
            recent: r,
            headline: open
                .as_ref()
                .and_then(|o| o.get(&s.id))
                .map(|a| a.headline.clone()),
        })
        .collect();
    let mut problems: Vec<ServiceRow> = rows.iter().filter(|r| r.status != "ok").cloned().collect();
    problems.sort_by_key(|r| {
        (
            std::cmp::Reverse(status_rank(r.status)),
            std::cmp::Reverse(r.recent.map_or(0, |c| c.m15)),
        )
    });
    let mut events: Vec<crate::domain::anomaly::Group> = Vec::new();
    for a in open.iter().flat_map(|o| o.values()) {
        if let Some(g) = &a.group
            && !events.iter().any(|e| e.id == g.id)
        {
            events.push(g.clone());
        }
    }
    events.sort_by(|a, b| {
        b.services
            .len()
            .cmp(&a.services.len())
            .then(a.id.cmp(&b.id))
    });
    let mut most_reported: Vec<ServiceRow> = rows
        .iter()
        .filter(|r| r.recent.is_some_and(|c| c.h1 > 0))
        .cloned()
        .collect();
    most_reported.sort_by_key(|r| std::cmp::Reverse(r.recent.map_or(0, |c| c.h1)));
    most_reported.truncate(10);
    let found = (!q.is_empty()).then(|| search(state, &q));
    let mut page = Page::new(
        "outagewatch: is it down?",
        state.settings.web.page_refresh_secs,
    );
    page.q = q;
    render(&HomePage {
        page,
        problems,
        events,
        most_reported,
        found,
        services: {
            let mut by_name = all.clone();
            by_name.sort_by_key(|s| s.name.to_lowercase());
            by_name
        },
    })
}

/// Services whose id, name or an alias contains `q` (any case); an exact
/// match first.
fn search<'a>(state: &'a AppState, q: &str) -> Vec<&'a Service> {
    let needle = q.to_lowercase();
    let exact = state.registry.find(q);
    let mut found: Vec<&Service> = exact.into_iter().collect();
    found.extend(state.registry.services().iter().filter(|s| {
        exact.is_none_or(|e| e.id != s.id)
            && (s.id.contains(&needle)
                || s.name.to_lowercase().contains(&needle)
                || s.aliases.iter().any(|a| a.to_lowercase().contains(&needle)))
    }));
    found.truncate(50);
    found
}

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

/// `GET /status/{id}`.
pub async fn status(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, PageError> {
    let service = find_service(&state, &path)?;
    if service.id != *path {
        // Aliases and other spellings live at the canonical address.
        return Ok(HttpResponse::MovedPermanently()
            .insert_header((header::LOCATION, format!("/status/{}", service.id)))
            .finish());
    }
    // A page with a thank-you is one person's; the rest is everyone's.
    if let Some(reported) = query.get("reported") {
        let body = status_page(&state, service, Some(problem_label(reported))).await?;
        return Ok(cached(&req, HTML, 0, body));
    }
    let page = shared_page(&state, format!("status:{}", service.id), || {
        status_page(&state, service, None)
    })
    .await?;
    Ok(respond(
        &req,
        HTML,
        state.settings.web.page_max_age_secs,
        &page,
    ))
}

async fn status_page(
    state: &AppState,
    service: &Service,
    thanks: Option<String>,
) -> Result<String, PageError> {
    let one = [service];
    let (recent, open, series, breakdown) = tokio::join!(
        read::recent_counts(state, &one),
        read::open_incidents(state),
        read::series(state, service, 24 * 60, 15),
        read::breakdown(state, service, 60),
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
    let company = state
        .registry
        .company(&service.company)
        .map_or_else(|| service.company.clone(), |c| c.name.clone());
    render(&StatusPage {
        page: Page::new(
            &format!("{} status: {word}", service.name),
            state.settings.web.page_refresh_secs,
        ),
        service,
        company,
        word,
        sentence,
        status: status.unwrap_or("unknown"),
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

#[derive(Template)]
#[template(path = "company.html")]
struct CompanyPage<'a> {
    page: Page,
    id: String,
    name: String,
    word: &'static str,
    status: &'static str,
    cards: Vec<(ServiceRow<'a>, String)>,
    events: Vec<crate::domain::anomaly::Group>,
}

/// `GET /company/{id}`: the company's services side by side.
pub async fn company(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let company = state.registry.company(&path).ok_or_else(|| {
        ApiError::new(
            Code::CompanyNotFound,
            format!("no company {:?}", path.as_str()),
        )
    })?;
    let page = shared_page(&state, format!("company:{}", company.id), || {
        company_page(&state, company)
    })
    .await?;
    Ok(respond(
        &req,
        HTML,
        state.settings.web.page_max_age_secs,
        &page,
    ))
}

async fn company_page(
    state: &AppState,
    company: &crate::domain::Company,
) -> Result<String, PageError> {
    let services: Vec<&Service> = state.registry.services_of(&company.id).collect();
    let (recent, open) = tokio::join!(
        read::recent_counts(state, &services),
        read::open_incidents(state)
    );
    let mut cards = Vec::new();
    for (s, r) in services.iter().zip(recent) {
        let chart = match read::series(state, s, 24 * 60, 15).await {
            Ok(series) => chart::draw(
                &series,
                &format!("{}, last 24 hours", s.name),
                420,
                180,
                None,
            )
            .render()
            .unwrap_or_default(),
            Err(_) => String::new(),
        };
        let incident = open.as_ref().and_then(|o| o.get(&s.id));
        cards.push((
            ServiceRow {
                service: s,
                status: status_of(&open, &s.id).unwrap_or("ok"),
                recent: r,
                headline: incident.map(|a| a.headline.clone()),
            },
            chart,
        ));
    }
    let mut events = Vec::new();
    for (row, _) in &cards {
        let group = open
            .as_ref()
            .and_then(|o| o.get(&row.service.id))
            .and_then(|a| a.group.clone());
        if let Some(g) = group
            && !events
                .iter()
                .any(|e: &crate::domain::anomaly::Group| e.id == g.id)
        {
            events.push(g);
        }
    }
    let status = read::worst(cards.iter().map(|(r, _)| r.status));
    let status = match status {
        "problem" => "problem",
        "possible" => "possible",
        _ => "ok",
    };
    render(&CompanyPage {
        page: Page::new(
            &format!("{} status", company.name),
            state.settings.web.page_refresh_secs,
        ),
        id: company.id.clone(),
        name: company.name.clone(),
        word: status_words(Some(status)).0,
        status,
        cards,
        events,
    })
}

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

/// `GET /anomalies?service&company&cursor`: the feed for people.
pub async fn anomalies(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: Query,
) -> Result<HttpResponse, PageError> {
    // An empty choice in the filter form means "all".
    let mut query: HashMap<String, String> = query.into_inner();
    query.retain(|_, v| !v.is_empty());
    let mut key: Vec<(&String, &String)> = query.iter().collect();
    key.sort();
    let key = format!("anomalies:{key:?}");
    let page = shared_page(&state, key, || anomalies_page(&state, &query)).await?;
    Ok(respond(
        &req,
        HTML,
        state.settings.web.page_max_age_secs,
        &page,
    ))
}

async fn anomalies_page(
    state: &AppState,
    query: &HashMap<String, String>,
) -> Result<String, PageError> {
    let filter = anomalies::parse_filter(state, query)?;
    let after = match query.get("cursor") {
        Some(c) => Some(anomalies::parse_cursor(c).ok_or_else(|| {
            ApiError::new(Code::InvalidParameter, "cursor is not one this site gave")
        })?),
        None => None,
    };
    let range = FeedRange {
        after,
        limit: 50,
        ..FeedRange::default()
    };
    let (items, next_cursor) = anomalies::page(state, &filter, range).await?;
    let next = next_cursor.map(|c| {
        let mut params = vec![("cursor", c)];
        if let Some(s) = &filter.service {
            params.push(("service", s.clone()));
        }
        if let Some(c) = &filter.company {
            params.push(("company", c.clone()));
        }
        serde_urlencoded::to_string(params).unwrap_or_default()
    });
    let Filter {
        service, company, ..
    } = filter;
    render(&AnomaliesPage {
        page: Page::new(
            "Outages reported now and before",
            state.settings.web.page_refresh_secs,
        ),
        items,
        next,
        services: state.registry.services(),
        companies: state.registry.companies(),
        service: service.unwrap_or_default(),
        company: company.unwrap_or_default(),
    })
}

/// `GET /embed/{id}.svg`: the 24 h chart on its own, for newsrooms.
pub async fn embed(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let service = find_service(&state, &path)?;
    let page = shared_page(&state, format!("embed:{}", service.id), || {
        embed_chart(&state, service)
    })
    .await?;
    let mut response = respond(
        &req,
        "image/svg+xml",
        state.settings.web.embed_max_age_secs,
        &page,
    );
    // Newsrooms embed it from their own pages.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    Ok(response)
}

async fn embed_chart(state: &AppState, service: &Service) -> Result<String, ApiError> {
    let series = read::series(state, service, 24 * 60, 15).await?;
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

const CSS: &str = include_str!("assets/site.css");
const JS: &str = include_str!("assets/site.js");

pub async fn css(req: HttpRequest) -> HttpResponse {
    cached(&req, "text/css; charset=utf-8", 3600, CSS.to_string())
}

pub async fn js(req: HttpRequest) -> HttpResponse {
    cached(&req, "text/javascript; charset=utf-8", 3600, JS.to_string())
}

/// `16018` → `16,018`: counts as people read them.
pub fn group_thousands(value: impl std::fmt::Display) -> String {
    let text = value.to_string();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest.to_string()),
        None => ("", text),
    };
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// Template filters.
pub mod filters {
    #[askama::filter_fn]
    pub fn thousands<T: std::fmt::Display>(
        value: T,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(super::group_thousands(value))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_separated() {
        let t = super::group_thousands;
        assert_eq!(t(0), "0");
        assert_eq!(t(999), "999");
        assert_eq!(t(16018), "16,018");
        assert_eq!(t(-1234567), "-1,234,567");
    }
}
