//! The local API's part for ticket-system connectors: the change feed (`GET /api/v1/events`, every change of
//! every case in commit order, long-polled) and the state a connector keeps in the node's store
//! (`/api/v1/connectors/{name}/state/{key}`: links ticket ↔ case, cursors), written with compare-and-set.
//! Local changes sent with an `Idempotency-Key` header are in `local_api` (create and change).

use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa::openapi::{RefOr, Schema};
use utoipa_axum::router::OpenApiRouter;

use sdx_model::ErrorCode;
use sdx_store::{FeedCursor, MAX_PAGE, Store, StoreTx};

use crate::apidoc::{self, op};
use crate::clients::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::local_api::{JsonBytes, Query, Shared};

/// Longest `wait` of the change feed, in seconds.
pub const MAX_FEED_WAIT_S: u64 = 60;
/// How often a waiting feed request looks for new events (the feed is read from the store, so events committed
/// by another process on the same PostgreSQL database are found too).
const FEED_POLL: Duration = Duration::from_millis(100);
/// Largest state value, in bytes of JSON.
pub const MAX_STATE_BYTES: usize = 64 * 1024;
/// Largest `expectedVersion` (2^53 − 1: exact in every JSON implementation; a version grows by one per write).
pub const MAX_STATE_VERSION: u64 = (1 << 53) - 1;
/// Longest connector name and state key.
const MAX_NAME: usize = 64;
const MAX_KEY: usize = 200;

/// The routes of this module (behind the local API's bearer tokens).
pub(crate) fn routes<S: Store>() -> OpenApiRouter<Shared<S>> {
    OpenApiRouter::new()
        .routes(op::<__path_events, _, _, _>(events::<S>))
        .routes(op::<__path_get_state, _, _, _>(get_state::<S>))
        .routes(op::<__path_put_state, _, _, _>(put_state::<S>))
        .routes(op::<__path_delete_state, _, _, _>(delete_state::<S>))
        .routes(op::<__path_report, _, _, _>(report::<S>))
}

/// Longest reported text.
pub const MAX_REPORT_CHARS: usize = 500;

/// The case id in the path of `report`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documentation of the path parameter read by `PathId`
struct ReportPathDoc {
    /// The case id (UUID, lowercase).
    #[param(value_type = apidoc::UuidDoc)]
    id: String,
}

/// Record a problem in a case's timeline (not sent to the partner).
///
/// For connectors and other local clients: a value the ticket system cannot take, a status its workflow
/// refuses. The event (`reported`) appears in the case's timeline and the change feed. Name codes and ids, not
/// personal data.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/reports",
    operation_id = "reportCaseProblem",
    params(ReportPathDoc),
    request_body(content = apidoc::ReportDoc, content_type = "application/json"),
    responses(
        (status = 204, description = "Recorded in the case's timeline"),
        (status = 400, description = "A bad case id (invalidIdentifier) or body (schemaViolation, malformed)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The case belongs to another ticket system of this organisation (notPermitted)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such case here (unknownCase)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the document limit (tooLarge)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (malformed)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn report<S: Store>(
    State(st): State<Shared<S>>,
    caller: Caller,
    id: crate::local_api::PathId,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Response> {
    let id = id.case_id()?;
    let bad = |d: String| ApiError::bad_request(ErrorCode::SchemaViolation, d);
    let m = crate::local_api::small_object(&body, "report", &["detail"])?;
    let detail = match m.get("detail") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_REPORT_CHARS => s.clone(),
        _ => return Err(bad(format!("report: detail is a text of 1 to {MAX_REPORT_CHARS} characters"))),
    };
    let mut tx = st.engine.store().begin().await?;
    match tx.get_case(id).await? {
        None => return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::UnknownCase, format!("case {id}"))),
        Some(rec) if !caller.may_see(rec.owner.as_deref()) => return Err(crate::local_api::not_owner(id)),
        Some(_) => {}
    }
    let ev = sdx_store::TimelineEvent {
        case_id: id,
        at: sdx_model::Timestamp::now(),
        kind: sdx_store::EventKind::Reported,
        message_id: None,
        detail,
    };
    tx.add_event(&ev).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

