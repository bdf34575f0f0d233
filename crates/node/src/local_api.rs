//! The local API for the organisation's own ticket system and operators: JSON over HTTP, one bearer token
//! per client (stored as SHA-256, compared in constant time), errors as `application/problem+json`
//! (RFC 9457) with the stable SDX error code in `errorCode`.
//!
//! | method and path | does |
//! |---|---|
//! | `POST /api/v1/cases` | create a case (`{"case": …, "note": …}`) and forward it to its assignee → 201 |
//! | `POST /api/v1/cases/{id}/changes` | apply a change — one message body, e.g. `{"update": {…}}`, `{"resolve": {…}}`, `{"handBack": {…}}`, `{"close": {…}}`, `{"reopen": {…}}`, `{"reject": {…}}` — and send it to the partner |
//! | `GET /api/v1/cases/{id}?fields=` | the case, its partner, our role and the cross-organisation timeline |
//! | `GET /api/v1/cases?status=&ticketType=&priority=&leikaKey=&region=&partner=&updatedSince=&cursor=&limit=&fields=` | query, keyset-paged |
//! | `GET /api/v1/deliveries?state=pending\|delivered\|dead&limit=` | the outbox |
//! | `POST /api/v1/deliveries/{messageId}/retry` | put a dead letter back into delivery |
//! | `GET /api/v1/openapi.json` | the OpenAPI 3.1 document (no token needed) |
//!
//! `fields` (TMF621 attribute selection) is a comma-separated list of top-level members of a case view to return:
//! `case`, `partner`, `ourRole`, `updatedAt`, and on `GET /api/v1/cases/{id}` also `timeline` (not selecting it
//! also saves reading it). The case id is always returned at the same place as in the full view,
//! `case.caseId`: if `case` is not selected, the view holds `"case": {"caseId": …}`. Names are exact (case
//! sensitive) and may repeat; an unknown name, a nested path such as `case.status` (not supported), an empty
//! entry (`fields=,partner`) or an empty list (`fields=`) is refused with 400 `schemaViolation`, naming the
//! allowed members. Without `fields` the full view is returned.
//!
//! Personal data (the requester) is returned to authenticated clients only and never logged.
#![allow(clippy::result_large_err)] // handlers return ready `Response`s as errors; they are built once per request

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use sdx_model::lifecycle::Refusal;
use sdx_model::{Ars, Body, Case, CaseId, Coded, ErrorCode, LeikaKey, MessageId, OrgKey, Status, Timestamp};
use sdx_store::{CaseQuery, CaseRecord, DeliveryState, Store, TimelineEvent};

use crate::engine::{Engine, EngineError};
use crate::settings::ApiClient;

/// Path prefix of the local API.
pub const API_PREFIX: &str = "/api/v1";

struct ApiState<S: Store> {
    engine: Engine<S>,
    /// SHA-256 of each client's token.
    tokens: Vec<[u8; 32]>,
}

type Shared<S> = Arc<ApiState<S>>;

