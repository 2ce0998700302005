//! The status page's report form posted by a browser without JavaScript:
//! the same `POST /api/v1/reports` as apps use, registered here for form
//! bodies from clients that ask for a page, so that a refusal is answered
//! as a page (a report that counts is answered 303 back to the status page
//! by the API itself). A refusal of a post from another site's page stays
//! problem+json: that site gets none of this site's pages.

use actix_web::{HttpRequest, HttpResponse, guard, web};

use super::PageError;
use crate::http::{ApiError, Code, Edge, media_type, reports, wants_html};
use crate::intake::Intake;
use crate::telemetry::Metrics;

/// A browser's form post: a form body, and pages accepted.
pub fn browser_form() -> impl guard::Guard {
    guard::fn_guard(|ctx| {
        let headers = ctx.head().headers();
        // Accept first: apps posting JSON rarely ask for pages, and it
        // costs no allocation on intake's path.
        wants_html(headers)
            && media_type(headers).as_deref() == Some("application/x-www-form-urlencoded")
    })
}

/// `POST /api/v1/reports` from a browser's form.
pub async fn post(
    req: HttpRequest,
    payload: web::Payload,
    intake: web::Data<Intake>,
    edge: web::Data<Edge>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, FormRefusal> {
    reports::post_report(req, payload, intake, edge, metrics)
        .await
        .map_err(|e| match e.code {
            Code::CrossSite => FormRefusal::Api(e),
            _ => FormRefusal::Page(PageError(e)),
        })
}

/// A refusal answered as a page, or (to another site) as problem+json.
#[derive(Debug)]
pub enum FormRefusal {
    Page(PageError),
    Api(ApiError),
}

impl std::fmt::Display for FormRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormRefusal::Page(e) => e.fmt(f),
            FormRefusal::Api(e) => e.fmt(f),
        }
    }
}

impl actix_web::ResponseError for FormRefusal {
    fn status_code(&self) -> actix_web::http::StatusCode {
        match self {
            FormRefusal::Page(e) => e.status_code(),
            FormRefusal::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            FormRefusal::Page(e) => e.error_response(),
            FormRefusal::Api(e) => e.error_response(),
        }
    }
}
