//! The reference server: a bare actix-web handler taking `web::Json` of the
//! same fields as `POST /api/v1/reports` and answering 202 with a body of the
//! same shape, no storage. What outagewatch's intake is measured against.

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::support::{self, ServerThread};

#[derive(Deserialize)]
struct RefReport {
    service: String,
    #[allow(dead_code)]
    problem: String,
    #[allow(dead_code)]
    country: Option<String>,
    #[allow(dead_code)]
    client_id: Option<String>,
}

#[derive(Serialize)]
struct RefAccepted {
    id: String,
    service: String,
    counted: bool,
    bucket: String,
}

async fn ref_report(report: web::Json<RefReport>) -> HttpResponse {
    let minute = chrono::Utc::now().timestamp().div_euclid(60) * 60;
    let bucket = chrono::DateTime::from_timestamp(minute, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    HttpResponse::Accepted().json(RefAccepted {
        id: uuid::Uuid::now_v7().to_string(),
        service: report.into_inner().service,
        counted: true,
        bucket,
    })
}

pub fn start() -> anyhow::Result<ServerThread> {
    ServerThread::spawn("ref-system", || async {
        let server =
            HttpServer::new(|| App::new().route("/api/v1/reports", web::post().to(ref_report)))
                .workers(1)
                .bind((support::LOOPBACK, 0))?;
        let port = server
            .addrs()
            .first()
            .map(|a| a.port())
            .context("no address")?;
        let server = server.run();
        let handle = server.handle();
        Ok((port, handle, async move {
            server.await.context("reference server")
        }))
    })
}