apidoc::inline_schema!(
    /// A feed cursor parameter.
    FeedCursorParam = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(r"^[0-9]{1,19}\.[0-9]{1,19}$"))
        .into()
);

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FeedParams {
    /// Continue after this cursor (the `next` of the previous answer, or an event's `cursor`); from the
    /// beginning without it. Opaque: pass it back unchanged.
    #[param(inline, value_type = Option<FeedCursorParam>)]
    after: Option<String>,
    /// Wait up to this many seconds (0 to 60) for an event when there is none yet (long poll; the node may
    /// answer earlier, with no events, after its `[api] feed_max_wait_s`); 0 or absent: answer at once.
    #[param(minimum = 0, maximum = 60)]
    wait: Option<u64>,
    /// At most this many events (1 to 500, default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// The change feed: every change of every case, in commit order.
///
/// Each event is a timeline event of a case (a message sent or received and applied, a receipt, a status change,
/// a conflict, a failed or dead delivery, an operator's retry or skip) with its `cursor`. Keep `next` durably and
/// pass it as `after`: the feed never skips an event and, after a restart, gives again only what came after it.
/// A client limited to its own cases (`cases = "own"`) gets the events of the cases it owns now; `next` still
/// moves past the others.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "listEvents",
    params(FeedParams),
    responses(
        (status = 200, description = "The events after the cursor (possibly none after waiting) and the cursor to continue from", body = apidoc::FeedPageDoc),
        (status = 400, description = "A bad parameter or cursor (schemaViolation)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn events<S: Store>(
    State(st): State<Shared<S>>,
    caller: Caller,
    Query(p): Query<FeedParams>,
) -> ApiResult<axum::Json<Value>> {
    let bad = |d: String| ApiError::bad_request(ErrorCode::SchemaViolation, d);
    let after = match p.after.as_deref() {
        Some(a) => FeedCursor::parse(a).map_err(|e| bad(e.to_string()))?,
        None => FeedCursor::START,
    };
    let wait = p.wait.unwrap_or(0);
    if wait > MAX_FEED_WAIT_S {
        return Err(bad(format!("wait is at most {MAX_FEED_WAIT_S} seconds, not {wait}")));
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad(format!("limit is 1 to {MAX_PAGE}, not {limit}")));
    }
    let deadline = Instant::now() + Duration::from_secs(wait).min(st.feed_max_wait);
    let store = st.engine.store();
    let signal = st.engine.feed_signal();
    let mut scanned = after;
    let found = loop {
        // Registered before the store is read, so a commit in between is not missed; the store is read again
        // every FEED_POLL anyway (events of the delivery worker, other processes on one database).
        let committed = signal.notified();
        tokio::pin!(committed);
        committed.as_mut().enable();
        let mut found = store.feed(scanned, limit).await?;
        let full = found.len() == limit as usize;
        if let Some(me) = caller.restricted_to() {
            // Read on past the events of others' cases: `next` moves past them.
            // Owners are read afresh for every page: a case given to this client while it waits shows up with
            // its `ownerChanged` event.
            scanned = found.last().map_or(scanned, |e| e.cursor);
            found = OwnerCache::default().keep_own(store, found, me).await?;
            if found.is_empty() && full {
                continue;
            }
        }
        if !found.is_empty() || Instant::now() >= deadline {
            break found;
        }
        let poll = FEED_POLL.min(deadline.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = committed => {}
            _ = tokio::time::sleep(poll) => {}
        }
    };
    Ok(axum::Json(feed_page(found, scanned)))
}

/// The owners of the cases of one page of the feed, each read once.
#[derive(Default)]
struct OwnerCache(std::collections::HashMap<sdx_model::CaseId, Option<String>>);

impl OwnerCache {
    /// The events of the cases `me` owns.
    async fn keep_own<S: Store>(
        &mut self,
        store: &S,
        events: Vec<sdx_store::FeedEvent>,
        me: &str,
    ) -> ApiResult<Vec<sdx_store::FeedEvent>> {
        let mut kept = Vec::with_capacity(events.len());
        for e in events {
            let id = e.event.case_id;
            let owner = match self.0.entry(id) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(store.get_case(id).await?.and_then(|r| r.owner))
                }
            };
            if owner.as_deref() == Some(me) {
                kept.push(e);
            }
        }
        Ok(kept)
    }
}

/// A page of the feed as the API and webhooks send it (`FeedPage`): the events with their cursors, and where to
/// continue (the last event's cursor, or `after` when there was none or it is later).
pub fn feed_page(found: Vec<sdx_store::FeedEvent>, after: FeedCursor) -> Value {
    let next = found.last().map_or(after, |e| e.cursor.max(after));
    let events: Vec<Value> = found
        .into_iter()
        .map(|e| {
            let mut v = json!(e.event);
            v["cursor"] = json!(e.cursor.to_string());
            v
        })
        .collect();
    json!({"events": events, "next": next.to_string()})
}

/// The connector name and state key in the path, checked.
struct StatePath {
    name: String,
    key: String,
}

impl<S: Send + Sync> FromRequestParts<S> for StatePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path((name, key)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state).await?;
        let ok = |s: &str, max: usize, extra: &[u8]| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
        };
        if !ok(&name, MAX_NAME, b"-_") {
            let detail = format!("connector name: 1 to {MAX_NAME} of A-Z a-z 0-9 - _");
            return Err(ApiError::bad_request(ErrorCode::SchemaViolation, detail));
        }
        if !ok(&key, MAX_KEY, b"-_.:@") {
            let detail = format!("state key: 1 to {MAX_KEY} of A-Z a-z 0-9 - _ . : @");
            return Err(ApiError::bad_request(ErrorCode::SchemaViolation, detail));
        }
        Ok(StatePath { name, key })
    }
}

/// The path parameters of the state routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documentation of the path parameters read by `StatePath`
struct StatePathDoc {
    /// The connector's name (from its `[[connectors]]` entry).
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    name: String,
    /// The key.
    #[param(pattern = r"^[A-Za-z0-9_.:@-]{1,200}$")]
    key: String,
}