/// A problem response (RFC 9457).
pub fn problem(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Response {
    let code = code.code();
    let body = json!({
        "type": format!("urn:xoev-de:sdx:problem:{code}"),
        "title": code,
        "status": status.as_u16(),
        "detail": detail.into(),
        "errorCode": code,
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    r
}

fn refused(r: &Refusal) -> Response {
    let status = match r.code {
        ErrorCode::NotPermitted => StatusCode::FORBIDDEN,
        ErrorCode::UnknownCase => StatusCode::NOT_FOUND,
        ErrorCode::InconsistentCase | ErrorCode::DuplicateId => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    problem(status, r.code, &r.message)
}

fn engine_error(e: EngineError) -> Response {
    match e {
        EngineError::Refused(r) => refused(&r),
        EngineError::NotFound(id) => problem(StatusCode::NOT_FOUND, ErrorCode::UnknownCase, format!("case {id}")),
        EngineError::UnknownPeer(org) => {
            problem(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::WrongRecipient, format!("no peer {org} is configured"))
        }
        EngineError::Conflict => {
            problem(StatusCode::CONFLICT, ErrorCode::Internal, "the case changed meanwhile; retry")
        }
        other => {
            tracing::error!(error = %other, "local API request failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal error; see the node's log")
        }
    }
}

fn store_error(e: sdx_store::Error) -> Response {
    match e {
        sdx_store::Error::Invalid(m) => problem(StatusCode::BAD_REQUEST, ErrorCode::SchemaViolation, m),
        other => engine_error(EngineError::Store(other)),
    }
}

fn json_rejection(r: JsonRejection) -> Response {
    let text = r.body_text();
    let code = match text.split_once('[').and_then(|(_, rest)| rest.split_once(']')) {
        Some((c, _)) => ErrorCode::parse(c).unwrap_or(ErrorCode::SchemaViolation),
        None => ErrorCode::SchemaViolation,
    };
    problem(StatusCode::BAD_REQUEST, code, text)
}

/// The router of the local API (plain HTTP: keep it on loopback or behind a TLS proxy).
pub fn router<S: Store>(engine: Engine<S>, clients: &[ApiClient]) -> Router {
    let tokens = clients
        .iter()
        .filter_map(|c| {
            let mut h = [0u8; 32];
            let hex = c.token_sha256.as_bytes();
            for (i, chunk) in hex.chunks(2).enumerate() {
                h[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
            }
            Some(h)
        })
        .collect();
    let state: Shared<S> = Arc::new(ApiState { engine, tokens });
    Router::new()
        .route(&format!("{API_PREFIX}/cases"), post(create::<S>).get(list::<S>))
        .route(&format!("{API_PREFIX}/cases/{{id}}"), get(get_case::<S>))
        .route(&format!("{API_PREFIX}/cases/{{id}}/changes"), post(change::<S>))
        .route(&format!("{API_PREFIX}/deliveries"), get(deliveries::<S>))
        .route(&format!("{API_PREFIX}/deliveries/{{id}}/retry"), post(retry::<S>))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate::<S>))
        .with_state(state)
        .route(&format!("{API_PREFIX}/openapi.json"), get(|| async { axum::Json(crate::openapi::document()) }))
}

async fn authenticate<S: Store>(State(st): State<Shared<S>>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let ok = token.is_some_and(|t| {
        let h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes());
        // Constant-time comparison against every client, without stopping early.
        st.tokens
            .iter()
            .fold(false, |found, k| found | aws_lc_rs::constant_time::verify_slices_are_equal(h.as_ref(), k).is_ok())
    });
    if !ok {
        let mut r = problem(StatusCode::UNAUTHORIZED, ErrorCode::UnknownSender, "a valid bearer token is required");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(req).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCase {
    case: Case,
    #[serde(default)]
    note: Option<String>,
}

async fn create<S: Store>(
    State(st): State<Shared<S>>,
    body: Result<axum::Json<CreateCase>, JsonRejection>,
) -> Response {
    let axum::Json(req) = match body {
        Ok(b) => b,
        Err(r) => return json_rejection(r),
    };
    match st.engine.forward(req.case, req.note).await {
        Ok(sent) => {
            (StatusCode::CREATED, axum::Json(json!({"messageId": sent.message_id, "case": sent.case}))).into_response()
        }
        Err(e) => engine_error(e),
    }
}

fn case_id(p: Result<Path<String>, PathRejection>) -> Result<CaseId, Response> {
    let Path(s) = p.map_err(|r| problem(StatusCode::BAD_REQUEST, ErrorCode::InvalidIdentifier, r.body_text()))?;
    CaseId::parse(&s).map_err(|e| problem(StatusCode::BAD_REQUEST, ErrorCode::InvalidIdentifier, e.to_string()))
}

async fn change<S: Store>(
    State(st): State<Shared<S>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<axum::Json<Body>, JsonRejection>,
) -> Response {
    let id = match case_id(id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let axum::Json(body) = match body {
        Ok(b) => b,
        Err(r) => return json_rejection(r),
    };
    match st.engine.change(id, body).await {
        Ok(sent) => axum::Json(json!({"messageId": sent.message_id, "case": sent.case})).into_response(),
        Err(e) => engine_error(e),
    }
}

/// Members of the single-case view, in response order; `fields` selects among them.
pub(crate) const CASE_MEMBERS: &[&str] = &["case", "partner", "ourRole", "updatedAt", "timeline"];
/// Members of a query result item (the single-case view without the timeline).
pub(crate) const ITEM_MEMBERS: &[&str] = &["case", "partner", "ourRole", "updatedAt"];

/// Why a `fields` value was refused.
#[derive(Debug, thiserror::Error)]
enum FieldsError {
    #[error("fields: name at least one member of {allowed}")]
    Empty { allowed: String },
    #[error("fields: empty entry; separate member names by single commas: {allowed}")]
    EmptyEntry { allowed: String },
    #[error("fields: `{name}` is a nested path, which is not supported; select top-level members: {allowed}")]
    Nested { name: String, allowed: String },
    #[error("fields: unknown member `{name}`; allowed: {allowed} (case.caseId is always returned)")]
    Unknown { name: String, allowed: String },
}

/// The members a request selected with `fields` (all of them without it).
struct Fields(Vec<&'static str>);

impl Fields {
    /// Parse the `fields` parameter against the members the view has.
    fn parse(value: Option<&str>, allowed: &'static [&'static str]) -> Result<Self, FieldsError> {
        let Some(value) = value else { return Ok(Fields(allowed.to_vec())) };
        let list = || allowed.join(", ");
        if value.trim().is_empty() {
            return Err(FieldsError::Empty { allowed: list() });
        }
        let mut selected = Vec::new();
        for name in value.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(FieldsError::EmptyEntry { allowed: list() });
            }
            match allowed.iter().find(|m| **m == name) {
                Some(m) if !selected.contains(m) => selected.push(*m),
                Some(_) => {}
                None if name.contains('.') => return Err(FieldsError::Nested { name: name.into(), allowed: list() }),
                None => return Err(FieldsError::Unknown { name: name.into(), allowed: list() }),
            }
        }
        Ok(Fields(selected))
    }

    fn has(&self, member: &str) -> bool {
        self.0.contains(&member)
    }
}

fn fields_error(e: FieldsError) -> Response {
    problem(StatusCode::BAD_REQUEST, ErrorCode::SchemaViolation, e.to_string())
}

/// A case view with the selected members; `case.caseId` is always there.
fn view(rec: CaseRecord, timeline: Option<Vec<TimelineEvent>>, fields: &Fields) -> Value {
    let mut v = serde_json::Map::new();
    if fields.has("case") {
        v.insert("case".into(), json!(rec.case));
    } else {
        v.insert("case".into(), json!({"caseId": rec.case.case_id}));
    }
    if fields.has("partner") {
        v.insert("partner".into(), json!(rec.partner));
    }
    if fields.has("ourRole") {
        v.insert("ourRole".into(), json!(rec.our_role));
    }
    if fields.has("updatedAt") {
        v.insert("updatedAt".into(), json!(rec.updated_at));
    }
    if let Some(t) = timeline.filter(|_| fields.has("timeline")) {
        v.insert("timeline".into(), json!(t));
    }
    Value::Object(v)
}

/// Query parameters of `GET /cases/{id}`; others are ignored, as they were before `fields` existed.
#[derive(Deserialize, Default)]
struct GetParams {
    fields: Option<String>,
}

async fn get_case<S: Store>(
    State(st): State<Shared<S>>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<GetParams>, QueryRejection>,
) -> Response {
    let id = match case_id(id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Query(p) = match q {
        Ok(q) => q,
        Err(r) => return problem(StatusCode::BAD_REQUEST, ErrorCode::SchemaViolation, r.body_text()),
    };
    let fields = match Fields::parse(p.fields.as_deref(), CASE_MEMBERS) {
        Ok(f) => f,
        Err(e) => return fields_error(e),
    };
    let store = st.engine.store();
    let rec = match store.get_case(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return problem(StatusCode::NOT_FOUND, ErrorCode::UnknownCase, format!("case {id}")),
        Err(e) => return store_error(e),
    };
    let timeline = if fields.has("timeline") {
        match store.timeline(id).await {
            Ok(t) => Some(t),
            Err(e) => return store_error(e),
        }
    } else {
        None
    };
    axum::Json(view(rec, timeline, &fields)).into_response()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    ticket_type: Option<String>,
    priority: Option<String>,
    leika_key: Option<String>,
    region: Option<String>,
    partner: Option<String>,
    updated_since: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
    fields: Option<String>,
}

fn bad(e: impl std::fmt::Display) -> Response {
    let text = e.to_string();
    let code = if text.starts_with("[unknownCode]") {
        ErrorCode::UnknownCode
    } else if text.starts_with("[invalidTimestamp]") {
        ErrorCode::InvalidTimestamp
    } else {
        ErrorCode::InvalidIdentifier
    };
    problem(StatusCode::BAD_REQUEST, code, text)
}

fn to_query(p: ListParams) -> Result<(CaseQuery, Fields), Response> {
    let fields = Fields::parse(p.fields.as_deref(), ITEM_MEMBERS).map_err(fields_error)?;
    let status = match p.status {
        Some(s) => s.split(',').map(|c| Status::parse(c.trim()).map_err(bad)).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let query = CaseQuery {
        status,
        ticket_type: p.ticket_type.map(|t| sdx_model::TicketType::parse(&t)).transpose().map_err(bad)?,
        priority: p.priority.map(|t| sdx_model::Priority::parse(&t)).transpose().map_err(bad)?,
        leika_key: p.leika_key.map(LeikaKey::parse).transpose().map_err(bad)?,
        region_prefix: p.region.map(Ars::parse).transpose().map_err(bad)?,
        partner: p.partner.map(OrgKey::parse).transpose().map_err(bad)?,
        updated_since: p.updated_since.map(|t| Timestamp::parse(&t)).transpose().map_err(bad)?,
        cursor: p.cursor,
        limit: p.limit.unwrap_or(0),
    };
    Ok((query, fields))
}

async fn list<S: Store>(State(st): State<Shared<S>>, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let Query(p) = match q {
        Ok(q) => q,
        Err(r) => return problem(StatusCode::BAD_REQUEST, ErrorCode::SchemaViolation, r.body_text()),
    };
    let (query, fields) = match to_query(p) {
        Ok(q) => q,
        Err(r) => return r,
    };
    match st.engine.store().query_cases(&query).await {
        Ok(page) => {
            let items: Vec<_> = page.items.into_iter().map(|r| view(r, None, &fields)).collect();
            axum::Json(json!({"items": items, "nextCursor": page.next_cursor})).into_response()
        }
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryParams {
    state: Option<String>,
    limit: Option<u32>,
}

async fn deliveries<S: Store>(
    State(st): State<Shared<S>>,
    q: Result<Query<DeliveryParams>, QueryRejection>,
) -> Response {
    let Query(p) = match q {
        Ok(q) => q,
        Err(r) => return problem(StatusCode::BAD_REQUEST, ErrorCode::SchemaViolation, r.body_text()),
    };
    let state = match p.state.as_deref().map(|s| DeliveryState::parse(s).ok_or(s)).transpose() {
        Ok(s) => s,
        Err(s) => {
            return problem(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnknownCode,
                format!("state `{s}`: pending, delivered or dead"),
            );
        }
    };
    match st.engine.store().list_deliveries(state, p.limit.unwrap_or(100).min(500)).await {
        Ok(items) => axum::Json(json!({"items": items})).into_response(),
        Err(e) => store_error(e),
    }
}

async fn retry<S: Store>(State(st): State<Shared<S>>, id: Result<Path<String>, PathRejection>) -> Response {
    let Ok(Path(s)) = id else {
        return problem(StatusCode::BAD_REQUEST, ErrorCode::InvalidIdentifier, "message id expected");
    };
    let id = match MessageId::parse(&s) {
        Ok(id) => id,
        Err(e) => return problem(StatusCode::BAD_REQUEST, ErrorCode::InvalidIdentifier, e.to_string()),
    };
    match st.engine.retry_dead(id).await {
        Ok(true) => axum::Json(json!({"messageId": id, "state": "pending"})).into_response(),
        Ok(false) => problem(StatusCode::NOT_FOUND, ErrorCode::UnknownCase, format!("no dead letter {id}")),
        Err(e) => engine_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parsing() {
        let parse = |v: Option<&str>| Fields::parse(v, ITEM_MEMBERS);
        assert_eq!(parse(None).unwrap().0, ITEM_MEMBERS);
        assert_eq!(parse(Some(" updatedAt ,partner,updatedAt")).unwrap().0, ["updatedAt", "partner"]);
        assert!(matches!(parse(Some("")), Err(FieldsError::Empty { .. })));
        assert!(matches!(parse(Some(" \t")), Err(FieldsError::Empty { .. })));
        for v in [",", ",case", "case,", "case,,partner", "case, ,partner"] {
            assert!(matches!(parse(Some(v)), Err(FieldsError::EmptyEntry { .. })), "{v}");
        }
        assert!(matches!(parse(Some("case.caseId")), Err(FieldsError::Nested { .. })));
        for v in ["timeline", "caseId", "Case", "\0", "\u{202e}ä", "case;partner"] {
            let e = parse(Some(v)).err().unwrap();
            assert!(matches!(e, FieldsError::Unknown { .. }), "{v}");
            assert!(
                e.to_string().ends_with("allowed: case, partner, ourRole, updatedAt (case.caseId is always returned)")
            );
        }
        assert_eq!(Fields::parse(Some("timeline"), CASE_MEMBERS).unwrap().0, ["timeline"]);
    }
}
