//! The pages' style sheet and their optional script, built into the
//! binary and served with a validator, so browsers keep them an hour.

use actix_web::{HttpRequest, HttpResponse};

use super::cached;
use crate::http::doc::NotModified;

const CSS: &str = include_str!("assets/site.css");
const JS: &str = include_str!("assets/site.js");

/// Page style sheet
#[utoipa::path(
    get, path = "/static/site.css", tag = "pages", operation_id = "styleSheet",
    responses((status = 200, description = "Page style sheet", body = String, content_type = "text/css"), NotModified)
)]
pub async fn css(req: HttpRequest) -> HttpResponse {
    cached(&req, "text/css; charset=utf-8", 3600, CSS.to_string())
}

/// Page script (optional: local times, refresh, in-place reports)
#[utoipa::path(
    get, path = "/static/site.js", tag = "pages", operation_id = "pageScript",
    responses((status = 200, description = "Page script (optional: local times, refresh, in-place reports)", body = String, content_type = "text/javascript"), NotModified)
)]
pub async fn js(req: HttpRequest) -> HttpResponse {
    cached(&req, "text/javascript; charset=utf-8", 3600, JS.to_string())
}
