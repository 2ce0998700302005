//! The API's own description: the OpenAPI document at `/api/openapi.json`
//! and a documentation page at `/api/docs` rendered from it on the server
//! (no script or style downloaded from elsewhere, at build time or after).

use std::collections::HashSet;
use std::sync::LazyLock;

use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::path::PathItem;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Header, RefOr};

use super::pages::Page;
use super::{HTML, PageError, cached, render};
use crate::http::{self, Route};

/// What the document says beside its operations; the operations come from
/// the route tables, and the schemas they name are collected from these.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "outagewatch API",
        version = "1",
        description = "Crowdsourced outage reports, report-volume series and the anomaly feed. Counts are reports, not people affected. Errors are RFC 9457 problem details with a stable `code`. Timestamps are RFC 3339 UTC. A connection may also be answered 429 `too_many_connections` (at once, before any request, then closed) when its peer address (an IPv6 /64) already holds http.max_connections_per_address (128) connections; connections from trusted proxies are not counted.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/")),
    tags(
        (name = "reports"),
        (name = "services"),
        (name = "anomalies"),
        (name = "feeds"),
        (name = "pages"),
        (name = "admin"),
        (name = "operations"),
        (name = "docs"),
    ),
    components(schemas(
        http::doc::Problem,
        crate::domain::RawReport,
        http::reports::AcceptedBody,
        http::services::ServicePage,
        http::services::ServiceDetail,
        crate::read::Series,
        http::counts::Breakdown,
        http::services::CompanyList,
        http::services::CompanyView,
        http::anomalies::AnomalyPage,
        crate::domain::Anomaly,
        http::admin::ImportSummary,
        http::ops::Ready,
    )),
    modifiers(&Bearer),
)]
struct Document;

/// The admin endpoints' bearer token.
struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = doc.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// Every route the server registers, the API's listed before the pages'
/// (the app registers the pages' first, so that the browser's guarded form
/// post is tried before the API's post of the same path).
pub fn routes() -> Vec<Route> {
    let mut routes = http::table();
    routes.extend(super::table());
    routes
}

/// The OpenAPI document: [`Document`] with an operation for each route of
/// [`routes`]. A route registered twice for one path and method (the
/// browser's form post beside the API's) is one operation, the first.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Document::openapi();
    let mut seen = HashSet::new();
    for route in routes() {
        if !seen.insert(route.name()) {
            continue;
        }
        let mut operation = route.operation;
        validators_on_cacheable(&mut operation);
        let item = PathItem::new(route.method, operation);
        match doc.paths.paths.get_mut(&route.path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                doc.paths.paths.insert(route.path, item);
            }
        }
    }
    doc
}

/// An answer that can be 304 carries ETag and Cache-Control on its 200
/// (as [`super::respond`] writes every such answer).
fn validators_on_cacheable(operation: &mut utoipa::openapi::path::Operation) {
    let responses = &mut operation.responses.responses;
    if !responses.contains_key("304") {
        return;
    }
    if let Some(RefOr::T(ok)) = responses.get_mut("200") {
        let header = |description: &str| {
            let mut h = Header::new(
                utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String),
            );
            h.description = Some(description.to_string());
            h
        };
        ok.headers
            .insert("ETag".into(), header("Strong validator of the body"));
        ok.headers
            .insert("Cache-Control".into(), header("public, max-age=N"));
    }
}

/// The document as served, written once.
pub static OPENAPI: LazyLock<String> =
    LazyLock::new(|| document().to_pretty_json().unwrap_or_default());

/// What the docs page shows of an operation's parameter.
pub struct Parameter {
    pub name: String,
    /// `path`, `query` or `header`.
    pub place: String,
    pub required: bool,
    pub description: String,
}

/// What the docs page shows of one of an operation's answers.
pub struct Response {
    pub status: String,
    pub description: String,
}

/// What the docs page shows of an operation.
pub struct Operation {
    /// `GET`, `POST`.
    pub method: String,
    pub path: String,
    pub summary: String,
    pub description: String,
    pub parameters: Vec<Parameter>,
    pub responses: Vec<Response>,
}

