//! What readers and journalists see: server-rendered pages (askama
//! templates, usable without JavaScript), SVG charts, the embeddable chart,
//! Atom feeds, the API's own documentation, and the report form for
//! browsers without JavaScript. (The live event stream is the API's:
//! `http/stream.rs`.)
//!
//! Pages read through [`crate::read`], whose short-lived caches keep a flood
//! of readers off the store, and keep what they render in [`Pages`] for as
//! long; answers carry an ETag and Cache-Control so browsers and proxies can
//! absorb repeats too.

pub mod chart;
pub mod docs;
pub mod feed_page;
pub mod feeds;
pub mod form;
pub mod pages;
pub mod static_files;
pub mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;

use crate::config::WebSettings;
use crate::http::{ApiError, Route};
use crate::read::ReadError;
use crate::read::cache::TtlCache;

/// The pages' Content-Security-Policy: scripts only from the site's own
/// file (no inline script), nothing from elsewhere, no framing (the report
/// buttons cannot be clickjacked under another site's page), forms only to
/// this site. Inline styles stay allowed (bar widths).
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers: on every answer, no type sniffing and no full URL in
/// the referrer to other sites; on pages, [`PAGE_POLICY`]. The embeddable
/// chart is an SVG image, which `frame-ancestors` does not concern.
pub async fn security_headers(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let headers = response.headers_mut();
    let set = |headers: &mut header::HeaderMap, name, value: &'static str| {
        headers.insert(name, header::HeaderValue::from_static(value));
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        headers,
        header::REFERRER_POLICY,
        "strict-origin-when-cross-origin",
    );
    if page {
        set(headers, header::CONTENT_SECURITY_POLICY, PAGE_POLICY);
    }
    Ok(response)
}

/// The pages' routes, each documented by its handler's `#[utoipa::path]`
/// (see [`crate::http::route`]). The browser's form post comes before the
/// API's route of the same path (`http::table`), which answers every other
/// post there; the API's operation documents both.
pub fn table() -> Vec<Route> {
    vec![
        Route::of::<pages::__path_home>().to(pages::home),
        Route::of::<status::__path_status>().to(status::status),
        Route::of::<pages::__path_company>().to(pages::company),
        Route::of::<feed_page::__path_anomalies>().to(feed_page::anomalies),
        Route::of::<status::__path_embed>().to(status::embed),
        Route::of::<static_files::__path_css>().to(static_files::css),
        Route::of::<static_files::__path_js>().to(static_files::js),
        Route::of::<feeds::__path_all>().to(feeds::all),
        Route::of::<feeds::__path_service>().to(feeds::service),
        Route::of::<feeds::__path_company>().to(feeds::company),
        Route::of::<crate::http::reports::__path_post_report>()
            .guard(form::browser_form())
            .to(form::post),
        Route::of::<docs::__path_openapi>().to(docs::openapi),
        Route::of::<docs::__path_docs>().to(docs::docs),
    ]
}

/// Every route, in the order the server tries them: the pages' first, so
/// that the browser's guarded form post comes before the API's post of the
/// same path, then the API's and its answer to any other request.
pub fn serve(cfg: &mut web::ServiceConfig) {
    let mut routes = table();
    routes.extend(crate::http::table());
    crate::http::serve(cfg, routes);
}

/// A rendered answer and its strong ETag.
pub struct Rendered {
    pub body: String,
    pub etag: String,
}

impl Rendered {
    pub fn new(body: String) -> Self {
        let etag = format!("\"{}\"", &blake3::hash(body.as_bytes()).to_hex()[..20]);
        Rendered { body, etag }
    }
}

/// Rendered pages, charts and feeds, each kept for `web.read_cache_ms`
/// (at most `web.read_cache_entries`), and the settings they are rendered
/// and answered with.
pub struct Pages {
    cache: TtlCache<Arc<Rendered>, PageError>,
    /// `web.*`: how pages are rendered (refresh, feed entries, the public
    /// URL) and how long answers may be cached.
    pub settings: WebSettings,
}

