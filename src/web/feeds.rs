//! Atom feeds of incidents: all of them, one service's, one company's. Each
//! entry is an incident under a stable id, its title the headline a
//! journalist can quote, updated whenever the incident changes.

use actix_web::{HttpRequest, HttpResponse, web};
use atom_syndication::{Content, Entry, Feed, Link, Person, Text};
use chrono::{DateTime, FixedOffset};

use super::{Pages, respond};
use crate::domain::Anomaly;
use crate::http::ApiError;
use crate::http::doc::{
    Atom, CompanyId, CompanyNotFound, NotModified, ServiceId, ServiceNotFound, Unavailable,
};
use crate::read::{Filter, Reader};
use crate::store::FeedRange;

const ATOM: &str = "application/atom+xml; charset=utf-8";

/// Atom feed of all incidents
///
/// Newest incidents first; each entry's title is the headline.
#[utoipa::path(
    get,
    path = "/feeds/anomalies.atom",
    tag = "feeds",
    operation_id = "feedAll",
    responses(Atom, NotModified, Unavailable)
)]
pub async fn all(
    req: HttpRequest,
    reader: web::Data<Reader>,
    pages: web::Data<Pages>,
) -> Result<HttpResponse, ApiError> {
    feed(
        &req,
        &reader,
        &pages,
        Filter::default(),
        "all services",
        "/feeds/anomalies.atom",
        "/anomalies",
    )
    .await
}

/// Atom feed of one service
#[utoipa::path(
    get,
    path = "/feeds/services/{id}.atom",
    tag = "feeds",
    operation_id = "feedService",
    params(ServiceId),
    responses(Atom, NotModified, ServiceNotFound, Unavailable)
)]
pub async fn service(
    req: HttpRequest,
    reader: web::Data<Reader>,
    pages: web::Data<Pages>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = reader.find_service(&path)?;
    let filter = Filter {
        service: Some(s.id.clone()),
        ..Filter::default()
    };
    let own = format!("/feeds/services/{}.atom", s.id);
    let page = format!("/status/{}", s.id);
    feed(&req, &reader, &pages, filter, &s.name, &own, &page).await
}

/// Atom feed of one company
#[utoipa::path(
    get,
    path = "/feeds/companies/{id}.atom",
    tag = "feeds",
    operation_id = "feedCompany",
    params(CompanyId),
    responses(Atom, NotModified, CompanyNotFound, Unavailable)
)]
pub async fn company(
    req: HttpRequest,
    reader: web::Data<Reader>,
    pages: web::Data<Pages>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = reader.find_company(&path)?;
    let filter = Filter {
        company: Some(c.id.clone()),
        ..Filter::default()
    };
    let own = format!("/feeds/companies/{}.atom", c.id);
    let page = format!("/company/{}", c.id);
    feed(&req, &reader, &pages, filter, &c.name, &own, &page).await
}

async fn feed(
    req: &HttpRequest,
    reader: &Reader,
    pages: &Pages,
    filter: Filter,
    about: &str,
    own_path: &str,
    page_path: &str,
) -> Result<HttpResponse, ApiError> {
    let base = base_url(req, &pages.settings.public_url);
    let key = format!("atom:{base}{own_path}");
    let page = pages
        .get(key, || async {
            let range = FeedRange {
                limit: pages.settings.feed_entries.max(1),
                ..FeedRange::default()
            };
            let (items, _) = reader.page(&filter, range).await?;
            Ok(atom(&items, about, &base, own_path, page_path).to_string())
        })
        .await
        .map_err(|e| e.0)?;
    Ok(respond(req, ATOM, pages.settings.page_max_age_secs, &page))
}

/// Where links point: `web.public_url`, else the Host the request named
/// (when it looks like a host name; forwarding headers are not trusted).
fn base_url(req: &HttpRequest, public_url: &str) -> String {
    if !public_url.is_empty() {
        return public_url.trim_end_matches('/').to_string();
    }
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn time(unix: i64) -> DateTime<FixedOffset> {
    DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .fixed_offset()
}

fn link(href: String, rel: &str, mime: Option<&str>) -> Link {
    let mut l = Link::default();
    l.set_href(href);
    l.set_rel(rel);
    l.set_mime_type(mime.map(str::to_string));
    l
}

fn atom(items: &[Anomaly], about: &str, base: &str, own_path: &str, page_path: &str) -> Feed {
    let mut feed = Feed::default();
    feed.set_title(format!("outagewatch: incidents of {about}"));
    feed.set_id(format!("{base}{own_path}"));
    feed.set_updated(time(
        items.iter().map(|a| a.updated_unix).max().unwrap_or(0),
    ));
    feed.set_subtitle(Text::plain(
        "Times when a service got far more problem reports than usual. Counts are reports, not people affected.",
    ));
    feed.set_links(vec![
        link(
            format!("{base}{own_path}"),
            "self",
            Some("application/atom+xml"),
        ),
        link(format!("{base}{page_path}"), "alternate", Some("text/html")),
    ]);
    let mut author = Person::default();
    author.set_name("outagewatch");
    feed.set_authors(vec![author]);
    feed.set_entries(items.iter().map(|a| entry(a, base)).collect::<Vec<_>>());
    feed
}

fn entry(a: &Anomaly, base: &str) -> Entry {
    let mut e = Entry::default();
    e.set_id(format!("{base}/api/v1/anomalies/{}", a.id));
    e.set_title(a.headline.clone());
    e.set_updated(time(a.updated_unix));
    e.set_published(Some(time(a.started_unix)));
    e.set_links(vec![
        link(
            format!("{base}/status/{}", a.service),
            "alternate",
            Some("text/html"),
        ),
        link(
            format!("{base}/api/v1/anomalies/{}", a.id),
            "related",
            Some("application/json"),
        ),
    ]);
    e.set_summary(Some(Text::plain(summary(a))));
    let mut content = Content::default();
    content.set_content_type(Some("text".to_string()));
    content.set_value(Some(summary(a)));
    e.set_content(Some(content));
    e
}

/// The incident in a few plain sentences.
fn summary(a: &Anomaly) -> String {
    let state = match &a.ended_at {
        Some(end) => format!("Resolved; it ran from {} to {end}.", a.started_at),
        None => format!("Ongoing since {}.", a.started_at),
    };
    let problems: Vec<String> = a
        .top_problems
        .iter()
        .take(3)
        .map(|s| format!("{} {:.0}%", s.name, s.share * 100.0))
        .collect();
    let mut text = format!(
        "{} {state} Severity: {}. {} reports where about {:.0} were expected ({:.1}x).",
        a.headline, a.severity, a.reports, a.baseline, a.ratio
    );
    if a.distinct_networks > 0 {
        text.push_str(&format!(
            " Reported by {} reporters on {} networks in its busiest window.",
            a.distinct_reporters, a.distinct_networks
        ));
    }
    if !problems.is_empty() {
        text.push_str(&format!(" Problems: {}.", problems.join(", ")));
    }
    if let Some(g) = &a.group {
        text.push_str(&format!(" Part of a company-wide event: {}.", g.headline));
    }
    text
}
