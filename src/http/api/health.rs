//! The service itself: `GET /health/live` (the process answers), `GET /health/ready` (the
//! store takes a probe write and sync within [`READY_DEADLINE`]), `GET /health` (contents, and
//! 503 while the store is failing) and `GET /metrics` (Prometheus).
//!
//! The service listens only once its index is loaded, so an answer from `/health/live` also
//! means the start is over; `/health/ready` adds that the store writes. `/health` keeps its
//! meaning (what the service holds), answered from memory without a probe, and turns 503 when
//! a store write has failed and no probe has succeeded since.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::error::Error;
use crate::http::extract::{NoParams, Query};
use crate::http::metrics::Metrics;
use crate::http::problem::Problem;
use crate::http::respond::{Res, blocking, get_only, json};
use crate::service::Service;
use crate::store::DemoInfo;

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/health", health))
        .service(get_only("/health/live", live))
        .service(get_only("/health/ready", ready))
        .service(get_only("/metrics", metrics));
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(health, live, ready, metrics))]
pub struct Doc;

/// Longest time the readiness probe (a write and a sync of the store) may take before
/// `/health/ready` answers 503.
pub const READY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Answer of `GET /health/live`.
#[derive(Serialize, ToSchema)]
pub struct LiveOut {
    /// Always `live`.
    status: String,
}

/// Answer of `GET /health/ready`.
#[derive(Serialize, ToSchema)]
pub struct ReadyOut {
    /// Always `ready` (a service that is not ready answers 503 with a problem).
    status: String,
    /// Time the store's probe write and sync took, ms (the last probe's, when one ran within
    /// the last second).
    probe_ms: f64,
}

/// Liveness: the process answers.
///
/// 200 as long as the process serves HTTP; it does not touch the store (a supervisor restarts
/// a process that stops answering, not one whose disk is full: see `/health/ready`).
#[utoipa::path(get, path = "/health/live", tag = "service", operation_id = "health_live",
    responses((status = 200, description = "The process answers", body = LiveOut, example = json!({"status": "live"}))))]
pub async fn live(_no_query: Query<NoParams>) -> Res {
    json(StatusCode::OK, &LiveOut { status: "live".into() })
}

/// Readiness: the store writes.
///
/// 200 when a probe write to the store and its sync succeed within 5 s (the index is loaded
/// before the service listens). 503 with a problem when the store refuses the probe (disk
/// full, I/O error) or is too slow; writes are then refused with 503 too. A failed store
/// recovers by itself when a later probe succeeds; when the disk has room again but the store
/// still fails, the service exits with status 75 so that its supervisor restarts it (README,
/// "Operations").
#[utoipa::path(get, path = "/health/ready", tag = "service", operation_id = "health_ready",
    responses(
        (status = 200, description = "Ready: the store took a probe write and synced it", body = ReadyOut, example = json!({"status": "ready", "probe_ms": 3.2})),
        (status = 503, description = "Not ready: the store refuses writes or the probe took more than 5 s", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String)))))]
pub async fn ready(s: web::Data<Service>, _no_query: Query<NoParams>) -> Res {
    let probe = blocking(move || s.readiness());
    match actix_web::rt::time::timeout(READY_DEADLINE, probe).await {
        Ok(Ok(probe_ms)) => json(StatusCode::OK, &ReadyOut { status: "ready".into(), probe_ms }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Unavailable(format!("the store's probe write did not finish within {} s", READY_DEADLINE.as_secs()))),
    }
}

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

/// Contents of the service.
///
/// `ok` when the service answers, with what it holds: communes, EPCI, edges, adoptions,
/// feedback, the catalogue's version, the simulated history if any, and the reference date.
/// Answered from memory (no probe); 503 while a store write has failed and no readiness probe
/// has succeeded since.
#[utoipa::path(get, path = "/health", tag = "service", operation_id = "health",
    responses(
        (status = 200, description = "The service answers (here: the demo)", body = HealthOut, example = crate::http::api::examples::health),
        (status = 503, description = "A store write failed: writes are refused until the store is healthy again", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String)))))]
pub async fn health(s: web::Data<Service>, _no_query: Query<NoParams>) -> Res {
    if let Some(failure) = s.store_failure() {
        return Err(failure.unavailable());
    }
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
/// pattern and status, store size in bytes, adoptions and feedback held, the answer cache's
/// bytes, budget, answers, hits and misses.
#[utoipa::path(get, path = "/metrics", tag = "service", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain",
        example = json!("# HELP voisinage_adoptions Adoptions held (simulated included)\n# TYPE voisinage_adoptions gauge\nvoisinage_adoptions 36610\n"))))]
pub async fn metrics(s: web::Data<Service>, m: web::Data<Metrics>, _no_query: Query<NoParams>) -> Res {
    let stats = s.stats();
    m.set_store_state(stats.store_errors, stats.store_failing);
    let body = m.render(&stats, s.answer_cache_stats());
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body))
}
