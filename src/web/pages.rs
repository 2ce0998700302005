//! The pages: `/` (problems now, company events, most reported, search),
//! `/company/{id}`, and what every page shares; the status page and the
//! embeddable chart are in [`super::status`], the feed page in
//! [`super::feed_page`].
//! Each handler gathers its numbers through [`crate::read`] and renders
//! one template.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::chart;
use super::{HTML, PageError, PageQuery, Pages, cached, render, shared_html};
use crate::config::WebSettings;
use crate::domain::time::now_minute;
use crate::domain::{Problem, Service, Share, Status};
use crate::http::doc::{BadRequestPage, CompanyId, CompanyNotFoundPage, Html, NotModified};
use crate::read::{self, Reader, Recent, Span, status_of};

/// Longest search text looked at.
const MAX_QUERY_CHARS: usize = 100;

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

pub fn share_rows(shares: &[Share], name: impl Fn(&str) -> String, n: usize) -> Vec<ShareRow> {
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

pub fn problem_label(name: &str) -> String {
    name.parse::<Problem>()
        .map(|p| p.label().to_string())
        .unwrap_or_else(|_| name.to_string())
}

/// A service in a list.
#[derive(Clone)]
pub struct ServiceRow<'a> {
    pub service: &'a Service,
    pub status: Status,
    pub recent: Option<Recent>,
    pub headline: Option<String>,
}

/// The one word a reader sees, and the sentence under it.
pub fn status_words(status: Option<Status>) -> (&'static str, &'static str) {
    match status {
        Some(Status::Problem) => ("Problem", "Many more people than usual report a problem."),
        Some(Status::Possible) => (
            "Possible",
            "More reports than usual; not yet confirmed as a problem.",
        ),
        Some(Status::Ok) => ("OK", "Reports are at their usual level."),
        None => ("Unknown", "The numbers cannot be read right now."),
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

/// The home page's search.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Search {
    /// A service's name, id or alias, or part of one
    q: Option<String>,
}

/// Home page
///
/// Services with problems now, company events, most reported, search (`q`).
#[utoipa::path(
    get,
    path = "/",
    tag = "pages",
    operation_id = "homePage",
    params(Search),
    responses(Html, NotModified, BadRequestPage)
)]
pub async fn home(
    req: HttpRequest,
    reader: web::Data<Reader>,
    pages: web::Data<Pages>,
    PageQuery(query): PageQuery<Search>,
) -> Result<HttpResponse, PageError> {
    let q = query
        .q
        .as_deref()
        .map(|q| q.trim().to_string())
        .unwrap_or_default();
    if !q.is_empty() {
        // Searches are each reader's own: rendered, not kept.
        let q: String = q.chars().take(MAX_QUERY_CHARS).collect();
        let body = home_page(&reader, &pages.settings, q).await?;
        return Ok(cached(&req, HTML, pages.settings.page_max_age_secs, body));
    }
    shared_html(&req, &pages, "home".into(), || {
        home_page(&reader, &pages.settings, q.clone())
    })
    .await
}

async fn home_page(reader: &Reader, web: &WebSettings, q: String) -> Result<String, PageError> {
    let all: Vec<&Service> = reader.registry().services().iter().collect();
    let (recent, open) = reader.recent_and_open(&all, Span::Hour, now_minute()).await;
    let rows: Vec<ServiceRow> = all
        .iter()
        .zip(recent)
        .map(|(s, r)| ServiceRow {
            service: s,
            status: status_of(&open, &s.id).unwrap_or(Status::Ok),
            recent: r,
            headline: open
                .as_ref()
                .and_then(|o| o.get(&s.id))
                .map(|a| a.headline.clone()),
        })
        .collect();
    let mut problems: Vec<ServiceRow> = rows
        .iter()
        .filter(|r| r.status != Status::Ok)
        .cloned()
        .collect();
    problems.sort_by_key(|r| {
        (
            std::cmp::Reverse(r.status),
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
    let found = (!q.is_empty()).then(|| search(reader, &q));
    let mut page = Page::new("outagewatch: is it down?", web.page_refresh_secs);
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
fn search<'a>(reader: &'a Reader, q: &str) -> Vec<&'a Service> {
    let needle = q.to_lowercase();
    let exact = reader.registry().find(q);
    let mut found: Vec<&Service> = exact.into_iter().collect();
    found.extend(reader.registry().services().iter().filter(|s| {
        exact.is_none_or(|e| e.id != s.id)
            && (s.id.contains(&needle)
                || s.name.to_lowercase().contains(&needle)
                || s.aliases.iter().any(|a| a.to_lowercase().contains(&needle)))
    }));
    found.truncate(50);
    found
}

#[derive(Template)]
#[template(path = "company.html")]
struct CompanyPage<'a> {
    page: Page,
    id: String,
    name: String,
    word: &'static str,
    status: Status,
    cards: Vec<(ServiceRow<'a>, String)>,
    events: Vec<crate::domain::anomaly::Group>,
}

/// Company page
///
/// The company's services side by side.
#[utoipa::path(
    get,
    path = "/company/{id}",
    tag = "pages",
    operation_id = "companyPage",
    params(CompanyId),
    responses(Html, NotModified, CompanyNotFoundPage)
)]
pub async fn company(
    req: HttpRequest,
    reader: web::Data<Reader>,
    pages: web::Data<Pages>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let company = reader.find_company(&path)?;
    shared_html(&req, &pages, format!("company:{}", company.id), || {
        company_page(&reader, &pages.settings, company)
    })
    .await
}

async fn company_page(
    reader: &Reader,
    web: &WebSettings,
    company: &crate::domain::Company,
) -> Result<String, PageError> {
    let services: Vec<&Service> = reader.registry().services_of(&company.id).collect();
    let now = now_minute();
    let (recent, open) = reader.recent_and_open(&services, Span::Day, now).await;
    let mut cards = Vec::new();
    for (s, r) in services.iter().zip(recent) {
        let chart = match reader.series(s, 24 * 60, 15, now).await {
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
                status: status_of(&open, &s.id).unwrap_or(Status::Ok),
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
    render(&CompanyPage {
        page: Page::new(&format!("{} status", company.name), web.page_refresh_secs),
        id: company.id.clone(),
        name: company.name.clone(),
        word: status_words(Some(status)).0,
        status,
        cards,
        events,
    })
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
