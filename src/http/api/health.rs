//! The service itself: `GET /health` (liveness and contents) and `GET /metrics` (Prometheus).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::http::extract::{NoParams, Query};
use crate::http::metrics::Metrics;
use crate::http::respond::{Res, get_only, json};
use crate::service::Service;
use crate::store::DemoInfo;

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/health", health)).service(get_only("/metrics", metrics));
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(health, metrics))]
pub struct Doc;

/// Answer of `GET /health`.
#[derive(Serialize, ToSchema)]
pub struct HealthOut {
    /// Always `ok` when the service answers.
    status: String,
    /// Communes in the territory.
    communes: usize,
    /// EPCI in the territory.
    epcis: usize,
    /// Edges of the neighbour graph.
    edges: usize,
    /// Adoptions held (simulated ones included).
    adoptions: usize,
    /// Feedback records held.
    feedback: usize,
    /// Version of the embedded catalogue.
    catalog_version: String,
    /// The simulated history loaded at start-up, if any.
    demo: Option<DemoInfo>,
    /// Reference date of the answers.
    as_of: NaiveDate,
}

/// Liveness and contents of the service.
///
/// `ok` when the service answers, with what it holds: communes, EPCI, edges, adoptions,
/// feedback, the catalogue's version, the simulated history if any, and the reference date.
#[utoipa::path(get, path = "/health", tag = "service", operation_id = "health",
    responses((status = 200, description = "The service answers (here: the demo)", body = HealthOut, example = crate::http::api::examples::health)))]
pub async fn health(s: web::Data<Service>, _no_query: Query<NoParams>) -> Res {
    let stats = s.stats();
    let t = s.territory();
    json(
        StatusCode::OK,
        &HealthOut {
            status: "ok".into(),
            communes: t.communes().len(),
            epcis: t.epcis().len(),
            edges: t.edge_count(),
            adoptions: stats.adoptions,
            feedback: stats.feedback,
            catalog_version: s.catalog().version.clone(),
            demo: s.demo_info().cloned(),
            as_of: s.today(),
        },
    )
}

/// Prometheus metrics.
///
/// Text exposition format 0.0.4: request counts and latency histograms per method, route
/// pattern and status, store size in bytes, adoptions and feedback held.
#[utoipa::path(get, path = "/metrics", tag = "service", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain",
        example = json!("# HELP voisinage_adoptions Adoptions held (simulated included)\n# TYPE voisinage_adoptions gauge\nvoisinage_adoptions 36610\n"))))]
pub async fn metrics(s: web::Data<Service>, m: web::Data<Metrics>, _no_query: Query<NoParams>) -> Res {
    let stats = s.stats();
    let body = m.render(stats.store_bytes, stats.adoptions, stats.feedback);
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body))
}
