//! The local API for the organisation's own ticket system and operators: JSON over HTTP, one bearer token
//! per client (stored as SHA-256, compared in constant time), errors as `application/problem+json`
//! (RFC 9457) with the stable SDX error code in `errorCode`.
//!
//! | method and path | does |
//! |---|---|
//! | `POST /api/v1/cases?waitForReceipt=` | create a case (`{"case": …, "note": …}`) and forward it to its assignee → 201; with `waitForReceipt=S` (≤ 60) the answer waits up to S seconds for the assignee's signed receipt and says `"delivered": true/false` |
//! | `POST /api/v1/cases/{id}/changes` | apply a change — one message body, e.g. `{"update": {…}}`, `{"resolve": {…}}`, `{"handBack": {…}}`, `{"close": {…}}`, `{"reopen": {…}}`, `{"reject": {…}}` — and send it to the partner |
//! | `GET /api/v1/cases/{id}?fields=` | the case, its partner, our role and the cross-organisation timeline |
//! | `GET /api/v1/cases?status=&ticketType=&priority=&leikaKey=&region=&partner=&updatedSince=&cursor=&limit=&fields=` | query, keyset-paged |
//! | `GET /api/v1/deliveries?state=pending\|delivered\|dead&limit=` | the outbox |
//! | `POST /api/v1/deliveries/{messageId}/retry` | put a dead letter back into delivery |
//! | `GET /api/v1/openapi.json` | the OpenAPI 3.1 document (no token needed) |
//!
//! `fields` (TMF621 attribute selection) is a comma-separated list of names to return. A name is either a
//! top-level member of the case view — `case`, `partner`, `ourRole`, `updatedAt`, and on `GET /api/v1/cases/{id}`
//! also `timeline` (not selecting it also saves reading it) — or a top-level attribute of the case, one of the
//! members of `sdx_model::Case` (`caseId`, `status`, `priority`, `subject`, …; the list comes from the format
//! description `sdx_codec::desc::CASE`). A case attribute is returned inside `case`:
//! `?fields=status,priority,partner` gives `{"case": {"caseId": …, "status": …, "priority": …}, "partner": …}`;
//! an optional attribute the case does not have (say `solution`) stays absent. `updatedAt` is both a view member
//! (when this node last changed the record) and a case attribute (the case's own last change): it selects both.
//! The case id is always returned at the same place as in the full view, `case.caseId`; if `case` itself is
//! selected, the whole case is returned and case attributes add nothing. A selected response is thus always a
//! projection of the full one. Names are exact (case sensitive) and may repeat; an unknown name, a nested path such
//! as `case.status` (not supported; name `status`), an empty entry (`fields=,partner`) or an empty list (`fields=`)
//! is refused with 400 `schemaViolation`, naming the allowed view members and case attributes. Without `fields`
//! the full view is returned. Both endpoints refuse unknown query parameters with 400 `schemaViolation`.
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

/// Longest `waitForReceipt`, in seconds.
pub const MAX_WAIT_FOR_RECEIPT_S: u64 = 60;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateParams {
    /// Answer only once the assignee's signed receipt is stored, or after this many seconds.
    wait_for_receipt: Option<u64>,
}

async fn create<S: Store>(
    State(st): State<Shared<S>>,
    q: Result<Query<CreateParams>, QueryRejection>,
    body: Result<axum::Json<CreateCase>, JsonRejection>,
) -> Response {
    let Query(params) = match q {
        Ok(q) => q,
        Err(r) => return problem(StatusCode::BAD_REQUEST, ErrorCode::SchemaViolation, r.body_text()),
    };
    let wait = match params.wait_for_receipt {
        Some(s) if s > MAX_WAIT_FOR_RECEIPT_S => {
            let detail = format!("waitForReceipt is at most {MAX_WAIT_FOR_RECEIPT_S} seconds, not {s}");
            return problem(StatusCode::BAD_REQUEST, ErrorCode::SchemaViolation, detail);
        }
        w => w,
    };
    let axum::Json(req) = match body {
        Ok(b) => b,
        Err(r) => return json_rejection(r),
    };
    let sent = match st.engine.forward(req.case, req.note).await {
        Ok(sent) => sent,
        Err(e) => return engine_error(e),
    };
    let mut answer = json!({"messageId": sent.message_id, "case": sent.case});
    if let Some(secs) = wait {
        // The forward is committed either way; this only says whether the receipt is there yet.
        let delivered = match st.engine.wait_delivered(sent.message_id, std::time::Duration::from_secs(secs)).await {
            Ok(d) => d,
            Err(e) => return engine_error(e),
        };
        answer["delivered"] = json!(delivered);
    }
    (StatusCode::CREATED, axum::Json(answer)).into_response()
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
pub(crate) const VIEW_MEMBERS: &[&str] = &["case", "partner", "ourRole", "updatedAt", "timeline"];
/// Members of a query result item (the single-case view without the timeline).
pub(crate) const ITEM_MEMBERS: &[&str] = &["case", "partner", "ourRole", "updatedAt"];

/// The top-level attributes of a case (JSON names, in the order of the format description), which `fields` may
/// also name. Taken from the format description (`sdx_codec::desc::CASE`), which
/// `crates/codec/tests/lockstep.rs` keeps in lock-step with the serde model `sdx_model::Case`.
fn case_attributes() -> impl Iterator<Item = &'static str> {
    sdx_codec::desc::CASE.fields.iter().map(|f| f.json)
}

