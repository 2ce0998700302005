//! The API's own description: the OpenAPI document at `/api/openapi.json`
//! and a documentation page at `/api/docs` rendered from it on the server
//! (no script or style downloaded from elsewhere, at build time or after).

use std::sync::LazyLock;

use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde_json::Value;

use super::pages::Page;
use super::{HTML, PageError, cached, render};

/// The document; `tests/api/web.rs` checks that it validates and lists
/// every route the server answers, the test below that its `Problem.code`
/// lists every error code.
pub const OPENAPI: &str = include_str!("assets/openapi.json");

pub struct Parameter {
    pub name: String,
    pub place: String,
    pub required: bool,
    pub description: String,
}

pub struct Response {
    pub status: String,
    pub description: String,
}

pub struct Operation {
    pub method: String,
    pub path: String,
    pub summary: String,
    pub description: String,
    pub parameters: Vec<Parameter>,
    pub responses: Vec<Response>,
}

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
    let doc: Value = serde_json::from_str(OPENAPI).unwrap_or_default();
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

/// `GET /api/openapi.json`.
pub async fn openapi(req: HttpRequest) -> HttpResponse {
    cached(&req, "application/json", 300, OPENAPI.to_string())
}

/// `GET /api/docs`.
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
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
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
    fn every_error_code_is_documented_and_no_other() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
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