fn not_found(name: &str, key: &str) -> ApiError {
    // unknownCase is the closest code of the SDX list; the detail says what is missing.
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::UnknownCase, format!("connector {name} has no state {key}"))
}

fn version_conflict(name: &str, key: &str) -> ApiError {
    let detail = format!("state {key} of connector {name} has another version; read it again");
    ApiError::new(StatusCode::CONFLICT, ErrorCode::InconsistentCase, detail)
}

/// A value a connector keeps in the node's store.
#[utoipa::path(
    get,
    path = "/api/v1/connectors/{name}/state/{key}",
    operation_id = "getConnectorState",
    params(StatePathDoc),
    responses(
        (status = 200, description = "The value and its version", body = apidoc::ConnectorStateDoc),
        (status = 400, description = "A bad name or key (schemaViolation)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No value under this key (unknownCase)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_state<S: Store>(State(st): State<Shared<S>>, path: StatePath) -> ApiResult<axum::Json<Value>> {
    let entry = st
        .engine
        .store()
        .connector_state(&path.name, &path.key)
        .await?
        .ok_or_else(|| not_found(&path.name, &path.key))?;
    let value: Value =
        serde_json::from_str(&entry.value).map_err(|e| ApiError::internal("a stored connector state", &e, false))?;
    Ok(axum::Json(json!({"value": value, "version": entry.version})))
}

/// The request of a state write: `{"value": …, "expectedVersion": n|null}` (an integer-valued number, also
/// written `3.0`).
struct PutState {
    value: Value,
    expected_version: Option<u64>,
}

impl PutState {
    fn parse(body: &[u8]) -> Result<PutState, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("state: {e}"))?;
        let Value::Object(mut m) = v else { return Err("state: a JSON object with value and expectedVersion".into()) };
        if let Some(k) = m.keys().find(|k| *k != "value" && *k != "expectedVersion") {
            return Err(format!("state: unknown member `{k}`; allowed: value, expectedVersion"));
        }
        let value = m.remove("value").ok_or("state: value is missing")?;
        let expected_version = match m.remove("expectedVersion") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_u64()
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64))
                    .filter(|v| *v <= MAX_STATE_VERSION)
                    .ok_or("state: expectedVersion is a whole number from 0 to 2^53 − 1")?,
            ),
            Some(_) => return Err("state: expectedVersion is a whole number from 0 to 2^53 − 1".into()),
        };
        Ok(PutState { value, expected_version })
    }
}

/// Write a value a connector keeps in the node's store.
///
/// With `expectedVersion` the write happens only if the stored version is that one (0: there is no value yet),
/// else 409: read, merge and write again.
#[utoipa::path(
    put,
    path = "/api/v1/connectors/{name}/state/{key}",
    operation_id = "putConnectorState",
    params(StatePathDoc),
    request_body(content = apidoc::PutConnectorStateDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored; the new version", body = apidoc::ConnectorStateVersionDoc),
        (status = 400, description = "A bad name, key or body (schemaViolation, malformed)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The stored version is not expectedVersion (inconsistentCase)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the document limit (tooLarge)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (malformed)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn put_state<S: Store>(
    State(st): State<Shared<S>>,
    path: StatePath,
    JsonBytes(body): JsonBytes,
) -> ApiResult<axum::Json<Value>> {
    let req = PutState::parse(&body).map_err(|e| ApiError::bad_request(ErrorCode::SchemaViolation, e))?;
    let text = req.value.to_string();
    if text.len() > MAX_STATE_BYTES {
        let detail = format!("a state value is at most {MAX_STATE_BYTES} bytes of JSON, this is {}", text.len());
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, detail));
    }
    let mut tx = st.engine.store().begin().await?;
    let version = match tx.put_connector_state(&path.name, &path.key, Some(&text), req.expected_version).await {
        Err(sdx_store::Error::Conflict) => return Err(version_conflict(&path.name, &path.key)),
        v => v?,
    };
    tx.commit().await?;
    Ok(axum::Json(json!({"version": version})))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeleteParams {
    /// Delete only if the stored version is this one (0: succeed only if there is no value).
    #[param(minimum = 0)]
    expected_version: Option<u64>,
}

/// Delete a value a connector keeps in the node's store (deleting what is not there succeeds).
#[utoipa::path(
    delete,
    path = "/api/v1/connectors/{name}/state/{key}",
    operation_id = "deleteConnectorState",
    params(StatePathDoc, DeleteParams),
    responses(
        (status = 204, description = "Deleted (or there was nothing)"),
        (status = 400, description = "A bad name, key or parameter (schemaViolation)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The stored version is not expectedVersion (inconsistentCase)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn delete_state<S: Store>(
    State(st): State<Shared<S>>,
    path: StatePath,
    Query(p): Query<DeleteParams>,
) -> ApiResult<Response> {
    let mut tx = st.engine.store().begin().await?;
    match tx.put_connector_state(&path.name, &path.key, None, p.expected_version).await {
        Err(sdx_store::Error::Conflict) => return Err(version_conflict(&path.name, &path.key)),
        v => v?,
    };
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