/// Every name `fields` accepts on a view with `members`: the members, then the case attributes that are not also
/// a member (`updatedAt` is both), each once.
pub(crate) fn field_names(members: &'static [&'static str]) -> Vec<&'static str> {
    let mut names = members.to_vec();
    names.extend(case_attributes().filter(|a| !members.contains(a)));
    names
}

/// The accepted names, for error messages.
fn allowed_names(members: &[&str]) -> String {
    let attributes: Vec<&str> = case_attributes().collect();
    format!("view members {}; case attributes {}", members.join(", "), attributes.join(", "))
}

/// Why a `fields` value was refused.
#[derive(Debug, thiserror::Error)]
enum FieldsError {
    #[error("fields: name at least one member; allowed: {allowed}")]
    Empty { allowed: String },
    #[error("fields: empty entry; separate names by single commas; allowed: {allowed}")]
    EmptyEntry { allowed: String },
    #[error(
        "fields: `{name}` is a nested path, which is not supported; name top-level members of the view or of the \
         case (without `case.`); allowed: {allowed}"
    )]
    Nested { name: String, allowed: String },
    #[error("fields: unknown member `{name}`; allowed: {allowed} (case.caseId is always returned)")]
    Unknown { name: String, allowed: String },
}

/// What a request selected with `fields` (the whole view without it).
#[derive(Debug, PartialEq)]
struct Fields {
    /// Selected members of the view.
    view: Vec<&'static str>,
    /// Selected attributes of the case, returned inside `case` besides `caseId`; moot when `case` is selected.
    case: Vec<&'static str>,
}

impl Fields {
    /// Parse the `fields` parameter against the members the view has and the attributes of a case. A name that is
    /// both (`updatedAt`) selects both.
    fn parse(value: Option<&str>, members: &'static [&'static str]) -> Result<Self, FieldsError> {
        let Some(value) = value else { return Ok(Fields { view: members.to_vec(), case: Vec::new() }) };
        let list = || allowed_names(members);
        if value.trim().is_empty() {
            return Err(FieldsError::Empty { allowed: list() });
        }
        let mut fields = Fields { view: Vec::new(), case: Vec::new() };
        for name in value.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(FieldsError::EmptyEntry { allowed: list() });
            }
            let member = members.iter().copied().find(|m| *m == name);
            let attribute = case_attributes().find(|a| *a == name);
            if member.is_none() && attribute.is_none() {
                return Err(if name.contains('.') {
                    FieldsError::Nested { name: name.into(), allowed: list() }
                } else {
                    FieldsError::Unknown { name: name.into(), allowed: list() }
                });
            }
            for (selected, name) in [(&mut fields.view, member), (&mut fields.case, attribute)] {
                if let Some(name) = name
                    && !selected.contains(&name)
                {
                    selected.push(name);
                }
            }
        }
        Ok(fields)
    }

    fn has(&self, member: &str) -> bool {
        self.view.contains(&member)
    }
}

fn fields_error(e: FieldsError) -> Response {
    problem(StatusCode::BAD_REQUEST, ErrorCode::SchemaViolation, e.to_string())
}