impl Pages {
    pub fn new(web: &WebSettings) -> Self {
        Pages {
            cache: TtlCache::new(
                Duration::from_millis(web.read_cache_ms),
                web.read_cache_entries,
            ),
            settings: web.clone(),
        }
    }

    /// The page at `key`, rendered by `render` at most once per
    /// `web.read_cache_ms` however many readers ask: under a flood,
    /// rendering (charts and templates) would otherwise cost more than the
    /// reads.
    pub async fn get<F, Fut>(&self, key: String, render: F) -> Result<Arc<Rendered>, PageError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, PageError>>,
    {
        self.cache
            .get(&key, Instant::now(), || async {
                render().await.map(|body| Arc::new(Rendered::new(body)))
            })
            .await
    }
}

/// A page everyone sees alike, shared as [`Pages::get`] and answered with
/// `web.page_max_age_secs`.
pub async fn shared_html<F, Fut>(
    req: &HttpRequest,
    pages: &Pages,
    key: String,
    render: F,
) -> Result<HttpResponse, PageError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, PageError>>,
{
    let page = pages.get(key, render).await?;
    Ok(respond(req, HTML, pages.settings.page_max_age_secs, &page))
}

/// An answer that carries an ETag of its body and Cache-Control; a request
/// that already has it gets 304 without the body.
pub fn respond(
    req: &HttpRequest,
    content_type: &'static str,
    max_age_secs: u64,
    page: &Rendered,
) -> HttpResponse {
    let cache_control = format!("public, max-age={max_age_secs}");
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == page.etag || t.trim() == "*")
        });
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, page.etag.clone()))
        .insert_header((header::CACHE_CONTROL, cache_control));
    if matches {
        response.finish()
    } else {
        response.content_type(content_type).body(page.body.clone())
    }
}

/// [`respond`] for a body rendered for this request alone.
pub fn cached(
    req: &HttpRequest,
    content_type: &'static str,
    max_age_secs: u64,
    body: String,
) -> HttpResponse {
    respond(req, content_type, max_age_secs, &Rendered::new(body))
}

pub const HTML: &str = "text/html; charset=utf-8";

/// A page's query, as `web::Query` reads it, except that a query string
/// that does not read (a parameter given twice, say) is answered as a page.
pub struct PageQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned> actix_web::FromRequest for PageQuery<T> {
    type Error = PageError;
    type Future = std::future::Ready<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            web::Query::<T>::from_query(req.query_string())
                .map(|q| PageQuery(q.into_inner()))
                .map_err(|e| PageError(ApiError::invalid_query(e))),
        )
    }
}

/// An [`ApiError`] shown to a person: the same status, as a page.
#[derive(Debug, Clone)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<ReadError> for PageError {
    fn from(e: ReadError) -> Self {
        PageError(e.into())
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: pages::Page,
    status: u16,
    title: &'a str,
    detail: &'a str,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let (status, title) = (self.0.code.status(), self.0.code.title());
        let page = ErrorPage {
            page: pages::Page::new(title, 0),
            status: status.as_u16(),
            title,
            detail: &self.0.detail,
        };
        let mut response = HttpResponse::build(status);
        if let Some(secs) = self.0.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        // The rate limit's state, as the API's answer would carry it.
        for (name, value) in &self.0.headers {
            response.insert_header((*name, value.as_str()));
        }
        match page.render() {
            Ok(body) => response.content_type(HTML).body(body),
            Err(_) => response.finish(),
        }
    }
}

/// Renders a template; a failure is a bug, logged, and a plain 500.
pub fn render(t: &impl Template) -> Result<String, PageError> {
    t.render().map_err(|e| {
        tracing::error!(error = %e, "rendering a template");
        PageError(ApiError::new(crate::http::Code::Internal, "internal error"))
    })
}