/// The operations of one tag, as the docs page groups them.
pub struct Section {
    pub tag: String,
    pub operations: Vec<Operation>,
}

#[derive(Template)]
#[template(path = "docs.html")]
struct DocsPage<'a> {
    page: Page,
    title: String,
    description: String,
    sections: &'a [Section],
}

/// The document's title, description and operations by tag, read once.
static DOC: LazyLock<(String, String, Vec<Section>)> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(&OPENAPI).unwrap_or_default();
    (
        text(&doc["info"]["title"]),
        text(&doc["info"]["description"]),
        sections(&doc),
    )
});

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => doc.pointer(pointer).unwrap_or(v),
        None => v,
    }
}

fn sections(doc: &Value) -> Vec<Section> {
    let mut sections: Vec<Section> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| Section {
            tag: text(&t["name"]),
            operations: Vec::new(),
        })
        .collect();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
        for (method, op) in item
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(m, _)| methods.contains(&m.as_str()))
        {
            let parameters = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| resolve(doc, p))
                .map(|p| Parameter {
                    name: text(&p["name"]),
                    place: text(&p["in"]),
                    required: p["required"].as_bool().unwrap_or(false),
                    description: text(&p["description"]),
                })
                .collect();
            let responses = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(status, r)| Response {
                    status: status.clone(),
                    description: text(&resolve(doc, r)["description"]),
                })
                .collect();
            let operation = Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                summary: text(&op["summary"]),
                description: text(&op["description"]),
                parameters,
                responses,
            };
            let tag = text(&op["tags"][0]);
            if let Some(section) = sections.iter_mut().find(|s| s.tag == tag) {
                section.operations.push(operation);
            }
        }
    }
    sections
}

/// This document
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "docs", operation_id = "openapi",
    responses((status = 200, description = "This document", body = String, content_type = "application/json"))
)]
pub async fn openapi(req: HttpRequest) -> HttpResponse {
    cached(&req, "application/json", 300, OPENAPI.clone())
}

/// API documentation page
///
/// Rendered from this document on the server.
#[utoipa::path(
    get, path = "/api/docs", tag = "docs", operation_id = "docsPage",
    responses((status = 200, description = "API documentation page", body = String, content_type = "text/html"))
)]
pub async fn docs(req: HttpRequest) -> Result<HttpResponse, PageError> {
    let (title, description, sections) = &*DOC;
    let body = render(&DocsPage {
        page: Page::new("outagewatch API", 0),
        title: title.clone(),
        description: description.clone(),
        sections,
    })?;
    Ok(cached(&req, HTML, 300, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Code;

    #[test]
    fn the_document_parses_into_sections_of_operations() {
        let doc: Value = serde_json::from_str(&OPENAPI).expect("the document is JSON");
        let sections = sections(&doc);
        let operations: usize = sections.iter().map(|s| s.operations.len()).sum();
        let declared: usize = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, item)| item.as_object().map_or(0, |i| i.len()))
            .sum();
        assert_eq!(operations, declared);
        let report = sections
            .iter()
            .flat_map(|s| &s.operations)
            .find(|o| o.path == "/api/v1/reports")
            .expect("the report endpoint");
        assert_eq!(report.method, "POST");
        assert!(report.responses.iter().any(|r| r.status == "429"));
        assert!(
            report
                .parameters
                .iter()
                .any(|p| p.name == "Idempotency-Key")
        );
    }

    #[test]
    fn every_reference_in_the_document_resolves() {
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    out.extend(m.get("$ref").and_then(Value::as_str));
                    m.values().for_each(|x| refs(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let doc: Value = serde_json::from_str(&OPENAPI).expect("the document is JSON");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 10);
        for r in found {
            let pointer = r.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} resolves");
        }
    }

    #[test]
    fn every_error_code_is_documented_and_no_other() {
        let doc: Value = serde_json::from_str(&OPENAPI).expect("the document is JSON");
        let mut documented: Vec<&str> =
            doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
                .as_array()
                .expect("Problem.code is an enum")
                .iter()
                .filter_map(Value::as_str)
                .collect();
        let mut codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        documented.sort_unstable();
        codes.sort_unstable();
        assert_eq!(documented, codes);
    }
}