/// A case view with the selected members; `case.caseId` is always there. Without `case` selected, `case` holds
/// `caseId` and the selected case attributes the case has (an absent optional attribute stays absent).
fn view(rec: CaseRecord, timeline: Option<Vec<TimelineEvent>>, fields: &Fields) -> Value {
    let mut v = serde_json::Map::new();
    if fields.has("case") {
        v.insert("case".into(), json!(rec.case));
    } else if fields.case.is_empty() {
        v.insert("case".into(), json!({"caseId": rec.case.case_id}));
    } else {
        let mut case = match json!(rec.case) {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        case.retain(|k, _| k == "caseId" || fields.case.contains(&k.as_str()));
        v.insert("case".into(), Value::Object(case));
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

/// Query parameters of `GET /cases/{id}`; others are refused, as on `GET /cases`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
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
    let fields = match Fields::parse(p.fields.as_deref(), VIEW_MEMBERS) {
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
    use sdx_model as m;

    #[test]
    fn fields_parsing() {
        let parse = |v: Option<&str>| Fields::parse(v, ITEM_MEMBERS);
        let sel = |v: &str| {
            let f = parse(Some(v)).unwrap();
            (f.view, f.case)
        };
        assert_eq!(parse(None).unwrap(), Fields { view: ITEM_MEMBERS.to_vec(), case: vec![] });
        assert_eq!(sel(" partner ,ourRole,partner"), (vec!["partner", "ourRole"], vec![]));
        // Case attributes, duplicates once, caseId accepted (it is always returned anyway).
        assert_eq!(
            sel("status, priority,partner,status,caseId"),
            (vec!["partner"], vec!["status", "priority", "caseId"])
        );
        // updatedAt is a view member and a case attribute: it selects both.
        assert_eq!(sel("updatedAt"), (vec!["updatedAt"], vec!["updatedAt"]));
        assert_eq!(sel("case,requester"), (vec!["case"], vec!["requester"]));
        assert!(matches!(parse(Some("")), Err(FieldsError::Empty { .. })));
        assert!(matches!(parse(Some(" \t")), Err(FieldsError::Empty { .. })));
        for v in [",", ",case", "case,", "case,,partner", "case, ,partner", "status,"] {
            assert!(matches!(parse(Some(v)), Err(FieldsError::EmptyEntry { .. })), "{v}");
        }
        for v in ["case.caseId", "case.status", "category.symptom", "status.x"] {
            assert!(matches!(parse(Some(v)), Err(FieldsError::Nested { .. })), "{v}");
        }
        let allowed = "allowed: view members case, partner, ourRole, updatedAt; case attributes caseId, revision, \
                       references, ticketType, status, pendingReason, statusHistory, impact, urgency, priority, \
                       category, region, supportLevel, channel, parties, originator, assignee, requester, subject, \
                       description, createdAt, updatedAt, journal, attachments, solution, relatedCases, serviceLevel \
                       (case.caseId is always returned)";
        for v in ["timeline", "Case", "Status", "case_id", "ticket_type", "\0", "\u{202e}ä", "case;partner", "id"] {
            let e = parse(Some(v)).err().unwrap();
            assert!(matches!(e, FieldsError::Unknown { .. }), "{v}");
            assert!(e.to_string().ends_with(allowed), "{e}");
        }
        assert_eq!(Fields::parse(Some("timeline"), VIEW_MEMBERS).unwrap().view, ["timeline"]);
    }

    #[test]
    fn field_names_are_the_view_members_then_the_case_attributes() {
        let names = field_names(ITEM_MEMBERS);
        assert_eq!(&names[..5], ["case", "partner", "ourRole", "updatedAt", "caseId"]);
        assert_eq!(names.iter().filter(|n| **n == "updatedAt").count(), 1);
        assert_eq!(field_names(VIEW_MEMBERS).len(), names.len() + 1);
    }

    /// The case attributes come from the format description; they are exactly the members of a serialized case
    /// with every optional member set, so a member added to or removed from `sdx_model::Case` fails here (and in
    /// `crates/codec/tests/lockstep.rs`).
    #[test]
    fn case_attributes_are_the_members_of_a_serialized_case() {
        let m::Body::Forward(forward) = m::sample::typical_forward().body else { panic!("a forward") };
        let at = m::Timestamp::parse("2026-11-28T10:00:00+01:00").unwrap();
        let by = m::OrgKey::parse(m::sample::BELA).unwrap();
        let full = m::Case {
            pending_reason: Some(m::PendingReason::WaitingForVendor),
            attachments: vec![m::Attachment {
                id: m::ItemId::parse("0b9c6e1a-4d2f-4a7b-8c3e-5f6a7b8c9dff").unwrap(),
                file_name: "log.txt".into(),
                media_type: m::MediaType::parse("text/plain").unwrap(),
                size: 1,
                sha256: m::Sha256Hex::parse("0".repeat(64)).unwrap(),
                content: None,
                uri: None,
                added_by: by.clone(),
                added_at: at,
            }],
            solution: Some(m::Solution {
                code: m::ResolutionCode::Fixed,
                text: "done".into(),
                resolved_at: at,
                resolved_by: by,
            }),
            related_cases: vec![m::RelatedCase {
                case_id: m::CaseId::new_random(),
                relation: m::RelationType::RelatedTo,
            }],
            ..forward.case
        };
        let mut serialized: Vec<String> = json!(full).as_object().unwrap().keys().cloned().collect();
        serialized.sort_unstable();
        let mut attributes: Vec<&str> = case_attributes().collect();
        attributes.sort_unstable();
        assert_eq!(serialized, attributes);
    }
}
