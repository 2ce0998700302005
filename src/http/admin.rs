//! Admin endpoints, behind a bearer token; disabled when `admin.token` is empty.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use super::doc::{BadRequest, PayloadTooLarge, Problem, Unavailable, UnsupportedMediaType};
use super::{ApiError, Code, Edge, ErrorCode, content_length, next_chunk};
use crate::config::ImportSettings;
use crate::domain::Registry;
use crate::import::{LineRules, LineSplitter};
use crate::store::{AnyStore, FeedStore, ImportRow, Retention, Store};
use crate::telemetry::{Metrics, store_failed};

/// What the admin endpoints use: the token, and what an import reads
/// against and writes to.
pub struct Admin {
    /// `admin.token`; empty disables the endpoints.
    pub token: String,
    /// The import's limits (`import.*`).
    pub import: ImportSettings,
    /// What imported lines are checked against: known services, and times
    /// the store still keeps.
    pub registry: Arc<Registry>,
    pub retention: Retention,
    /// Where imported rows are written, and their failures counted.
    pub store: Arc<AnyStore>,
    pub metrics: Arc<Metrics>,
}

/// Constant-time: compares digests, so timing reveals nothing of the token.
fn authorize(req: &HttpRequest, token: &str) -> Result<(), ApiError> {
    if token.is_empty() {
        return Err(ApiError::new(
            Code::AdminDisabled,
            "admin endpoints are disabled; set admin.token (OUTAGEWATCH_ADMIN__TOKEN) to enable them",
        ));
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if blake3::hash(presented.as_bytes()) == blake3::hash(token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::Unauthorized,
            "a valid bearer token is required",
        ))
    }
}

/// Accumulates rows and rejections while the body streams in.
struct Import<'a> {
    admin: &'a Admin,
    retry_after_secs: u64,
    rules: LineRules<'a>,
    rows: Vec<ImportRow>,
    summary: ImportSummary,
}

impl Import<'_> {
    fn line(&mut self, number: u64, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let max = self.admin.import.max_line_bytes;
        let outcome = if line.len() > max {
            Err(format!(
                "line longer than {max} bytes (import.max_line_bytes)"
            ))
        } else {
            self.rules.parse(line)
        };
        match outcome {
            Ok(row) => {
                self.summary.accepted += 1;
                self.summary.reports += row.count;
                self.rows.push(row);
            }
            Err(reason) => self.reject(number, reason),
        }
    }

    fn reject(&mut self, line: u64, reason: String) {
        let summary = &mut self.summary;
        summary.rejected_count += 1;
        if summary.rejected.len() < self.admin.import.max_rejections_listed {
            summary.rejected.push(Rejected { line, reason });
        }
    }

    async fn flush(&mut self) -> Result<(), ApiError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        self.admin
            .store
            .import(&self.rows, self.rules.now)
            .await
            .map_err(|e| {
                store_failed!(self.admin.metrics, "import", &e, "import write failed");
                ApiError::new(
                    e.code(),
                    "the store failed during import; lines before the failure may have been added",
                )
                .retry_after(self.retry_after_secs)
                .with(
                    "accepted_before_failure",
                    json!(self.summary.accepted - self.rows.len() as u64),
                )
            })?;
        self.admin
            .metrics
            .reports_imported
            .inc_by(self.rows.iter().map(|r| r.count).sum());
        self.rows.clear();
        Ok(())
    }

    /// What was read so far, as a refusal mid-body carries it.
    fn summary(&self) -> serde_json::Value {
        json!(self.summary)
    }
}

/// `POST /api/v1/admin/import`: NDJSON streamed line by line; rows are written
/// every `import.flush_lines` lines, so memory stays flat for any size.
/// Workers cache history; this tells them to reload it. Called on every
/// way out of an import once anything may have been written.
async fn announce_import(admin: &Admin) {
    if let Err(e) = admin.store.bump_history_epoch().await {
        tracing::warn!(error = %e, "imported, but workers will see it only at their next history refresh");
    }
}

/// What an import read.
#[derive(Default, Serialize, utoipa::ToSchema)]
pub struct ImportSummary {
    /// Lines stored.
    accepted: u64,
    /// The reports those lines counted.
    reports: u64,
    /// Lines refused.
    rejected_count: u64,
    /// The first import.max_rejections_listed of them.
    rejected: Vec<Rejected>,
}

/// A line the import refused.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Rejected {
    line: u64,
    reason: String,
}

/// Import history
///
/// NDJSON lines `{"service","at","count","problem"?,"country"?}`; the answer
/// lists rejected lines.
#[utoipa::path(
    post, path = "/api/v1/admin/import", tag = "admin", operation_id = "importHistory",
    request_body(content = String, content_type = "application/x-ndjson"),
    responses(
        (status = 200, description = "Import result", body = ImportSummary),
        BadRequest,
        (status = 401, description = "Missing or wrong bearer token (`unauthorized`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled: no token configured (`admin_disabled`)", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within http.body_timeout_secs (`body_timeout`); for an import, a pause between chunks longer than that, with the summary of what was read", body = Problem, content_type = "application/problem+json"),
        PayloadTooLarge,
        UnsupportedMediaType,
        Unavailable
    ),
    security(("bearer" = []))
)]
pub async fn import(
    req: HttpRequest,
    mut payload: web::Payload,
    admin: web::Data<Admin>,
    edge: web::Data<Edge>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &admin.token)?;
    let settings = &admin.import;
    let too_large = || {
        ApiError::new(
            Code::PayloadTooLarge,
            format!(
                "the import limit is {} bytes (import.max_body_bytes)",
                settings.max_body_bytes
            ),
        )
    };
    if content_length(&req).is_some_and(|n| n > settings.max_body_bytes) {
        return Err(too_large());
    }
    let mut import = Import {
        admin: &admin,
        retry_after_secs: edge.retry_after_secs,
        rules: LineRules {
            registry: &admin.registry,
            retention: admin.retention,
            now: chrono::Utc::now().timestamp(),
            max_future_skew_secs: settings.max_future_skew_secs,
            max_count: settings.max_count,
        },
        rows: Vec::with_capacity(settings.flush_lines),
        summary: ImportSummary::default(),
    };
    let mut lines = LineSplitter::new(settings.max_line_bytes);
    let mut received = 0u64;
    // A body of a gigabyte may take minutes; a pause longer than the
    // deadline between its chunks is a stalled (or stalling) client. What
    // was read before is kept, as on any other refusal mid-body.
    let pause = std::time::Duration::from_secs(edge.body_timeout_secs);
    loop {
        let chunk = match next_chunk(&mut payload, pause, pause.as_secs()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                let flushed = import.flush().await;
                announce_import(&admin).await;
                flushed?;
                return Err(e.with("summary", import.summary()));
            }
        };
        received += chunk.len() as u64;
        if received > settings.max_body_bytes {
            let flushed = import.flush().await;
            announce_import(&admin).await;
            flushed?;
            return Err(too_large().with("summary", import.summary()));
        }
        lines.push(&chunk, |number, line| import.line(number, line));
        if import.rows.len() >= settings.flush_lines
            && let Err(e) = import.flush().await
        {
            announce_import(&admin).await;
            return Err(e);
        }
    }
    lines.finish(|number, line| import.line(number, line));
    let flushed = import.flush().await;
    announce_import(&admin).await;
    flushed?;
    let summary = import.summary;
    tracing::info!(
        accepted = summary.accepted,
        rejected = summary.rejected_count,
        reports = summary.reports,
        "history imported"
    );
    // Keys sorted, as the summary inside a refusal has them.
    super::sorted_json(summary)
}
