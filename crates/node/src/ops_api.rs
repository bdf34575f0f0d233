//! The operations endpoints on the local API's listener, answered without a token: `GET /healthz` (liveness),
//! `GET /readyz` (readiness: the store answers a cheap read within 2 s) and `GET /metrics` (Prometheus text,
//! [`crate::metrics`]). Registered with their `#[utoipa::path]` documentation like every other route, so the
//! OpenAPI document lists them ([`api`]).
//!
//! `/metrics` needs no token on purpose: the API tokens are not scoped, so a monitoring system holding one could
//! also create and change cases; the metrics hold no personal data and no secrets (counts by peer organisation,
//! route and status). Keep the local API on loopback or behind a proxy, as for every other route.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use sdx_model::{CaseId, ErrorCode};
use sdx_store::{AnyStore, Store};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::apidoc::op;
use crate::engine::Engine;
use crate::error::{ApiError, Problem};
use crate::metrics::Metrics;

/// How long `/readyz` waits for the store.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Ops {
    engine: Engine<AnyStore>,
    metrics: Metrics,
}

fn routes() -> OpenApiRouter<Ops> {
    OpenApiRouter::new()
        .routes(op::<__path_healthz, _, _, _>(healthz))
        .routes(op::<__path_readyz, _, _, _>(readyz))
        .routes(op::<__path_metrics, _, _, _>(metrics))
}

/// The operations router of a node.
pub fn router(engine: Engine<AnyStore>, metrics: Metrics) -> Router {
    let (router, _) = routes().split_for_parts();
    router.with_state(Ops { engine, metrics })
}

/// The documentation of the operations routes.
pub fn api() -> OpenApi {
    routes().into_openapi()
}

/// Liveness: the process serves.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    responses((status = 200, description = "The process serves", body = String, content_type = "text/plain")),
    security(())
)]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the store answers a cheap read within 2 s.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "The store failed a read or did not answer in time (internal)", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
async fn readyz(State(ops): State<Ops>) -> Result<&'static str, ApiError> {
    // A cheap indexed read of a case that cannot exist.
    let probe = ops.engine.store().get_case(CaseId::from_uuid(uuid::Uuid::nil()));
    let detail = match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(_)) => return Ok("ready\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store failed a read");
            format!("not ready: the store failed a read: {e}")
        }
        Err(_) => {
            let text = format!("not ready: the store did not answer within {} ms", READY_TIMEOUT.as_millis());
            tracing::warn!("readiness: {text}");
            text
        }
    };
    Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Internal, detail))
}

/// The node's metrics in the Prometheus text format (see `docs/observability.md`).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain; version=0.0.4")),
    security(())
)]
async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], ops.metrics.render())
}
